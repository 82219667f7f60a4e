//! The contract cases of the event stream ([`Admin::events`](crate::Admin::events)).

use crate::{AuthError, DEFAULT_AUDIT_RETENTION, Event, EventKind, RevokeCause, Rotation};

use super::Backend;
use super::harness::{MIN, at, auth, create, hard};

/// Every event, read `page` at a time from the start.
fn all_events(b: &dyn Backend, page: usize) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.seq);
        let next = b.events(after, page).expect("events");
        assert!(next.len() <= page, "more than the limit");
        if next.is_empty() {
            return out;
        }
        out.extend(next);
    }
}

/// Each change to a token is one event, in the order it committed, with
/// the cause of each revocation; reading on from the last one seen misses
/// nothing, whatever the page size, and a prune never gives a place again.
pub(super) fn event_stream(b: &dyn Backend) {
    let t = b
        .acting_as("alice-admin")
        .create(&hard("alice", 10 * MIN), at(10))
        .expect("create");
    let id = t.info.id;
    let child = create(b, &hard("alice", 5 * MIN).parent(id), 11);
    b.rotate(id, &Rotation::new(), at(20)).expect("rotate");
    b.disable(id).expect("disable");
    b.enable(id).expect("enable");
    // A policy change is no event, but it takes a place in the log.
    b.set_policy(crate::Policy::NONE.max_tokens_per_user(Some(50)))
        .expect("policy");
    b.acting_as("bob-admin").revoke(id).expect("revoke");
    let carol = create(b, &hard("carol", MIN), 30);
    b.acting_as("ops")
        .revoke_user("carol")
        .expect("revoke user");
    let dave = create(b, &hard("dave", 10 * MIN), 40);
    b.rotate(dave.info.id, &Rotation::new(), at(41))
        .expect("rotate");
    assert!(matches!(auth(b, &dave.secret, 42), Err(AuthError::Unknown)));
    b.flush().expect("flush");

    let events = all_events(b, 1000);
    let rows: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.token_id, e.user.as_str(), e.cause))
        .collect();
    use EventKind::*;
    let child_id = child.info.id;
    let expected = vec![
        (Created, id, "alice", None),
        (Created, child_id, "alice", None),
        (Rotated, id, "alice", None),
        (Disabled, id, "alice", None),
        (Disabled, child_id, "alice", None),
        (Enabled, id, "alice", None),
        (Enabled, child_id, "alice", None),
        (Revoked, id, "alice", Some(RevokeCause::Admin)),
        (Revoked, child_id, "alice", Some(RevokeCause::ParentRevoked)),
        (Created, carol.info.id, "carol", None),
        (Revoked, carol.info.id, "carol", Some(RevokeCause::Admin)),
        (Created, dave.info.id, "dave", None),
        (Rotated, dave.info.id, "dave", None),
        (Replayed, dave.info.id, "dave", None),
        (
            Revoked,
            dave.info.id,
            "dave",
            Some(RevokeCause::ReuseDetection),
        ),
    ];
    assert_eq!(rows, expected);
    assert_eq!(events[0].actor, "alice-admin");
    assert_eq!(events[7].actor, "bob-admin");
    assert_eq!(events[10].actor, "ops");
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    assert!(events[0].seq >= 1);
    // The policy change sits between the enabling and the revocation.
    assert!(events[7].seq > events[6].seq + 1, "{events:?}");
    // Any page size reads the same stream, and from any event on.
    assert_eq!(all_events(b, 1), events);
    assert_eq!(all_events(b, 4), events);
    assert_eq!(b.events(events[9].seq, 2).expect("events"), events[10..12]);
    assert_eq!(b.events(events[14].seq, 10).expect("events"), []);
    assert_eq!(b.events(0, 0).expect("events"), []);

    // A prune that drops the whole log leaves the places behind it taken.
    let last = events[14].seq;
    let far = DEFAULT_AUDIT_RETENTION.as_secs() * 3;
    b.prune(at(far)).expect("prune");
    let e = create(b, &hard("erin", MIN), far);
    let after = b.events(last, 10).expect("events");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!((after[0].kind, after[0].token_id), (Created, e.info.id));
    assert!(after[0].seq > last);
}
