//! The contract cases of the [`Verifier`](crate::Verifier) documentation, and the table
//! that names them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::{
    AuthError, NewTokenError, NodeId, Perm, Scope, Scopes, StoreError, Timestamp, TokenId,
    TokenInfo, TokenSecret,
};

use super::audit::{audit_log, find_without_use};
use super::events::{delivery_state, event_stream, expiry_notices};
use super::harness::{MIN, at, auth, create, hard, sliding};
use super::rotation::{
    policy_limits, rotation_at_once, rotation_keeps_record, rotation_restarts_expiry,
    rotation_with_grace,
};
use super::{Backend, authenticate};

/// A way a backend can refuse a lookup, and the status the adapters must
/// answer it with.
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    /// What it is.
    pub name: &'static str,
    /// The error, made fresh for each use.
    pub error: fn() -> AuthError,
    /// 401 for a refused token, 503 for an unavailable backend.
    pub status: u16,
}

/// Every kind of refusal a backend can give.
pub const REFUSALS: &[Refusal] = &[
    Refusal {
        name: "unknown",
        error: || AuthError::Unknown,
        status: 401,
    },
    Refusal {
        name: "expired",
        error: || AuthError::Expired {
            expires_at: Timestamp::UNIX_EPOCH,
        },
        status: 401,
    },
    Refusal {
        name: "wrong user",
        error: || AuthError::WrongUser,
        status: 401,
    },
    Refusal {
        name: "disabled",
        error: || AuthError::Disabled,
        status: 401,
    },
    Refusal {
        name: "address not allowed",
        error: || AuthError::AddressNotAllowed,
        status: 401,
    },
    Refusal {
        name: "malformed, says the backend",
        error: || AuthError::Malformed(crate::ParseTokenError::Checksum),
        status: 401,
    },
    Refusal {
        name: "storage down",
        error: || {
            AuthError::Store(StoreError::Storage(crate::BackendError::new(
                std::io::Error::other("disk on fire"),
            )))
        },
        status: 503,
    },
];

pub(super) type Case = fn(&dyn Backend);

/// The contract cases, by name.
pub const CASES: &[(&str, Case)] = &[
    (
        "unknown, expired and revoked are told apart",
        unknown_expired_revoked,
    ),
    (
        "a wrong Basic user is refused and records nothing",
        wrong_user,
    ),
    (
        "a sliding token used every half window lives on",
        sliding_lives_on,
    ),
    (
        "a sliding token idle for a window is dead",
        sliding_idle_dies,
    ),
    ("a sliding token dies at its cap", sliding_cap),
    ("a hard token is not extended by use", hard_not_extended),
    (
        "the identity carries the user, id and scopes",
        identity_carries_record,
    ),
    ("admin operations", admin_operations),
    ("invalid requests store nothing", invalid_requests),
    ("uses are visible to every read", uses_visible),
    ("a refreshed token survives prune", refreshed_survives_prune),
    (
        "a token revoked before a flush stays revoked",
        revoked_stays_revoked,
    ),
    ("the last use never moves back", last_use_never_back),
    (
        "no lookup succeeds after revoke returns",
        no_success_after_revoke,
    ),
    (
        "flushes racing uses never expire a sliding token early",
        flush_races,
    ),
    (
        "rotation: the old secret is refused at once, the new one works",
        rotation_at_once,
    ),
    (
        "rotation with grace: both secrets work until it ends",
        rotation_with_grace,
    ),
    (
        "rotation restarts the token's own expiry, or the one given",
        rotation_restarts_expiry,
    ),
    (
        "rotation keeps the record and fails on unknown ids",
        rotation_keeps_record,
    ),
    (
        "the policy refuses what breaks it and leaves old tokens alone",
        policy_limits,
    ),
    (
        "every change is in the audit log, with its actor",
        audit_log,
    ),
    (
        "each change to a token is one event, in commit order, read on without a gap",
        event_stream,
    ),
    (
        "a webhook's delivery state changes only by compare-and-swap",
        delivery_state,
    ),
    (
        "each expiry notice is written once per token, threshold and deadline",
        expiry_notices,
    ),
    (
        "find answers what a secret stands for and records no use",
        find_without_use,
    ),
    (
        "a token made with a token records it and stays within it",
        super::authority::lineage,
    ),
    (
        "revoking a token revokes its descendants, each audited",
        super::authority::cascade,
    ),
    (
        "a rotation stays in the token's envelope and shortens its family",
        super::authority::envelope,
    ),
    (
        "a rotation ends earlier graces, and the grace is capped",
        super::authority::grace,
    ),
    (
        "an old secret replayed after its grace revokes the family at the next flush",
        super::authority::reuse,
    ),
    (
        "a token's parent survives rotations of either",
        super::authority::lineage_survives_rotation,
    ),
    (
        "a shortened family is refused at its new deadline, however recently used",
        super::authority::shortened_family_refused,
    ),
    (
        "rotating or minting needs the current secret, not a replaced one",
        super::authority::presented_secret_must_be_current,
    ),
    (
        "a changed prefix keeps the tokens of the former ones working",
        super::prefix::prefix_change,
    ),
    (
        "the catalog is kept and checked, and tokens hold what their names come to",
        super::catalog::catalog_and_holdings,
    ),
    (
        "a change of the catalog changes what tokens hold at once",
        super::catalog::catalog_changes_reach_tokens,
    ),
    (
        "a removed permission leaves its tokens, revoking those left with nothing",
        super::catalog::removal,
    ),
    (
        "a token made with a token holds no permission its parent lacks",
        super::catalog::children_hold_no_more,
    ),
    (
        "a removal leaves no child holding what its parent lost",
        super::catalog::removal_keeps_families_within,
    ),
    (
        "a disabled token is refused and keeps everything else until enabled",
        super::suspension::disable_and_enable,
    ),
    (
        "disabling reaches the family, enabling gives back what it took",
        super::suspension::disabling_reaches_the_family,
    ),
    (
        "a token's metadata comes back with every authentication",
        super::metadata::metadata_comes_back,
    ),
    (
        "a token with an address rule is used from its networks only",
        super::addresses::used_from_its_networks_only,
    ),
    (
        "a token keeps the last five client addresses it was used from",
        super::addresses::the_last_five_addresses_are_kept,
    ),
    (
        "a token's rate limit is kept, handed to the gate, never raised by a child",
        super::rates::kept_and_never_raised,
    ),
    (
        "a token's use quota is spent once per use, exactly, and never raised by a child",
        super::quotas::spent_once_each_and_never_raised,
    ),
];

