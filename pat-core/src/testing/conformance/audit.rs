//! The contract cases of the audit log and of finding a token without
//! using it.

use crate::{
    AuditAction, AuditEntry, AuthError, DEFAULT_ACTOR, DEFAULT_AUDIT_RETENTION, Policy, Rotation,
    TokenSecret,
};

use super::Backend;
use super::harness::{MIN, at, auth, create, hard, sliding};

pub(super) fn audit_log(b: &dyn Backend) {
    let row = |e: &AuditEntry| {
        (
            e.action,
            e.token_id,
            e.user.clone(),
            e.actor.clone(),
            e.outcome.clone(),
        )
    };
    let t = b
        .acting_as("alice-admin")
        .create(&hard("alice", 10 * MIN), at(10))
        .expect("create");
    let r = b
        .acting_as("alice-admin")
        .rotate(t.info.id, &Rotation::new(), at(20))
        .expect("rotate");
    b.acting_as("bob-admin").revoke(t.info.id).expect("revoke");
    let c = create(b, &hard("carol", MIN), 30);
    assert_eq!(
        b.acting_as("ops")
            .revoke_user("carol")
            .expect("revoke_user"),
        1
    );
    assert_eq!(b.acting_as("cron").prune(at(40)).expect("prune"), 0);
    b.acting_as("sec")
        .set_policy(Policy::NONE.max_tokens_per_user(Some(5)))
        .expect("set policy");
    let id = Some(t.info.id);
    let alice = || "alice".to_owned();
    let expected = vec![
        (
            AuditAction::Create,
            id,
            alice(),
            "alice-admin".into(),
            "ok".into(),
        ),
        (
            AuditAction::Rotate,
            id,
            alice(),
            "alice-admin".into(),
            "ok".into(),
        ),
        (
            AuditAction::Revoke,
            id,
            alice(),
            "bob-admin".into(),
            "ok".into(),
        ),
        (
            AuditAction::Create,
            Some(c.info.id),
            "carol".into(),
            DEFAULT_ACTOR.into(),
            "ok".into(),
        ),
        // One entry per token revoked (each an event), then the user's.
        (
            AuditAction::Revoke,
            Some(c.info.id),
            "carol".into(),
            "ops".into(),
            crate::backend::authority::USER_REVOKED.into(),
        ),
        (
            AuditAction::RevokeUser,
            None,
            "carol".into(),
            "ops".into(),
            "1 token".into(),
        ),
        (
            AuditAction::Prune,
            None,
            String::new(),
            "cron".into(),
            "0 tokens".into(),
        ),
        (
            AuditAction::SetPolicy,
            None,
            String::new(),
            "sec".into(),
            "max lifetime none, max tokens per user 5".into(),
        ),
    ];
    let log = b.audit(at(0), None).expect("audit");
    assert_eq!(log.iter().map(row).collect::<Vec<_>>(), expected);
    assert_eq!((log[0].at, log[1].at), (at(10), at(20)));
    let carol: Vec<_> = b
        .audit(at(0), Some("carol"))
        .expect("audit")
        .iter()
        .map(row)
        .collect();
    assert_eq!(carol, expected[3..6]);
    assert_eq!(
        b.audit(at(15), Some("alice")).expect("audit").len(),
        2,
        "since"
    );
    let shown = format!("{log:?}");
    for secret in [&t.secret, &r.secret, &c.secret] {
        assert!(
            !shown.contains(&secret.expose_secret()[4..]),
            "a secret in the log"
        );
    }

    // A rotated secret replayed after its grace: refused, and in the log
    // once written (a flush; the request path itself never writes), with
    // the token's revocation by reuse detection after it.
    let u = create(b, &hard("dave", 10 * MIN), 50);
    b.rotate(u.info.id, &Rotation::new(), at(60))
        .expect("rotate");
    assert!(matches!(auth(b, &u.secret, 61), Err(AuthError::Unknown)));
    b.flush().expect("flush");
    let log = b.audit(at(0), Some("dave")).expect("audit");
    let tail: Vec<_> = log[log.len() - 2..]
        .iter()
        .map(|e| (e.action, e.token_id, e.actor.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            (AuditAction::ReplayedSecret, Some(u.info.id), "-"),
            (
                AuditAction::Revoke,
                Some(u.info.id),
                crate::backend::authority::REUSE_ACTOR
            ),
        ]
    );
    assert_eq!(log[log.len() - 2].outcome, "refused");

    // Prune drops entries past the retention (90 days by default).
    let later = at(DEFAULT_AUDIT_RETENTION.as_secs() + 45);
    b.prune(later).expect("prune");
    let kept = b.audit(at(0), None).expect("audit");
    assert!(kept.iter().all(|e| e.at >= at(45)), "{kept:?}");
    assert_eq!(kept.last().map(|e| e.action), Some(AuditAction::Prune));
}

pub(super) fn find_without_use(b: &dyn Backend) {
    let live = create(b, &sliding("alice", MIN, None), 0);
    let found = |t: &TokenSecret, secs| b.find(&t.digest(), at(secs)).expect("find");
    let info = found(&live.secret, 10).expect("a live token");
    assert_eq!((info.id, info.user.as_str()), (live.info.id, "alice"));
    assert_eq!(info.last_used_at, None, "find is not a use");
    assert_eq!(info.expiry.expires_at(), at(60), "nor a refresh");
    b.flush().expect("flush");
    assert_eq!(b.get(live.info.id).expect("get").last_used_at, None);
    // Expired: still found (the caller tells live from expired).
    assert!(
        found(&live.secret, 100)
            .expect("expired")
            .is_expired(at(100))
    );
    // A use is visible to find.
    let hard_one = create(b, &hard("bob", 10 * MIN), 0);
    auth(b, &hard_one.secret, 5).expect("use");
    assert_eq!(
        found(&hard_one.secret, 6).expect("found").last_used_at,
        Some(at(5))
    );
    // Rotated: the old secret during its grace, not after.
    let r = b
        .rotate(hard_one.info.id, &Rotation::new().grace(MIN), at(10))
        .expect("rotate");
    assert_eq!(
        found(&hard_one.secret, 69).map(|i| i.id),
        Some(hard_one.info.id)
    );
    assert!(found(&hard_one.secret, 70).is_none());
    assert_eq!(found(&r.secret, 70).map(|i| i.id), Some(hard_one.info.id));
    // Revoked, or never issued: nothing.
    b.revoke(live.info.id).expect("revoke");
    assert!(found(&live.secret, 10).is_none());
    assert!(found(&TokenSecret::generate(), 10).is_none());
}
