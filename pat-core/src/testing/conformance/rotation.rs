//! The contract cases of rotation (at once, with a grace, the new expiry,
//! the record kept) and of the store's policy.

use crate::{
    AuthError, ExpiryPolicy, NewToken, NewTokenError, NodeId, Perm, Policy, PolicyViolation,
    Rotation, Scope, Scopes, StoreError, TokenId,
};

use super::harness::{MIN, at, auth, create, hard, sliding};
use super::{Backend, authenticate};

/// Refuse-and-log on reuse, for the cases about retired secrets themselves
/// (the default revokes the token when one is replayed; see
/// `reuse_revokes_the_family`).
pub(super) fn refuse_on_reuse(b: &dyn Backend) {
    b.set_policy(Policy::default().on_reuse(crate::OnReuse::Refuse))
        .expect("set the policy");
}

pub(super) fn rotation_at_once(b: &dyn Backend) {
    refuse_on_reuse(b);
    let old = create(b, &hard("alice", 10 * MIN), 0);
    auth(b, &old.secret, 1).expect("before");
    let new = b
        .rotate(old.info.id, &Rotation::new(), at(2))
        .expect("rotate");
    assert_eq!(new.info.id, old.info.id);
    assert_ne!(new.secret.digest(), old.secret.digest());
    assert!(
        matches!(auth(b, &old.secret, 2), Err(AuthError::Unknown)),
        "old secret refused at once"
    );
    assert_eq!(
        auth(b, &new.secret, 2).expect("new").token_id(),
        old.info.id
    );
    b.flush().expect("flush");
    assert!(matches!(auth(b, &old.secret, 3), Err(AuthError::Unknown)));
    // Rotated again: each retired secret stays refused.
    let newer = b
        .rotate(old.info.id, &Rotation::new(), at(4))
        .expect("rotate");
    for t in [&old.secret, &new.secret] {
        assert!(matches!(auth(b, t, 4), Err(AuthError::Unknown)));
    }
    auth(b, &newer.secret, 4).expect("newest");
    // Revoked: every secret of the token is refused.
    b.revoke(old.info.id).expect("revoke");
    for t in [&old.secret, &new.secret, &newer.secret] {
        assert!(matches!(auth(b, t, 5), Err(AuthError::Unknown)));
    }
    assert_eq!(b.prune(at(5)).expect("prune"), 0);
}

pub(super) fn rotation_with_grace(b: &dyn Backend) {
    refuse_on_reuse(b);
    let old = create(b, &sliding("alice", 10 * MIN, None), 0);
    let new = b
        .rotate(old.info.id, &Rotation::new().grace(MIN), at(100))
        .expect("rotate");
    // Both work during the grace; a use of either is a use of the token.
    let through_old = auth(b, &old.secret, 130).expect("old within grace");
    assert_eq!(through_old.token_id(), old.info.id);
    assert_eq!(through_old.expires_at(), at(130 + 600));
    auth(b, &new.secret, 140).expect("new within grace");
    b.flush().expect("flush");
    assert_eq!(b.get(old.info.id).expect("get").last_used_at, Some(at(140)));
    let through_old = authenticate(b, old.secret.expose_secret(), Some("bob"), at(150));
    assert!(
        matches!(through_old, Err(AuthError::WrongUser)),
        "{through_old:?}"
    );
    // The grace ends at rotation + grace, exactly.
    auth(b, &old.secret, 159).expect("last second of grace");
    assert!(
        matches!(auth(b, &old.secret, 160), Err(AuthError::Unknown)),
        "old refused once the grace ends"
    );
    auth(b, &new.secret, 160).expect("new after grace");
    // A retired secret never outlives its token.
    let other = create(b, &hard("bob", 10 * MIN), 200);
    let _ = b
        .rotate(other.info.id, &Rotation::new().grace(10 * MIN), at(200))
        .expect("rotate");
    b.revoke(other.info.id).expect("revoke");
    assert!(matches!(
        auth(b, &other.secret, 201),
        Err(AuthError::Unknown)
    ));
}

pub(super) fn rotation_restarts_expiry(b: &dyn Backend) {
    // Hard: the lifetime it was issued with, from the rotation.
    let h = create(b, &hard("alice", 10 * MIN), 0);
    let r = b
        .rotate(h.info.id, &Rotation::new(), at(300))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(300 + 600));
    assert_eq!(r.info.rotated_at, Some(at(300)));
    assert_eq!(r.info.created_at, at(0));
    // ...also the next time: the lifetime is measured from the last rotation.
    let r = b
        .rotate(h.info.id, &Rotation::new(), at(400))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(400 + 600));
    // An expired token is rotated too: its expiry restarts.
    let r = b
        .rotate(h.info.id, &Rotation::new(), at(5000))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(5600));
    auth(b, &r.secret, 5001).expect("alive again");

    // Sliding with a cap: the cap counts from the token's first issue, and
    // a rotation stays within it (issue 21: rotations used to restart it);
    // only a new lifetime, an admin's decision, starts it again.
    let s = create(b, &sliding("alice", MIN, Some(5 * MIN)), 0);
    let r = b
        .rotate(s.info.id, &Rotation::new(), at(200))
        .expect("rotate");
    assert_eq!(r.info.expiry.expires_at(), at(260));
    for t in (230..=290).step_by(30) {
        auth(b, &r.secret, t).expect("used every half window");
    }
    assert_eq!(
        auth(b, &r.secret, 295).expect("capped").expires_at(),
        at(300)
    );
    assert!(matches!(
        auth(b, &r.secret, 300),
        Err(AuthError::Expired { .. })
    ));
    let again = Rotation::new().new_lifetime(sliding("alice", MIN, Some(5 * MIN)).expiry);
    let r = b.rotate(s.info.id, &again, at(310)).expect("rotate");
    assert_eq!(r.info.lifetime_from, at(310));
    for t in (340..=580).step_by(30) {
        auth(b, &r.secret, t).expect("used every half window");
    }
    assert_eq!(
        auth(b, &r.secret, 600).expect("capped").expires_at(),
        at(310 + 300)
    );

    // A policy given replaces the token's own.
    let r = b
        .rotate(
            h.info.id,
            &Rotation::new().expiry(ExpiryPolicy::sliding(MIN, None)),
            at(6000),
        )
        .expect("rotate");
    assert_eq!(r.info.expiry.window(), Some(MIN));
    assert_eq!(b.get(h.info.id).expect("get").expiry, r.info.expiry);
    // A policy the store refuses changes nothing.
    let err = b
        .rotate(
            h.info.id,
            &Rotation::new().expiry(ExpiryPolicy::sliding(2 * MIN, Some(MIN))),
            at(6001),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewToken(NewTokenError::CapBelowWindow { .. })
        ),
        "{err:?}"
    );
    auth(b, &r.secret, 6001).expect("still the last secret");
}