/// Runs every contract case against a fresh backend from `make`, and
/// panics naming the first case that fails.
pub fn run_contract<B: Backend>(make: impl Fn() -> B) {
    for (name, case) in CASES {
        let backend = make();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(&backend))) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            panic!("contract case `{name}` failed: {msg}");
        }
    }
}

pub(super) fn unknown_expired_revoked(b: &dyn Backend) {
    let created = create(b, &hard("alice", MIN), 0);
    let forged = TokenSecret::generate();
    assert!(matches!(auth(b, &forged, 0), Err(AuthError::Unknown)));
    let id = auth(b, &created.secret, 59).expect("alive at 59");
    assert_eq!(id.user(), "alice");
    assert_eq!(id.expires_at(), at(60));
    assert!(matches!(
        auth(b, &created.secret, 60),
        Err(AuthError::Expired { expires_at }) if expires_at == at(60)
    ));
    b.revoke(created.info.id).expect("revoke");
    assert!(matches!(
        auth(b, &created.secret, 1),
        Err(AuthError::Unknown)
    ));
}

pub(super) fn wrong_user(b: &dyn Backend) {
    let created = create(b, &hard("alice", MIN), 0);
    let token = created.secret.expose_secret();
    assert!(matches!(
        authenticate(b, token, Some("bob"), at(1)),
        Err(AuthError::WrongUser)
    ));
    b.flush().expect("flush");
    assert_eq!(b.get(created.info.id).expect("get").last_used_at, None);
    let id = authenticate(b, token, Some("alice"), at(2)).expect("right user");
    assert_eq!(id.token_id(), created.info.id);
}

pub(super) fn sliding_lives_on(b: &dyn Backend) {
    let created = create(b, &sliding("alice", MIN, None), 0);
    let mut now = 0;
    while now <= 10 * 60 {
        let id = auth(b, &created.secret, now).expect("alive");
        assert_eq!(id.expires_at(), at(now + 60));
        now += 30;
    }
    let info = b.get(created.info.id).expect("get");
    assert_eq!(info.last_used_at, Some(at(600)));
    assert_eq!(info.expiry.expires_at(), at(660));
}

