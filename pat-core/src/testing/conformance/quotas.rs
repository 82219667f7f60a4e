//! The use quota: a backend keeps it, spends one use per accepted
//! authentication, exactly, and refuses past it; a refused use spends
//! nothing; no child has more uses than its parent has left. And the race:
//! many threads on two replicas spending one token's uses.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{AuthError, Rotation, StoreError};

use super::harness::{MIN, at, auth, create, hard};
use super::{Backend, authenticate};

pub(super) fn spent_once_each_and_never_raised(b: &dyn Backend) {
    let t = create(b, &hard("alice", 60 * MIN).max_uses(3), 1);
    assert_eq!((t.info.max_uses, t.info.uses), (Some(3), 0));
    assert_eq!(b.get(t.info.id).expect("get").max_uses, Some(3));
    // A refused use spends nothing: another user's name, a disabled token.
    let secret = t.secret.expose_secret();
    assert!(matches!(
        authenticate(b, secret, Some("bob"), at(2)),
        Err(AuthError::WrongUser)
    ));
    if b.disable(t.info.id).is_ok() {
        assert!(matches!(auth(b, &t.secret, 2), Err(AuthError::Disabled)));
        b.enable(t.info.id).expect("enable");
    }
    assert_eq!(b.get(t.info.id).expect("get").uses, 0, "nothing spent");
    for left in [2, 1, 0] {
        let identity = auth(b, &t.secret, 3).expect("a use");
        assert!(identity.has_quota());
        assert_eq!(identity.uses_left(), Some(left));
    }
    assert!(matches!(auth(b, &t.secret, 4), Err(AuthError::UsedUp)));
    assert!(matches!(auth(b, &t.secret, 5), Err(AuthError::UsedUp)));
    let stored = b.get(t.info.id).expect("get");
    assert_eq!((stored.max_uses, stored.uses), (Some(3), 3));
    let listed = b.list(Some("alice"), true, at(5)).expect("list");
    assert_eq!(listed[0].uses, 3);
    // A token without a quota spends nothing and says so.
    let open = create(b, &hard("alice", 60 * MIN), 1);
    for _ in 0..3 {
        let identity = auth(b, &open.secret, 2).expect("a use");
        assert!(!identity.has_quota());
        assert_eq!(identity.uses_left(), None);
    }
    assert_eq!(b.get(open.info.id).expect("get").uses, 0);
    // A rotation keeps the count: a new secret is not new uses.
    let five = create(b, &hard("alice", 60 * MIN).max_uses(5), 1);
    auth(b, &five.secret, 2).expect("a use");
    let rotated = b
        .rotate(five.info.id, &Rotation::new(), at(3))
        .expect("rotate");
    assert_eq!((rotated.info.max_uses, rotated.info.uses), (Some(5), 1));
    // A child has at most the uses its parent has left, all of them when it
    // gives none, and they are drawn from the parent's: a family never has
    // more uses in all than the token that began it.
    let parent = auth(b, &rotated.secret, 4).expect("a use");
    assert_eq!(parent.uses_left(), Some(3));
    assert!(matches!(
        b.create(&hard("alice", MIN).child_of(&parent).max_uses(4), at(5)),
        Err(StoreError::Authority(_))
    ));
    let fewer = create(b, &hard("alice", MIN).child_of(&parent).max_uses(2), 5);
    assert_eq!(fewer.info.max_uses, Some(2));
    assert_eq!(b.get(five.info.id).expect("get").uses, 4, "drawn from it");
    let child = create(b, &hard("alice", MIN).child_of(&parent), 5);
    assert_eq!((child.info.max_uses, child.info.uses), (Some(1), 0));
    assert_eq!(b.get(five.info.id).expect("get").uses, 5, "all drawn");
    assert!(matches!(
        auth(b, &rotated.secret, 6),
        Err(AuthError::UsedUp)
    ));
    assert!(matches!(
        b.create(&hard("alice", MIN).child_of(&parent), at(6)),
        Err(StoreError::Authority(_))
    ));
    // The children's uses are theirs: three in all, as the parent had left.
    for t in [&fewer, &fewer, &child] {
        auth(b, &t.secret, 6).expect("a child's use");
    }
    for t in [&fewer, &child] {
        assert!(matches!(auth(b, &t.secret, 6), Err(AuthError::UsedUp)));
    }
    // A one-time token's use is its last: it cannot mint.
    let once = create(b, &hard("alice", 60 * MIN).max_uses(1), 1);
    let used = auth(b, &once.secret, 2).expect("its one use");
    assert_eq!(used.uses_left(), Some(0));
    assert!(matches!(
        b.create(&hard("alice", MIN).child_of(&used), at(3)),
        Err(StoreError::Authority(_))
    ));
    // A parent without a quota lets its child have one.
    let free = auth(b, &open.secret, 5).expect("a use");
    let limited = create(b, &hard("alice", MIN).child_of(&free).max_uses(7), 5);
    assert_eq!(limited.info.max_uses, Some(7));
    // Out of range: refused, named.
    for bad in [0, crate::MAX_USES + 1] {
        assert!(matches!(
            b.create(&hard("alice", MIN).max_uses(bad), at(1)),
            Err(StoreError::NewToken(crate::NewTokenError::MaxUses { .. }))
        ));
    }
}

/// Threads on both `replicas` (the same backend twice for one process, or
/// two replicas of one database) authenticating with one token of `uses`
/// uses at once, `attempts` times each: exactly `uses` are accepted, the
/// rest refused as used up, and the store counts `uses`. Panics otherwise.
pub fn run_quota_race(replicas: [&dyn Backend; 2], threads: usize, attempts: usize, uses: u32) {
    let t = replicas[0]
        .create(&hard("alice", 60 * MIN).max_uses(uses), at(1))
        .expect("create");
    let accepted = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..threads {
            let (b, t, accepted, refused) = (replicas[i % 2], &t, &accepted, &refused);
            s.spawn(move || {
                for _ in 0..attempts {
                    match auth(b, &t.secret, 2) {
                        Ok(_) => accepted.fetch_add(1, Ordering::SeqCst),
                        Err(AuthError::UsedUp) => refused.fetch_add(1, Ordering::SeqCst),
                        Err(e) => panic!("neither accepted nor used up: {e}"),
                    };
                }
            });
        }
    });
    let accepted = accepted.into_inner();
    assert_eq!(
        accepted, uses as usize,
        "{accepted} uses accepted of a quota of {uses}"
    );
    assert_eq!(accepted + refused.into_inner(), threads * attempts);
    for b in replicas {
        assert_eq!(b.get(t.info.id).expect("get").uses, uses, "counted");
    }
}