pub(super) fn rotation_keeps_record(b: &dyn Backend) {
    let node = NodeId::generate();
    let scopes: Scopes = [Scope {
        node,
        perm: Perm::READ,
    }]
    .into_iter()
    .collect();
    let t = create(
        b,
        &hard("alice", 10 * MIN)
            .label("deploy")
            .created_by("root")
            .scopes(scopes.clone()),
        0,
    );
    auth(b, &t.secret, 10).expect("use");
    let r = b
        .rotate(t.info.id, &Rotation::new(), at(20))
        .expect("rotate");
    let got = b.get(t.info.id).expect("get");
    assert_eq!(got, r.info);
    assert_eq!(
        (
            got.user.as_str(),
            got.label.as_str(),
            got.created_by.as_str()
        ),
        ("alice", "deploy", "root")
    );
    assert_eq!(got.scopes, scopes);
    assert_eq!(got.last_used_at, Some(at(10)));
    assert_eq!(got.created_at, at(0));
    let identity = auth(b, &r.secret, 21).expect("new");
    assert_eq!(identity.scopes(), &scopes);
    assert_eq!(b.list(None, true, at(21)).expect("list").len(), 1);

    let unknown = TokenId::from_u64(0x0123_4567_89ab_cdef);
    assert!(matches!(
        b.rotate(unknown, &Rotation::new(), at(21)),
        Err(StoreError::NotFound(id)) if id == unknown
    ));
}

pub(super) fn policy_limits(b: &dyn Backend) {
    assert_eq!(b.policy().expect("policy"), Policy::NONE);
    let old = create(b, &hard("alice", 10 * MIN), 0);
    let policy = Policy::NONE
        .max_lifetime(Some(5 * MIN))
        .max_tokens_per_user(Some(2));
    b.set_policy(policy).expect("set policy");
    assert_eq!(b.policy().expect("policy"), policy);
    let refused = |new: &NewToken, secs: u64| match b.create(new, at(secs)) {
        Err(StoreError::Policy(v)) => v,
        other => panic!("not refused by the policy: {other:?}"),
    };

    // Lifetime: a hard limit up to the maximum; a sliding token needs a cap
    // within it.
    assert!(matches!(
        refused(&hard("bob", 6 * MIN), 1),
        PolicyViolation::Lifetime { .. }
    ));
    assert!(matches!(
        refused(&sliding("bob", MIN, None), 1),
        PolicyViolation::Uncapped { .. }
    ));
    assert!(matches!(
        refused(&sliding("bob", MIN, Some(10 * MIN)), 1),
        PolicyViolation::Lifetime { .. }
    ));
    create(b, &hard("bob", 5 * MIN), 1);
    create(b, &sliding("bob", MIN, Some(5 * MIN)), 1);

    // Count: live tokens of the user; expired ones do not count.
    let v = refused(&hard("bob", MIN), 2);
    assert!(
        matches!(v, PolicyViolation::TooMany { max: 2, .. }),
        "{v:?}"
    );
    assert!(v.to_string().contains("bob"), "{v}");
    create(b, &hard("carol", MIN), 2);
    create(b, &hard("bob", MIN), 400);

    // Existing tokens are left alone; rotating one applies the policy,
    // whose maximum counts from the token's first issue (issue 21: a
    // rotation used to start it again), so a rotation that would end past
    // it is refused however short it asks...
    auth(b, &old.secret, 401).expect("a token older than the policy still works");
    assert!(matches!(
        b.rotate(old.info.id, &Rotation::new(), at(401)),
        Err(StoreError::Policy(PolicyViolation::Lifetime { .. }))
    ));
    assert!(matches!(
        b.rotate(
            old.info.id,
            &Rotation::new().expiry(ExpiryPolicy::hard(MIN)),
            at(402)
        ),
        Err(StoreError::Policy(PolicyViolation::Lifetime { .. }))
    ));
    auth(b, &old.secret, 402).expect("a refused rotation changes nothing");
    // ...and one within it goes through; an admin's new lifetime counts
    // from the rotation.
    let young = create(b, &hard("carol", MIN), 400);
    b.rotate(young.info.id, &Rotation::new(), at(430))
        .expect("a rotation within the policy");
    b.rotate(
        old.info.id,
        &Rotation::new().new_lifetime(ExpiryPolicy::hard(5 * MIN)),
        at(402),
    )
    .expect("a new lifetime within the policy");

    b.set_policy(Policy::NONE).expect("clear");
    assert_eq!(b.policy().expect("policy"), Policy::NONE);
    create(b, &hard("bob", 10 * MIN), 403);
    create(b, &hard("bob", 10 * MIN), 403);
}
