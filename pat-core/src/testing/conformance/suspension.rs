//! The contract cases of suspension: a disabled token is refused, keeps
//! everything else, and comes back when enabled; a disabling reaches the
//! token's family and an enabling gives back exactly what it took.

use crate::{AuditAction, AuthError, StoreError, SuspensionError, Timestamp, TokenId};

use super::Backend;
use super::harness::{MIN, auth, create, hard, sliding};

/// Disables `id`, which changes `expected` tokens; `false` when the
/// backend keeps no suspension state (it says so,
/// [`SuspensionError::Unsupported`], and the case ends there).
fn supported(b: &dyn Backend, id: TokenId, expected: usize) -> bool {
    match b.disable(id) {
        Err(StoreError::Suspension(SuspensionError::Unsupported)) => {
            assert!(!b.get(id).expect("get").is_disabled());
            false
        }
        Ok(n) => {
            assert_eq!(n, expected, "tokens the disabling changed");
            true
        }
        other => panic!("disable: {other:?}"),
    }
}

fn audited(b: &dyn Backend, action: AuditAction) -> Vec<TokenId> {
    b.audit(Timestamp::UNIX_EPOCH, None)
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == action)
        .filter_map(|e| e.token_id)
        .collect()
}

pub(super) fn disable_and_enable(b: &dyn Backend) {
    let t = create(b, &sliding("alice", 10 * MIN, None), 1);
    let other = create(b, &hard("alice", 60 * MIN), 1);
    let id = t.info.id;
    // Used once, so that the deadline after it is known.
    let before = auth(b, &t.secret, 2).expect("a live token");
    if !supported(b, id, 1) {
        return;
    }
    // Refused from the very next request, and the refusal moves nothing.
    assert!(matches!(auth(b, &t.secret, 3), Err(AuthError::Disabled)));
    let held = b.get(id).expect("get");
    assert!(held.is_disabled());
    assert_eq!(held.disabled_by, Some(id));
    assert_eq!(held.expiry.expires_at(), before.expires_at());
    assert_eq!(held.last_used_at, Some(super::at(2)));
    // Only that token.
    auth(b, &other.secret, 3).expect("another token of the same user");
    // Listed as it is, and a second disabling changes nothing.
    let listed = b.list(Some("alice"), false, super::at(3)).expect("list");
    assert!(listed.iter().any(|i| i.id == id && i.is_disabled()));
    assert_eq!(b.disable(id).expect("disable again"), 0);
    // Its deadline runs on while it is disabled: once past, it is expired.
    assert!(matches!(
        auth(b, &t.secret, 11 * 60 + 2),
        Err(AuthError::Disabled)
    ));
    assert_eq!(b.enable(id).expect("enable"), 1);
    assert!(!b.get(id).expect("get").is_disabled());
    assert_eq!(b.enable(id).expect("enable again"), 0);
    assert!(matches!(
        auth(b, &t.secret, 11 * 60 + 2),
        Err(AuthError::Expired { .. })
    ));
    // Within its window, enabled, it works again.
    let u = create(b, &hard("bob", 60 * MIN), 1);
    b.disable(u.info.id).expect("disable");
    b.enable(u.info.id).expect("enable");
    auth(b, &u.secret, 4).expect("enabled again");
    // Unknown ids are told.
    let nobody = TokenId::from_u64(0xdead);
    assert!(matches!(b.disable(nobody), Err(StoreError::NotFound(n)) if n == nobody));
    assert!(matches!(b.enable(nobody), Err(StoreError::NotFound(n)) if n == nobody));
    // Each change is audited.
    assert_eq!(audited(b, AuditAction::Disable), [id, u.info.id]);
    assert_eq!(audited(b, AuditAction::Enable), [id, u.info.id]);
}

