//! The contract case of the rate limit: a backend keeps it and hands it
//! back in every identity (the gate counts the uses), and no child may
//! have more than its parent.

use crate::{RateLimit, Rotation, StoreError};

use super::Backend;
use super::harness::{MIN, at, auth, create, sliding};

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