pub(super) fn sliding_idle_dies(b: &dyn Backend) {
    let created = create(b, &sliding("alice", MIN, None), 0);
    auth(b, &created.secret, 30).expect("alive");
    assert!(matches!(
        auth(b, &created.secret, 90),
        Err(AuthError::Expired { expires_at }) if expires_at == at(90)
    ));
}

pub(super) fn sliding_cap(b: &dyn Backend) {
    let created = create(b, &sliding("alice", MIN, Some(5 * MIN)), 0);
    for now in (0..300).step_by(10) {
        let id = auth(b, &created.secret, now).expect("alive");
        assert!(id.expires_at() <= at(300));
    }
    assert!(matches!(
        auth(b, &created.secret, 300),
        Err(AuthError::Expired { .. })
    ));
}

pub(super) fn hard_not_extended(b: &dyn Backend) {
    let created = create(b, &hard("alice", MIN), 0);
    for now in (0..60).step_by(10) {
        assert_eq!(
            auth(b, &created.secret, now).expect("alive").expires_at(),
            at(60)
        );
    }
    assert!(auth(b, &created.secret, 60).is_err());
}

pub(super) fn identity_carries_record(b: &dyn Backend) {
    let node = NodeId::from_bytes([9; 16]);
    let scopes: Scopes = [Scope {
        node,
        perm: Perm::READ,
    }]
    .into_iter()
    .collect();
    let new = hard("alice", MIN).scopes(scopes.clone()).label("deploy");
    let created = create(b, &new, 0);
    let id = auth(b, &created.secret, 0).expect("alive");
    assert_eq!(id.scopes(), &scopes);
    assert_eq!(b.get(id.token_id()).expect("get").label, "deploy");
    assert_eq!(id.token_id(), created.info.id);
    assert!(id.permits([&node], Perm::READ));
    assert!(!id.permits([&node], Perm::WRITE));
}

pub(super) fn admin_operations(b: &dyn Backend) {
    let a1 = create(b, &hard("alice", MIN), 0).info;
    let a2 = create(b, &hard("alice", 10 * MIN), 1).info;
    let b1 = create(b, &hard("bob", MIN).label("ci").created_by("root"), 2).info;
    assert_eq!(b.get(b1.id).expect("get"), b1);
    assert_eq!((b1.label.as_str(), b1.created_by.as_str()), ("ci", "root"));

    let ids = |v: Vec<TokenInfo>| v.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let list = |user, all, now| ids(b.list(user, all, at(now)).expect("list"));
    assert_eq!(list(None, false, 3), [a1.id, a2.id, b1.id]);
    assert_eq!(list(Some("alice"), false, 3), [a1.id, a2.id]);
    assert_eq!(list(Some("carol"), true, 3), []);
    assert_eq!(list(None, false, 61), [a2.id, b1.id]);
    assert_eq!(list(None, false, 62), [a2.id]);
    assert_eq!(list(None, true, 62), [a1.id, a2.id, b1.id]);

    assert_eq!(b.prune(at(62)).expect("prune"), 2);
    assert_eq!(b.prune(at(62)).expect("prune"), 0);
    assert!(matches!(b.get(a1.id), Err(StoreError::NotFound(id)) if id == a1.id));
    assert!(matches!(b.revoke(b1.id), Err(StoreError::NotFound(_))));

    let a3 = create(b, &hard("alice", MIN), 62).info;
    let revoked = b.revoke(a2.id).expect("revoke");
    assert_eq!(revoked.id, a2.id);
    assert_eq!(b.revoke_user("alice").expect("revoke_user"), 1);
    assert_eq!(b.revoke_user("alice").expect("revoke_user"), 0);
    assert!(b.list(None, true, at(62)).expect("list").is_empty());
    assert!(matches!(b.revoke(a3.id), Err(StoreError::NotFound(_))));
}

pub(super) fn invalid_requests(b: &dyn Backend) {
    let err = b.create(&hard("a:b", MIN), at(0)).unwrap_err();
    assert!(
        matches!(err, StoreError::NewToken(NewTokenError::User { .. })),
        "{err:?}"
    );
    let err = b
        .create(&hard("alice", Duration::from_secs(10)), Timestamp::MAX)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NewToken(NewTokenError::TooLate)),
        "{err:?}"
    );
    let err = b
        .create(&sliding("alice", 2 * MIN, Some(MIN)), at(0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewToken(NewTokenError::CapBelowWindow { .. })
        ),
        "{err:?}"
    );
    assert!(b.list(None, true, at(0)).expect("list").is_empty());
}