pub(super) fn disabling_reaches_the_family(b: &dyn Backend) {
    let root = create(b, &hard("alice", 60 * MIN), 1);
    let as_root = auth(b, &root.secret, 2).expect("root");
    let child = create(b, &hard("alice", 30 * MIN).child_of(&as_root), 2);
    let as_child = auth(b, &child.secret, 3).expect("child");
    let grandchild = create(b, &hard("bob", 20 * MIN).child_of(&as_child), 3);
    // The child disabled on its own first, then its parent.
    if !supported(b, child.info.id, 2) {
        return;
    }
    assert!(matches!(
        auth(b, &grandchild.secret, 4),
        Err(AuthError::Disabled)
    ));
    assert_eq!(
        b.get(grandchild.info.id).expect("get").disabled_by,
        Some(child.info.id)
    );
    assert_eq!(b.disable(root.info.id).expect("disable root"), 1);
    for t in [&root, &child, &grandchild] {
        assert!(matches!(auth(b, &t.secret, 5), Err(AuthError::Disabled)));
    }
    // Regression (review of issue 26): enabling the child while its parent
    // is disabled brought the child back under a disabled parent.
    assert!(matches!(
        b.enable(child.info.id),
        Err(StoreError::Suspension(SuspensionError::Inherited { token, by }))
            if token == child.info.id && by == root.info.id
    ));
    // Enabling the root gives back only what its disabling took.
    assert_eq!(b.enable(root.info.id).expect("enable root"), 1);
    auth(b, &root.secret, 6).expect("root enabled");
    assert!(matches!(
        auth(b, &child.secret, 6),
        Err(AuthError::Disabled)
    ));
    // A token disabled through an ancestor cannot be enabled alone.
    assert!(matches!(
        b.enable(grandchild.info.id),
        Err(StoreError::Suspension(SuspensionError::Inherited { token, by }))
            if token == grandchild.info.id && by == child.info.id
    ));
    assert_eq!(b.enable(child.info.id).expect("enable child"), 2);
    auth(b, &grandchild.secret, 7).expect("grandchild enabled");

    // Disabling the root now reaches the whole family at once.
    assert_eq!(b.disable(root.info.id).expect("disable root"), 3);
    for t in [&root, &child, &grandchild] {
        assert!(matches!(auth(b, &t.secret, 8), Err(AuthError::Disabled)));
        assert_eq!(
            b.get(t.info.id).expect("get").disabled_by,
            Some(root.info.id)
        );
    }
    // A child minted under a parent disabled since it authenticated (a
    // request that was under way) is disabled with the family.
    let late = create(b, &hard("alice", 10 * MIN).child_of(&as_root), 9);
    assert!(matches!(auth(b, &late.secret, 9), Err(AuthError::Disabled)));
    assert_eq!(
        b.get(late.info.id).expect("get").disabled_by,
        Some(root.info.id)
    );
    // A rotation keeps the state.
    let rotated = b
        .rotate(child.info.id, &crate::Rotation::new(), super::at(9))
        .expect("an admin may rotate a disabled token");
    assert!(matches!(
        auth(b, &rotated.secret, 10),
        Err(AuthError::Disabled)
    ));
    assert_eq!(b.enable(root.info.id).expect("enable root"), 4);
    auth(b, &rotated.secret, 11).expect("enabled with its family");
    auth(b, &late.secret, 11).expect("enabled with its family");

    // Regression (review of issue 26): disabling a token already disabled
    // with its ancestor did nothing, so enabling the ancestor brought it
    // back. Now it is disabled on its own too, with what it made.
    assert_eq!(b.disable(root.info.id).expect("disable root"), 4);
    assert_eq!(b.disable(child.info.id).expect("disable child too"), 2);
    assert_eq!(b.enable(root.info.id).expect("enable root"), 2);
    auth(b, &late.secret, 12).expect("enabled with the root");
    for t in [&rotated.secret, &grandchild.secret] {
        assert!(matches!(auth(b, t, 12), Err(AuthError::Disabled)));
    }
    assert_eq!(b.enable(child.info.id).expect("enable child"), 2);
    auth(b, &grandchild.secret, 13).expect("enabled with the child");
    auth(b, &grandchild.secret, 11).expect("enabled with its family");
}
