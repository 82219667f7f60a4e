//! The contract cases of the authority rule ([`crate::backend::authority`]): lineage,
//! cascade revocation, the rotation envelope, the grace and reuse
//! detection, alike on every backend.

use super::{Backend, MIN, at, auth, create, hard, sliding};
use crate::backend::authority::{AuthorityViolation, REUSE_ACTOR};
use crate::{
    AuditAction, AuthError, ExpiryPolicy, NewToken, OnReuse, Policy, PolicyViolation, Rotation,
    Scope, Scopes, StoreError, TokenId,
};

pub(super) const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
pub(super) const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
pub(super) const OTHER: &str = "9f0e1d2c-3b4a-4596-8877-665544332211";

pub(super) fn scopes(list: &[String]) -> Scopes {
    list.iter()
        .map(|s| s.parse::<Scope>().expect("a test scope"))
        .collect()
}

pub(super) fn authority(e: Result<crate::CreatedToken, StoreError>) -> AuthorityViolation {
    match e {
        Err(StoreError::Authority(v)) => v,
        other => panic!(
            "expected the authority rule to refuse, got {:?}",
            other.map(|c| c.info)
        ),
    }
}

/// A child records its parent and stays within it, however far down.
pub(super) fn lineage(b: &dyn Backend) {
    let read = scopes(&[format!("node:{NODE}:rw")]);
    let parent = create(b, &hard("alice", HOUR).scopes(read), 0);
    let p = parent.info.id;
    let child = create(
        b,
        &hard("alice", 30 * MIN)
            .parent(p)
            .scopes(scopes(&[format!("node:{NODE}:r")])),
        0,
    );
    assert_eq!(child.info.parent, Some(p));
    assert_eq!(b.get(child.info.id).expect("get").parent, Some(p));
    assert_eq!(b.get(p).expect("get").parent, None, "a root has no parent");
    // The parent's deadline exactly: allowed; a second later: refused.
    let late = create(
        b,
        &hard("alice", 30 * MIN)
            .parent(p)
            .scopes(scopes(&[format!("node:{NODE}:w")])),
        1800,
    );
    let v = authority(
        b.create(
            &hard("alice", 30 * MIN)
                .parent(p)
                .scopes(scopes(&[format!("node:{NODE}:r")])),
            at(1801),
        ),
    );
    assert!(
        matches!(v, AuthorityViolation::OutlivesParent { .. }),
        "{v}"
    );
    // A sliding child must end by the parent's deadline: a cap.
    let v = authority(
        b.create(
            &sliding("alice", MIN, None)
                .parent(p)
                .scopes(scopes(&[format!("node:{NODE}:r")])),
            at(0),
        ),
    );
    assert!(
        matches!(v, AuthorityViolation::OutlivesParent { asked: None, .. }),
        "{v}"
    );
    // Wider: unscoped, another node, a stronger permission.
    for wider in [Scopes::unrestricted(), scopes(&[format!("node:{OTHER}:r")])] {
        let v = authority(b.create(&hard("alice", MIN).parent(p).scopes(wider), at(0)));
        assert!(matches!(v, AuthorityViolation::Wider(_)), "{v}");
    }
    let narrow = child.info.id;
    let v = authority(
        b.create(
            &hard("alice", MIN)
                .parent(narrow)
                .scopes(scopes(&[format!("node:{NODE}:rw")])),
            at(0),
        ),
    );
    assert!(matches!(v, AuthorityViolation::Wider(_)), "{v}");
    // A grandchild is bound by its own parent, not only the root.
    let v = authority(
        b.create(
            &hard("alice", 45 * MIN)
                .parent(narrow)
                .scopes(scopes(&[format!("node:{NODE}:r")])),
            at(0),
        ),
    );
    assert!(
        matches!(v, AuthorityViolation::OutlivesParent { .. }),
        "{v}"
    );
    let grandchild = create(
        b,
        &hard("bob", 10 * MIN)
            .parent(narrow)
            .scopes(scopes(&[format!("node:{NODE}:r")])),
        0,
    );
    // No such parent, or an expired one.
    let gone = TokenId::from_u64(0xdead);
    let v = authority(b.create(&hard("alice", MIN).parent(gone), at(0)));
    assert_eq!(v, AuthorityViolation::NoParent(gone));
    let v = authority(b.create(&hard("alice", MIN).parent(grandchild.info.id), at(600)));
    assert_eq!(v, AuthorityViolation::NoParent(grandchild.info.id));
    // Refusals store nothing.
    let mut family: Vec<TokenId> = b
        .descendants(p)
        .expect("descendants")
        .iter()
        .map(|t| t.id)
        .collect();
    family.sort();
    let mut expected = vec![narrow, late.info.id, grandchild.info.id];
    expected.sort();
    assert_eq!(family, expected);
    assert_eq!(b.list(None, true, at(0)).expect("list").len(), 4);
    assert!(
        b.descendants(grandchild.info.id)
            .expect("descendants")
            .is_empty()
    );
}

