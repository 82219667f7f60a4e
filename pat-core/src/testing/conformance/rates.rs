//! The contract case of the rate limit: a backend keeps it and hands it
//! back in every identity (the gate counts the uses), and no child may
//! have more than its parent.

use std::net::IpAddr;
use std::sync::Arc;

use crate::model::rate::{Admission, RateCounter};
use crate::{AuthError, Identity, Lookup, RateLimit, Rotation, StoreError, TokenSecret};

use super::Backend;
use super::harness::{MIN, at, auth, block_on, create, sliding};

fn rate(s: &str) -> RateLimit {
    s.parse().expect("a rate")
}

pub(super) fn kept_and_never_raised(b: &dyn Backend) {
    let mut limited = sliding("alice", 10 * MIN, Some(60 * MIN));
    limited.rate = Some(rate("100/m"));
    let t = create(b, &limited, 1);
    assert_eq!(t.info.rate, Some(rate("100/m")));
    assert_eq!(b.get(t.info.id).expect("get").rate, Some(rate("100/m")));
    let listed = b.list(Some("alice"), true, at(1)).expect("list");
    assert_eq!(listed[0].rate, Some(rate("100/m")));
    let parent = auth(b, &t.secret, 2).expect("a use");
    assert_eq!(parent.rate(), Some(rate("100/m")), "handed to the gate");
    let open = create(b, &sliding("alice", 10 * MIN, None), 1);
    assert_eq!(auth(b, &open.secret, 2).expect("a use").rate(), None);
    // A rotation keeps it.
    let rotated = b
        .rotate(t.info.id, &Rotation::new(), at(3))
        .expect("rotate");
    assert_eq!(rotated.info.rate, Some(rate("100/m")));
    let parent = auth(b, &rotated.secret, 4).expect("the new secret");
    // A child gets its parent's limit when it gives none, may have a lower
    // one (in any unit), never a higher average nor a larger burst.
    let child = create(
        b,
        &sliding("alice", MIN, Some(5 * MIN)).child_of(&parent),
        5,
    );
    assert_eq!(child.info.rate, Some(rate("100/m")));
    for lower in ["1/s", "100/m", "50/m", "100/h"] {
        let mut asked = sliding("alice", MIN, Some(5 * MIN)).child_of(&parent);
        asked.rate = Some(rate(lower));
        assert_eq!(
            b.create(&asked, at(5)).expect(lower).info.rate,
            Some(rate(lower))
        );
    }
    for higher in ["2/s", "101/m", "6000/h", "101/h"] {
        let mut asked = sliding("alice", MIN, Some(5 * MIN)).child_of(&parent);
        asked.rate = Some(rate(higher));
        assert!(
            matches!(b.create(&asked, at(5)), Err(StoreError::Authority(_))),
            "{higher}"
        );
    }
    // A parent without a limit lets its child have one.
    let free = auth(b, &open.secret, 5).expect("a use");
    let mut asked = sliding("alice", MIN, Some(5 * MIN)).child_of(&free);
    asked.rate = Some(rate("5/s"));
    assert_eq!(
        b.create(&asked, at(5)).expect("create").info.rate,
        Some(rate("5/s"))
    );
}

/// A use as the gate makes it: counted against the rate limit by `rates`
/// as the backend runs the use rule.
fn counted_use(
    b: &dyn Backend,
    rates: &Arc<dyn RateCounter>,
    t: &TokenSecret,
    client: &str,
    secs: u64,
) -> Result<Identity, AuthError> {
    let digest = b.prefixes().digest(t.expose_secret())?;
    let client: IpAddr = client.parse().expect("an address");
    let admission = Admission::new(rates);
    let lookup = Lookup::new(digest, None, at(secs))
        .from(Some(client))
        .admitted_by(&admission);
    let identity = block_on(b.verify(lookup))?;
    assert!(
        admission.counted() || identity.is_rate_counted() || identity.rate().is_none(),
        "the use rule counted the rate"
    );
    Ok(identity)
}

/// The case of a backend that counts the gate's rate limit as it runs the
/// use rule, as every backend of pat-core does: a use over the limit (or
/// of a used-up quota) is refused before it is recorded. A backend outside
/// pat-core gets this by checking with [`Lookup::check`] (which counts the
/// gate's rate as it checks); one that checks otherwise has the rate
/// counted by the gate after its answer, when the use is recorded already.
///
/// Panics naming what the backend from `make` recorded of a refused use.
pub fn run_counted_uses<B: Backend>(make: impl Fn() -> B) {
    a_refused_use_records_nothing(&make());
}

/// From issue 26: a use over the rate limit, or of a quota with no use
/// left, is refused by the use rule before the use is recorded: it moves
/// neither the last use, nor a sliding deadline, nor the last addresses.
fn a_refused_use_records_nothing(b: &dyn Backend) {
    let rates: Arc<dyn RateCounter> = Arc::new(crate::gate::rate::Rates::default());
    let mut limited = sliding("alice", 10 * MIN, Some(60 * MIN));
    limited.rate = Some(rate("1/h"));
    let t = create(b, &limited, 1);
    let first = counted_use(b, &rates, &t.secret, "192.0.2.1", 2).expect("the one use");
    assert_eq!(first.expires_at(), at(2 + 600));
    let refused = counted_use(b, &rates, &t.secret, "192.0.2.2", 300);
    let Err(AuthError::RateLimited(throttled)) = refused else {
        panic!("over the limit: {refused:?}");
    };
    assert_eq!(throttled.limit, rate("1/h"));
    assert!(throttled.retry_after > 3000, "{throttled:?}");
    b.flush().expect("flush");
    let held = b.get(t.info.id).expect("get");
    assert_eq!(
        held.last_used_at,
        Some(at(2)),
        "the refused use is not a use"
    );
    assert_eq!(held.expiry.expires_at(), at(2 + 600), "nor a refresh");
    let seen: Vec<IpAddr> = held.last_addresses.iter().map(|s| s.addr).collect();
    assert_eq!(
        seen,
        ["192.0.2.1".parse::<IpAddr>().unwrap()],
        "nor an address"
    );

    // A quota with nothing left: refused by the use rule too, recording
    // nothing, where the spend would have refused it after the use.
    let mut once = sliding("alice", 10 * MIN, Some(60 * MIN));
    once.max_uses = Some(1);
    let one = create(b, &once, 1);
    let used = counted_use(b, &rates, &one.secret, "192.0.2.1", 2).expect("a use");
    block_on(b.spend(used, at(2))).expect("the one use spent");
    let again = counted_use(b, &rates, &one.secret, "192.0.2.3", 300);
    assert!(matches!(again, Err(AuthError::UsedUp)), "{again:?}");
    b.flush().expect("flush");
    let held = b.get(one.info.id).expect("get");
    assert_eq!(held.last_used_at, Some(at(2)));
    assert_eq!(held.expiry.expires_at(), at(2 + 600));
    assert_eq!(held.last_addresses.len(), 1);
}
