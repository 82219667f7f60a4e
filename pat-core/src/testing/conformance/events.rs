//! The contract cases of the event stream ([`Admin::events`](crate::Admin::events)).

use crate::{
    AuthError, DEFAULT_AUDIT_RETENTION, Event, EventKind, RevokeCause, Rotation, StoreError,
    SuspensionError,
};

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

/// The place of the last entry of `b`'s log that is an event.
fn last_seq(b: &dyn Backend) -> u64 {
    all_events(b, 1000).last().expect("events").seq
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
    // A backend may keep no suspension (`Admin::disable`'s default).
    let suspends = match b.disable(id) {
        Err(StoreError::Suspension(SuspensionError::Unsupported)) => false,
        done => {
            done.expect("disable");
            b.enable(id).expect("enable");
            true
        }
    };
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
    let mut expected = vec![
        (Created, id, "alice", None),
        (Created, child_id, "alice", None),
        (Rotated, id, "alice", None),
    ];
    if suspends {
        expected.extend([
            (Disabled, id, "alice", None),
            (Disabled, child_id, "alice", None),
            (Enabled, id, "alice", None),
            (Enabled, child_id, "alice", None),
        ]);
    }
    // Where the revocation's event is.
    let revoked = expected.len();
    expected.extend([
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
    ]);
    assert_eq!(rows, expected);
    assert_eq!(events[0].actor, "alice-admin");
    assert_eq!(events[revoked].actor, "bob-admin");
    assert_eq!(events[revoked + 3].actor, "ops");
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    assert!(events[0].seq >= 1);
    // The policy change sits just before the revocation, in a place of
    // its own.
    assert!(
        events[revoked].seq > events[revoked - 1].seq + 1,
        "{events:?}"
    );
    // Any page size reads the same stream, and from any event on.
    assert_eq!(all_events(b, 1), events);
    assert_eq!(all_events(b, 4), events);
    assert_eq!(
        b.events(events[revoked + 2].seq, 2).expect("events"),
        events[revoked + 3..revoked + 5]
    );
    let last = events.last().expect("events").seq;
    assert_eq!(b.events(last, 10).expect("events"), []);
    assert_eq!(b.events(0, 0).expect("events"), []);

    // A prune that drops the whole log leaves the places behind it taken.
    let far = DEFAULT_AUDIT_RETENTION.as_secs() * 3;
    b.prune(at(far)).expect("prune");
    let e = create(b, &hard("erin", MIN), far);
    let after = b.events(last, 10).expect("events");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!((after[0].kind, after[0].token_id), (Created, e.info.id));
    assert!(after[0].seq > last);
    assert_eq!(
        b.last_seq().expect("last"),
        after[0].seq,
        "where a webhook starts"
    );
}

/// A webhook's delivery state changes only by a compare-and-swap: the
/// first store of it, then each change from what the caller read; a swap
/// from a state that changed since stores nothing.
pub(super) fn delivery_state(b: &dyn Backend) {
    use crate::{Delivery, RetryPolicy};
    let sink = "https://hooks.example/pat";
    if matches!(
        b.swap_delivery("probe", Some(&Delivery::default()), &Delivery::default()),
        Err(StoreError::NoEventState)
    ) {
        // A backend that keeps no delivery state (the default): no webhooks.
        return;
    }
    assert_eq!(b.delivery(sink).expect("read"), None);
    assert_eq!(b.deliveries().expect("all"), []);
    let mine = Delivery::default()
        .leased("replica a", at(100), 30 * std::time::Duration::from_secs(1))
        .expect("free");
    assert!(b.swap_delivery(sink, None, &mine).expect("first"));
    assert!(
        !b.swap_delivery(sink, None, &mine).expect("again"),
        "a second first store loses"
    );
    assert_eq!(b.delivery(sink).expect("read"), Some(mine.clone()));
    // Another replica read it too; the first to swap wins.
    let t = create(b, &hard("alice", MIN), 0);
    let event = b.events(0, 1).expect("events").remove(0);
    assert_eq!(event.token_id, t.info.id);
    let policy = RetryPolicy::new(
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
        std::time::Duration::ZERO,
    );
    let (given_up, _) = mine.failed_attempt(
        &event,
        "503 Service Unavailable",
        Some(503),
        at(101),
        &policy,
    );
    let delivered = mine.delivered(event.seq);
    assert!(b.swap_delivery(sink, Some(&mine), &given_up).expect("swap"));
    assert!(
        !b.swap_delivery(sink, Some(&mine), &delivered)
            .expect("stale")
    );
    assert_eq!(b.delivery(sink).expect("read"), Some(given_up.clone()));
    // A failed event marked to be sent again, by any handle; audited, as
    // done by who asked.
    assert!(
        b.acting_as("ops")
            .resend_event(sink, event.seq)
            .expect("resend")
    );
    let log = b.audit(crate::Timestamp::UNIX_EPOCH, None).expect("audit");
    let last = log.last().expect("audited");
    assert_eq!(
        (
            last.action,
            last.token_id,
            last.user.as_str(),
            last.actor.as_str()
        ),
        (
            crate::AuditAction::ResendEvent,
            Some(t.info.id),
            "alice",
            "ops"
        )
    );
    assert_eq!(last.outcome, format!("evt_{} to {sink}", event.seq));
    assert!(
        Event::from_audit(last).is_none(),
        "not a token's event: no webhook is told of it"
    );
    assert!(
        !b.resend_event(sink, event.seq + 100)
            .expect("no such event")
    );
    assert!(
        !b.resend_event("https://other.example", 1)
            .expect("no such webhook")
    );
    let marked = b.delivery(sink).expect("read").expect("stored");
    assert_eq!(marked.to_resend().map(|f| f.seq), Some(event.seq));
    // Webhooks are apart, and listed by name.
    assert!(
        b.swap_delivery("second", None, &Delivery::default())
            .expect("other")
    );
    let names: Vec<String> = b
        .deliveries()
        .expect("all")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&sink.to_owned()) && names.contains(&"second".to_owned()));
    for bad in ["", "a\nb", &"x".repeat(crate::MAX_SINK_LEN + 1)] {
        assert!(matches!(
            b.swap_delivery(bad, None, &Delivery::default()),
            Err(StoreError::BadWebhook(_))
        ));
    }
}