/// Revoking a token revokes its descendants, each audited; revoking a
/// user's tokens takes theirs too, whoever they belong to.
pub(super) fn cascade(b: &dyn Backend) {
    let root = create(b, &hard("alice", HOUR), 0);
    let child = create(b, &hard("alice", 30 * MIN).parent(root.info.id), 0);
    let grandchild = create(b, &hard("bob", 10 * MIN).parent(child.info.id), 0);
    let other = create(b, &hard("alice", HOUR), 0);
    auth(b, &grandchild.secret, 1).expect("live before");
    b.revoke(child.info.id).expect("revoke");
    for t in [&child, &grandchild] {
        assert!(matches!(auth(b, &t.secret, 2), Err(AuthError::Unknown)));
        assert!(matches!(b.get(t.info.id), Err(StoreError::NotFound(_))));
    }
    auth(b, &root.secret, 2).expect("the parent lives on");
    auth(b, &other.secret, 2).expect("a stranger lives on");
    let log = b.audit(at(0), None).expect("audit");
    let revoked: Vec<_> = log
        .iter()
        .filter(|e| e.action == AuditAction::Revoke)
        .map(|e| (e.token_id, e.user.as_str(), e.outcome.clone()))
        .collect();
    assert_eq!(
        revoked,
        [
            (Some(child.info.id), "alice", "ok".to_owned()),
            (
                Some(grandchild.info.id),
                "bob",
                format!("parent revoked ({})", child.info.id)
            ),
        ]
    );

    // A user's tokens, with a descendant of another user's.
    let minted = create(b, &hard("bob", 10 * MIN).parent(root.info.id), 0);
    let bobs = create(b, &hard("bob", HOUR), 0);
    assert_eq!(b.revoke_user("alice").expect("revoke user"), 3);
    assert!(matches!(
        auth(b, &minted.secret, 3),
        Err(AuthError::Unknown)
    ));
    auth(b, &bobs.secret, 3).expect("bob's own token lives on");
    let log = b.audit(at(0), Some("bob")).expect("audit");
    assert!(
        log.iter().any(|e| e.token_id == Some(minted.info.id)
            && e.outcome == format!("parent revoked ({})", root.info.id)),
        "{log:?}"
    );
}