pub(super) fn uses_visible(b: &dyn Backend) {
    let s = create(b, &sliding("alice", MIN, None), 0);
    let h = create(b, &hard("bob", MIN), 0);
    auth(b, &s.secret, 50).expect("alive");
    auth(b, &h.secret, 51).expect("alive");
    for round in ["before the flush", "after the flush"] {
        let got = b.get(s.info.id).expect("get");
        assert_eq!(
            (got.expiry.expires_at(), got.last_used_at),
            (at(110), Some(at(50))),
            "{round}"
        );
        assert_eq!(
            b.get(h.info.id).expect("get").last_used_at,
            Some(at(51)),
            "{round}"
        );
        let listed: Vec<TokenId> = b
            .list(None, false, at(70))
            .expect("list")
            .iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(
            listed,
            [s.info.id],
            "{round}: refreshed one live, hard one expired"
        );
        b.flush().expect("flush");
    }
}

pub(super) fn refreshed_survives_prune(b: &dyn Backend) {
    // Regression guard: prune must judge expiry with uses merged, or it
    // deletes a token that was just used.
    let s = create(b, &sliding("alice", MIN, None), 0);
    auth(b, &s.secret, 50).expect("alive");
    assert_eq!(b.prune(at(90)).expect("prune"), 0);
    auth(b, &s.secret, 100).expect("alive after prune");
    b.flush().expect("flush");
    assert_eq!(b.prune(at(159)).expect("prune"), 0);
    auth(b, &s.secret, 159).expect("alive after the flush");
}

pub(super) fn revoked_stays_revoked(b: &dyn Backend) {
    let a = create(b, &hard("alice", MIN), 0);
    auth(b, &a.secret, 1).expect("alive");
    b.revoke(a.info.id).expect("revoke");
    b.flush().expect("flush");
    assert!(b.list(None, true, at(1)).expect("list").is_empty());
    assert!(matches!(auth(b, &a.secret, 2), Err(AuthError::Unknown)));
}

pub(super) fn last_use_never_back(b: &dyn Backend) {
    let a = create(b, &hard("alice", MIN), 0);
    auth(b, &a.secret, 10).expect("alive");
    auth(b, &a.secret, 5).expect("alive");
    assert_eq!(b.get(a.info.id).expect("get").last_used_at, Some(at(10)));
    b.flush().expect("flush");
    auth(b, &a.secret, 7).expect("alive");
    b.flush().expect("flush");
    assert_eq!(b.get(a.info.id).expect("get").last_used_at, Some(at(10)));
}

pub(super) fn no_success_after_revoke(b: &dyn Backend) {
    // Readers race a revocation; once `revoke` has returned, every lookup
    // that starts must fail.
    let t = create(b, &hard("alice", MIN), 0);
    let revoked = AtomicBool::new(false);
    let seen_after = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let after = revoked.load(Ordering::SeqCst);
                    let ok = auth(b, &t.secret, 1).is_ok();
                    assert!(!(after && ok), "authenticated after revoke returned");
                    if after {
                        seen_after.store(true, Ordering::SeqCst);
                        return;
                    }
                    assert!(std::time::Instant::now() < deadline, "revoke never came");
                }
            });
        }
        // Let the readers get going (and fill any cache) before revoking.
        while b.get(t.info.id).expect("get").last_used_at.is_none() {
            thread::yield_now();
        }
        b.revoke(t.info.id).expect("revoke");
        revoked.store(true, Ordering::SeqCst);
    });
    assert!(seen_after.load(Ordering::SeqCst));
}

pub(super) fn flush_races(b: &dyn Backend) {
    // Each use at t extends the deadline to t + 10 s and the next use comes
    // 5 s later, so every use must succeed while flushes run alongside.
    let t = create(b, &sliding("alice", Duration::from_secs(10), None), 0);
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                b.flush().expect("flush");
            }
        });
        for i in 0..2_000u64 {
            if let Err(e) = auth(b, &t.secret, i * 5) {
                done.store(true, Ordering::SeqCst);
                panic!("use {i} at {}: {e}", at(i * 5));
            }
        }
        done.store(true, Ordering::SeqCst);
    });
}