/// Expiry notices: one per token, threshold and deadline, however often
/// the sweep runs, as `token.expiring` and `token.expired` events; a new
/// deadline (a rotation) gets its own.
pub(super) fn expiry_notices(b: &dyn Backend) {
    use crate::{DEFAULT_NOTICE_DAYS as DAYS, ExpiryPolicy};
    const DAY: u64 = 86_400;
    let t = create(
        b,
        &hard("alice", std::time::Duration::from_secs(100 * DAY)),
        0,
    );
    create(b, &super::harness::sliding("bob", MIN, None), 0);
    let start = last_seq(b);
    if let Err(StoreError::NoEventState) = b.record_notices(&[]) {
        // A backend that keeps no notices (the default).
        return;
    }
    let sweep = |day: u64| Some(b.notify_expiring(at(day * DAY), &DAYS).expect("notify"));
    let counts: Vec<_> = [39, 40, 40, 41, 71, 71, 93, 99, 100, 101, 107]
        .into_iter()
        .map(|d| sweep(d).expect("notify"))
        .collect();
    assert_eq!(counts, [0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0]);
    let notices = b.events(start, 100).expect("events");
    let deadline = at(100 * DAY);
    let rows: Vec<_> = notices
        .iter()
        .map(|e| (e.kind, e.token_id, e.days, e.expires_at))
        .collect();
    let id = t.info.id;
    assert_eq!(
        rows,
        [
            (EventKind::Expiring, id, Some(60), Some(deadline)),
            (EventKind::Expiring, id, Some(30), Some(deadline)),
            (EventKind::Expiring, id, Some(7), Some(deadline)),
            (EventKind::Expiring, id, Some(0), Some(deadline)),
            (EventKind::Expired, id, None, Some(deadline)),
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&notices[2].to_json()).expect("json");
    assert_eq!(body["type"], "token.expiring");
    assert_eq!(body["days"], 7);
    assert_eq!(body["expires_at"], deadline.to_string());
    // Rotated near its end: a new deadline, notified again.
    b.rotate(
        id,
        &Rotation::new().expiry(ExpiryPolicy::hard(std::time::Duration::from_secs(10 * DAY))),
        at(99 * DAY),
    )
    .expect("rotate");
    assert_eq!(sweep(100), Some(1), "the 30-day notice of the new deadline");
    assert_eq!(sweep(100), Some(0));

    // A notice made from a read that a rotation or a revocation committed
    // after is stale: not written.
    let day = |d: u64| std::time::Duration::from_secs(d * DAY);
    let erin = create(b, &hard("erin", day(10)), 100 * DAY);
    let fred = create(b, &hard("fred", day(10)), 100 * DAY);
    let read_then = |id| {
        let info = b.get(id).expect("get");
        crate::Notice::due(&info, at(104 * DAY), &DAYS).expect("the 7-day notice")
    };
    let (stale_erin, stale_fred) = (read_then(erin.info.id), read_then(fred.info.id));
    b.rotate(
        erin.info.id,
        &Rotation::new().expiry(ExpiryPolicy::hard(day(5))),
        at(104 * DAY),
    )
    .expect("rotate");
    b.revoke(fred.info.id).expect("revoke");
    assert_eq!(
        b.record_notices(&[stale_erin, stale_fred]).expect("record"),
        0,
        "neither holds any more"
    );
    b.revoke(erin.info.id).expect("revoke");

    // A token deleted by a prune before any sweep saw it expire gets its
    // `token.expired` from the prune; one a sweep told of gets no second.
    let carol = create(b, &hard("carol", day(1)), 100 * DAY);
    let dave = create(b, &hard("dave", day(2)), 100 * DAY);
    let swept = b
        .notify_expiring(at(101 * DAY + 10), &DAYS)
        .expect("notify");
    assert_eq!(swept, 2, "carol expired, dave on his last day");
    let before = last_seq(b);
    b.prune(at(102 * DAY + 10)).expect("prune");
    let rows: Vec<_> = b
        .events(before, 100)
        .expect("events")
        .iter()
        .map(|e| (e.kind, e.token_id, e.expires_at))
        .collect();
    assert_eq!(
        rows,
        [(EventKind::Expired, dave.info.id, Some(at(102 * DAY)))],
        "carol's was written by the sweep"
    );
    assert!(b.get(carol.info.id).is_err() && b.get(dave.info.id).is_err());
    let before = last_seq(b);
    sweep(103);
    assert!(
        b.events(before, 100)
            .expect("events")
            .iter()
            .all(|e| e.token_id == id),
        "only alice's 7-day notice of her new deadline"
    );
}