/// A rotation stays inside the token's envelope; an admin's new lifetime
/// is one, and shortening a token shortens its family.
pub(super) fn envelope(b: &dyn Backend) {
    let t = create(b, &hard("alice", HOUR), 0);
    let id = t.info.id;
    // Its own duration from now (a root renews itself), not longer.
    let r = b.rotate(id, &Rotation::new(), at(600)).expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(600 + 3600));
    let v = authority(b.rotate(
        id,
        &Rotation::new().expiry(ExpiryPolicy::hard(2 * HOUR)),
        at(700),
    ));
    assert!(matches!(v, AuthorityViolation::Longer { .. }), "{v}");
    let r = b
        .rotate(
            id,
            &Rotation::new().expiry(ExpiryPolicy::hard(30 * MIN)),
            at(700),
        )
        .expect("shorter is fine");
    assert_eq!(r.info.expiry.expires_at(), at(700 + 1800));
    let r = b.rotate(id, &Rotation::new(), at(800)).expect("rotate");
    assert_eq!(
        r.info.expiry.expires_at(),
        at(800 + 1800),
        "the shorter duration is the token's now"
    );

    // A sliding cap counts from the first issue, whatever model a
    // rotation asks for.
    let s = create(b, &sliding("alice", 10 * MIN, Some(HOUR)), 0);
    let r = b
        .rotate(s.info.id, &Rotation::new(), at(3300))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(3600));
    let r = b
        .rotate(
            s.info.id,
            &Rotation::new().expiry(ExpiryPolicy::sliding(MIN, None)),
            at(3400),
        )
        .expect("a narrower window");
    assert_eq!(r.info.latest_possible(), Some(at(3600)), "the cap stays");
    for t in [3450, 3500, 3550, 3590] {
        auth(b, &r.secret, t).expect("alive");
    }
    assert!(matches!(
        auth(b, &r.secret, 3600),
        Err(AuthError::Expired { .. })
    ));
    let v = authority(b.rotate(s.info.id, &Rotation::new(), at(3600)));
    assert!(
        matches!(v, AuthorityViolation::OutlivesEnvelope { .. }),
        "{v}"
    );

    // The policy's maximum counts from the first issue too.
    b.set_policy(Policy::default().max_lifetime(Some(2 * HOUR)))
        .expect("policy");
    let p = create(b, &hard("carol", HOUR), 0);
    b.rotate(p.info.id, &Rotation::new(), at(3600))
        .expect("within");
    let e = b
        .rotate(p.info.id, &Rotation::new(), at(3601))
        .map(|c| c.info);
    assert!(
        matches!(e, Err(StoreError::Policy(PolicyViolation::Lifetime { .. }))),
        "{e:?}"
    );
    // An admin's new lifetime starts anew, within the policy.
    let r = b
        .rotate(
            p.info.id,
            &Rotation::new().new_lifetime(ExpiryPolicy::hard(2 * HOUR)),
            at(5000),
        )
        .expect("a new lifetime");
    assert_eq!(r.info.expiry.expires_at(), at(5000 + 7200));
    assert_eq!(r.info.lifetime_from, at(5000));
    let e = b
        .rotate(
            p.info.id,
            &Rotation::new().new_lifetime(ExpiryPolicy::hard(3 * HOUR)),
            at(5000),
        )
        .map(|c| c.info);
    assert!(matches!(e, Err(StoreError::Policy(_))), "{e:?}");
    b.set_policy(Policy::default()).expect("policy");

    // A child's rotation ends by its parent's deadline.
    let parent = create(b, &hard("dave", HOUR), 0);
    let child = create(b, &hard("dave", 30 * MIN).parent(parent.info.id), 0);
    let grandchild = create(b, &hard("dave", 20 * MIN).parent(child.info.id), 0);
    let r = b
        .rotate(child.info.id, &Rotation::new(), at(1000))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(2800));
    let r = b
        .rotate(child.info.id, &Rotation::new(), at(2000))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(3600), "cut at the parent's");
    // An admin shortening the parent shortens the family, audited.
    let r = b
        .rotate(
            parent.info.id,
            &Rotation::new().new_lifetime(ExpiryPolicy::hard(10 * MIN)),
            at(2100),
        )
        .expect("shorten");
    let limit = r.info.expiry.expires_at();
    assert_eq!(limit, at(2700));
    for id in [child.info.id, grandchild.info.id] {
        let info = b.get(id).expect("get");
        assert!(
            info.latest_possible().is_some_and(|l| l <= limit),
            "{info:?}"
        );
    }
    let shortened: Vec<_> = b
        .audit(at(0), Some("dave"))
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == AuditAction::Shorten)
        .filter_map(|e| e.token_id)
        .collect();
    assert_eq!(
        shortened,
        [child.info.id],
        "the grandchild ended by 1200 already"
    );
    // Lengthening the parent again does not lengthen the family.
    b.rotate(
        parent.info.id,
        &Rotation::new().new_lifetime(ExpiryPolicy::hard(HOUR)),
        at(2200),
    )
    .expect("lengthen");
    assert_eq!(
        b.get(child.info.id).expect("get").latest_possible(),
        Some(limit)
    );
}

/// One old secret at most: a rotation ends earlier graces; the grace is
/// capped; a secret in its grace is told apart.
pub(super) fn grace(b: &dyn Backend) {
    b.set_policy(Policy::default().on_reuse(OnReuse::Refuse))
        .expect("policy");
    let s1 = create(
        b,
        &hard("alice", 2 * crate::backend::authority::DEFAULT_MAX_GRACE),
        0,
    );
    let id = s1.info.id;
    let s2 = b
        .rotate(id, &Rotation::new().grace(10 * MIN), at(0))
        .expect("rotate");
    assert_eq!(s2.info.previous_until, Some(at(600)));
    assert_eq!(
        b.get(id).expect("get").previous_secret_until(at(1)),
        Some(at(600))
    );
    let old = auth(b, &s1.secret, 1).expect("in its grace");
    assert!(old.is_previous_secret());
    assert!(
        !auth(b, &s2.secret, 1)
            .expect("current")
            .is_previous_secret()
    );
    // The next rotation ends it, even without a grace of its own.
    let s3 = b.rotate(id, &Rotation::new(), at(100)).expect("rotate");
    assert_eq!(s3.info.previous_until, None);
    assert!(matches!(auth(b, &s1.secret, 101), Err(AuthError::Unknown)));
    assert!(matches!(auth(b, &s2.secret, 101), Err(AuthError::Unknown)));
    auth(b, &s3.secret, 101).expect("current");
    // Capped: a day by default, the policy's, never past the deadline.
    let s4 = b
        .rotate(id, &Rotation::new().grace(36_500 * 24 * HOUR), at(200))
        .expect("rotate");
    assert_eq!(
        s4.info.previous_until,
        Some(at(200).saturating_add(crate::backend::authority::DEFAULT_MAX_GRACE))
    );
    b.set_policy(
        Policy::default()
            .on_reuse(OnReuse::Refuse)
            .max_grace(Some(HOUR)),
    )
    .expect("policy");
    let s5 = b
        .rotate(id, &Rotation::new().grace(2 * HOUR), at(300))
        .expect("rotate");
    assert_eq!(s5.info.previous_until, Some(at(300 + 3600)));
    assert!(
        auth(b, &s4.secret, 301)
            .expect("in its grace")
            .is_previous_secret()
    );
    assert!(matches!(auth(b, &s3.secret, 301), Err(AuthError::Unknown)));
    let short = create(b, &hard("bob", 10 * MIN), 0);
    let r = b
        .rotate(short.info.id, &Rotation::new().grace(HOUR), at(60))
        .expect("rotate");
    assert_eq!(
        r.info.previous_until,
        Some(at(600)),
        "never past its deadline"
    );
}

/// An old secret presented after its grace revokes its token and the
/// token's descendants: refused at once, revoked by the next flush, one
/// audit entry however often it comes back. `refuse` only refuses it.
pub(super) fn reuse(b: &dyn Backend) {
    let root = create(b, &hard("alice", HOUR), 0);
    let child = create(b, &hard("alice", 30 * MIN).parent(root.info.id), 0);
    let new = b
        .rotate(root.info.id, &Rotation::new(), at(10))
        .expect("rotate");
    auth(b, &new.secret, 11).expect("the new secret works");
    auth(b, &child.secret, 11).expect("so does the child");
    for i in 0..50 {
        assert!(matches!(
            auth(b, &root.secret, 12 + i),
            Err(AuthError::Unknown)
        ));
    }
    // Refused at once, before any write.
    assert!(matches!(auth(b, &new.secret, 70), Err(AuthError::Unknown)));
    assert!(matches!(
        auth(b, &child.secret, 70),
        Err(AuthError::Unknown)
    ));
    // It makes nothing more.
    let v = authority(b.create(&hard("alice", MIN).parent(root.info.id), at(70)));
    assert_eq!(v, AuthorityViolation::NoParent(root.info.id));
    // Refused uses record nothing.
    for id in [root.info.id, child.info.id] {
        assert_eq!(b.get(id).expect("get").last_used_at, Some(at(11)), "{id}");
    }
    assert!(matches!(
        b.rotate(root.info.id, &Rotation::new(), at(71)),
        Err(StoreError::NotFound(_))
    ));
    b.flush().expect("flush");
    for id in [root.info.id, child.info.id] {
        assert!(matches!(b.get(id), Err(StoreError::NotFound(_))), "{id}");
    }
    let log = b.audit(at(0), Some("alice")).expect("audit");
    let tail: Vec<_> = log
        .iter()
        .filter(|e| matches!(e.action, AuditAction::ReplayedSecret | AuditAction::Revoke))
        .map(|e| (e.action, e.token_id, e.actor.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            (AuditAction::ReplayedSecret, Some(root.info.id), "-"),
            (AuditAction::Revoke, Some(root.info.id), REUSE_ACTOR),
            (AuditAction::Revoke, Some(child.info.id), REUSE_ACTOR),
        ],
        "one entry for 50 replays, then the family's revocation"
    );

    // `refuse`: the token lives on; still one entry per flush.
    b.set_policy(Policy::default().on_reuse(OnReuse::Refuse))
        .expect("policy");
    let t = create(b, &hard("bob", HOUR), 100);
    let new = b
        .rotate(t.info.id, &Rotation::new(), at(110))
        .expect("rotate");
    for i in 0..20 {
        assert!(matches!(
            auth(b, &t.secret, 111 + i),
            Err(AuthError::Unknown)
        ));
    }
    b.flush().expect("flush");
    auth(b, &new.secret, 200).expect("refuse keeps the token");
    let replays = |b: &dyn Backend| {
        b.audit(at(0), Some("bob"))
            .expect("audit")
            .iter()
            .filter(|e| e.action == AuditAction::ReplayedSecret)
            .count()
    };
    assert_eq!(replays(b), 1);
    assert!(matches!(auth(b, &t.secret, 201), Err(AuthError::Unknown)));
    b.flush().expect("flush");
    assert_eq!(replays(b), 2, "and one again after the next flush");
}

/// The parent a token records survives its own rotations; a rotation of
/// the parent does not detach it.
pub(super) fn lineage_survives_rotation(b: &dyn Backend) {
    let root = create(b, &hard("alice", HOUR), 0);
    let child = create(
        b,
        &NewToken::new("alice", ExpiryPolicy::hard(30 * MIN)).parent(root.info.id),
        0,
    );
    b.rotate(root.info.id, &Rotation::new().grace(MIN), at(10))
        .expect("rotate root");
    let r = b
        .rotate(child.info.id, &Rotation::new(), at(20))
        .expect("rotate child");
    assert_eq!(r.info.parent, Some(root.info.id));
    b.revoke(root.info.id).expect("revoke");
    assert!(matches!(auth(b, &r.secret, 30), Err(AuthError::Unknown)));
}

/// A family an admin shortened is refused at its new deadline, however
/// recently its tokens were used (a use buffered before the change does not
/// carry the old deadline past it).
pub(super) fn shortened_family_refused(b: &dyn Backend) {
    let parent = create(b, &hard("erin", 10 * HOUR), 0);
    let child = create(
        b,
        &sliding("erin", HOUR, Some(9 * HOUR)).parent(parent.info.id),
        0,
    );
    assert_eq!(
        auth(b, &child.secret, 1).expect("used").expires_at(),
        at(3601)
    );
    b.rotate(
        parent.info.id,
        &Rotation::new().new_lifetime(ExpiryPolicy::hard(MIN)),
        at(2),
    )
    .expect("shorten the parent");
    let used = auth(b, &child.secret, 30).expect("alive until the parent's end");
    assert_eq!(used.expires_at(), at(62));
    assert!(matches!(
        auth(b, &child.secret, 100),
        Err(AuthError::Expired { expires_at }) if expires_at == at(62)
    ));
    b.flush().expect("flush");
    assert_eq!(
        b.get(child.info.id).expect("get").expiry.expires_at(),
        at(62),
        "the flush writes no deadline past the limit"
    );
}

/// A change asked with a secret a rotation replaced (seen by a replica
/// that had not heard of the rotation yet, or replaced while the request
/// was on its way) is refused: rotating and minting need the current one.
pub(super) fn presented_secret_must_be_current(b: &dyn Backend) {
    let t = create(b, &hard("frank", HOUR), 0);
    let id = t.info.id;
    let as_presented = |s: &crate::TokenSecret| {
        crate::Identity::new(&t.info, t.info.expiry.expires_at()).presented_as(s.digest())
    };
    let s2 = b.rotate(id, &Rotation::new(), at(1)).expect("rotate");
    let stale = as_presented(&t.secret);
    let v = authority(b.rotate(id, &Rotation::new().presented(&stale), at(2)));
    assert_eq!(v, AuthorityViolation::NotCurrent(id));
    let v = authority(b.create(&hard("frank", MIN).child_of(&stale), at(2)));
    assert_eq!(v, AuthorityViolation::NotCurrent(id));
    // The current secret may.
    let current = as_presented(&s2.secret);
    let child = create(b, &hard("frank", MIN).child_of(&current), 3);
    assert_eq!(child.info.parent, Some(id));
    b.rotate(id, &Rotation::new().presented(&current), at(4))
        .expect("rotate with the current secret");
    // Nothing was changed by the refusals: two tokens, s2 replaced once.
    assert_eq!(b.list(None, true, at(4)).expect("list").len(), 2);
}
