//! The authority rule's model test: random sequences of creating,
//! minting, rotating and revoking, checked against the rule's invariants
//! after every step.

use super::authority::{NODE, OTHER, scopes};
use super::{Backend, at};
use crate::{ExpiryPolicy, NewToken, Policy, Rotation, TokenId};

/// One step of the authority model.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// A root token, as an admin makes one.
    Create {
        secs: u64,
        sliding: bool,
        cap: Option<u64>,
        scopes: u8,
    },
    /// A token minted through the management API with token `parent`'s
    /// current secret.
    Mint {
        parent: usize,
        secs: u64,
        sliding: bool,
        cap: Option<u64>,
        scopes: u8,
    },
    /// `POST …/self/rotate` with a token's current secret or, when `old`,
    /// its last replaced one.
    SelfRotate {
        token: usize,
        old: bool,
        grace: u64,
        expire: Option<u64>,
    },
    /// An admin's rotation, with a new lifetime (hard, seconds) or not.
    AdminRotate {
        token: usize,
        grace: u64,
        lifetime: Option<u64>,
    },
    Revoke(usize),
    Advance(u64),
}

pub(super) fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    // Biased towards what succeeds: short children, capped sliding ones,
    // admin rotations that shorten.
    let life = || 1u64..4000;
    let cap = || proptest::option::weighted(0.8, 1u64..8000);
    prop_oneof![
        2 => (life(), any::<bool>(), cap(), 0u8..4)
            .prop_map(|(secs, sliding, cap, scopes)| Step::Create { secs, sliding, cap, scopes }),
        4 => (any::<usize>(), 1u64..1000, any::<bool>(), cap(), 0u8..4)
            .prop_map(|(parent, secs, sliding, cap, scopes)| Step::Mint { parent, secs, sliding, cap, scopes }),
        3 => (any::<usize>(), any::<bool>(), 0u64..200, proptest::option::of(1u64..8000))
            .prop_map(|(token, old, grace, expire)| Step::SelfRotate { token, old, grace, expire }),
        2 => (any::<usize>(), 0u64..200, proptest::option::of(1u64..3000))
            .prop_map(|(token, grace, lifetime)| Step::AdminRotate { token, grace, lifetime }),
        1 => any::<usize>().prop_map(Step::Revoke),
        2 => (1u64..600).prop_map(Step::Advance),
    ]
}

/// The scopes a step names: unrestricted, or one of three.
pub(super) fn scope_set(n: u8) -> Vec<String> {
    match n {
        0 => vec![],
        1 => vec![format!("node:{NODE}:r")],
        2 => vec![format!("node:{NODE}:rw")],
        _ => vec![format!("node:{OTHER}:r")],
    }
}

/// Runs `cases` random sequences of creating, minting through the
/// management API, rotating through self-service and as an admin, and
/// revoking, against a fresh backend from `make` (under a store policy
/// capping lifetimes at 2 hours), and checks after every step that no live
/// token has a later possible deadline than its parent or the policy
/// allows, none reaches further than its parent, none outlives a revoked
/// parent, and none has more than one live old secret.
pub fn run_authority<B: Backend + Send + Sync + 'static>(make: impl Fn() -> B, cases: u32) {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(step(), 1..40), |steps| {
        authority_case(std::sync::Arc::new(make()), steps)
    });
    if let Err(e) = result {
        panic!("authority model: {e}");
    }
}

pub(super) const POLICY_MAX: u64 = 7200;

pub(super) fn authority_case<B: Backend + Send + Sync + 'static>(
    b: std::sync::Arc<B>,
    steps: Vec<Step>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    use proptest::test_runner::TestCaseError;

    use crate::TokenInfo;
    use crate::routes::management::{Management, Principal};
    use crate::routes::self_service::SelfService;

    let fail = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    b.set_policy(Policy::default().max_lifetime(Some(std::time::Duration::from_secs(POLICY_MAX))))
        .map_err(|e| fail(&e))?;
    let admin: std::sync::Arc<dyn crate::Admin + Send + Sync> = b.clone();
    let api = Management::new(admin.clone());
    let own = SelfService::new(admin);
    // Every token made: its id, current secret and replaced secrets.
    let mut made: Vec<(TokenId, String, Vec<String>)> = Vec::new();
    let mut now = 1_000u64;
    let expiry_json = |secs: u64, sliding: bool, cap: Option<u64>| {
        if sliding {
            let mut v = serde_json::json!({ "auto": format!("{secs}s") });
            if let Some(c) = cap {
                v["max_lifetime"] = format!("{c}s").into();
            }
            v
        } else {
            serde_json::json!({ "expire": format!("{secs}s") })
        }
    };
    for step in steps {
        match step {
            Step::Create {
                secs,
                sliding,
                cap,
                scopes: s,
            } => {
                let expiry = if sliding {
                    ExpiryPolicy::sliding(
                        std::time::Duration::from_secs(secs),
                        cap.map(std::time::Duration::from_secs),
                    )
                } else {
                    ExpiryPolicy::hard(std::time::Duration::from_secs(secs))
                };
                let new = NewToken::new("alice", expiry).scopes(scopes(&scope_set(s)));
                if let Ok(c) = b.create(&new, at(now)) {
                    made.push((c.info.id, c.secret.expose_secret().to_owned(), Vec::new()));
                }
            }
            Step::Mint {
                parent,
                secs,
                sliding,
                cap,
                scopes: s,
            } if !made.is_empty() => {
                let (_, secret, _) = &made[parent % made.len()];
                let Ok(identity) = super::authenticate(&*b, secret, None, at(now)) else {
                    continue;
                };
                let mut body = expiry_json(secs, sliding, cap);
                body["label"] = "minted".into();
                let list = scope_set(s);
                if !list.is_empty() {
                    body["scopes"] = list.into();
                }
                let a = api.create_blocking(
                    &Principal::with_token(&identity),
                    body.to_string().as_bytes(),
                    at(now),
                );
                prop_assert!(
                    matches!(a.status, 201 | 400 | 403),
                    "mint: {} {}",
                    a.status,
                    a.body
                );
                if a.status == 201 {
                    let v: serde_json::Value =
                        serde_json::from_str(&a.body).map_err(|e| fail(&e))?;
                    let id: TokenId = v["id"]
                        .as_str()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| fail(&e))?;
                    prop_assert!(
                        v["parent"] == identity.token_id().to_string().as_str(),
                        "{}",
                        v
                    );
                    made.push((
                        id,
                        v["token"].as_str().unwrap_or_default().to_owned(),
                        Vec::new(),
                    ));
                }
            }
            Step::SelfRotate {
                token,
                old,
                grace,
                expire,
            } if !made.is_empty() => {
                let i = token % made.len();
                let presented = if old {
                    match made[i].2.last() {
                        Some(s) => s.clone(),
                        None => continue,
                    }
                } else {
                    made[i].1.clone()
                };
                let Ok(identity) = super::authenticate(&*b, &presented, None, at(now)) else {
                    continue;
                };
                let mut query = format!("grace={grace}s");
                if let Some(e) = expire {
                    query.push_str(&format!("&expire={e}s"));
                }
                let a = own.rotate_blocking(&identity, Some(&query), at(now));
                prop_assert!(
                    matches!(a.status, 200 | 400 | 403 | 404),
                    "rotate: {} {}",
                    a.status,
                    a.body
                );
                if old {
                    prop_assert!(a.status != 200, "a secret in its grace rotated its token");
                }
                if a.status == 200 {
                    let v: serde_json::Value =
                        serde_json::from_str(&a.body).map_err(|e| fail(&e))?;
                    let secret = v["token"].as_str().unwrap_or_default().to_owned();
                    let previous = std::mem::replace(&mut made[i].1, secret);
                    made[i].2.push(previous);
                }
            }
            Step::AdminRotate {
                token,
                grace,
                lifetime,
            } if !made.is_empty() => {
                let i = token % made.len();
                let mut rotation = Rotation::new().grace(std::time::Duration::from_secs(grace));
                if let Some(l) = lifetime {
                    rotation = rotation
                        .new_lifetime(ExpiryPolicy::hard(std::time::Duration::from_secs(l)));
                }
                if let Ok(c) = b.rotate(made[i].0, &rotation, at(now)) {
                    let previous =
                        std::mem::replace(&mut made[i].1, c.secret.expose_secret().to_owned());
                    made[i].2.push(previous);
                }
            }
            Step::Revoke(i) if !made.is_empty() => {
                let _ = b.revoke(made[i % made.len()].0);
            }
            Step::Advance(s) => now += s,
            _ => {}
        }

        // The invariants, at every step.
        let all: std::collections::BTreeMap<TokenId, TokenInfo> = b
            .list(None, true, at(now))
            .map_err(|e| fail(&e))?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        for t in all.values().filter(|t| !t.is_expired(at(now))) {
            let latest = t.latest_possible();
            // Within the policy, counted from the start of its lifetime.
            prop_assert!(
                latest.is_some_and(|l| l
                    <= t.lifetime_from
                        .saturating_add(std::time::Duration::from_secs(POLICY_MAX))),
                "{} outlives the policy: {:?}",
                t.id,
                t
            );
            let Some(parent) = t.parent else { continue };
            let p = all.get(&parent);
            prop_assert!(
                p.is_some(),
                "{} outlived its revoked parent {}",
                t.id,
                parent
            );
            let p = p.expect("checked");
            if let Some(limit) = p.latest_possible() {
                prop_assert!(
                    latest.is_some_and(|l| l <= limit),
                    "{} may live past its parent: {:?} > {}",
                    t.id,
                    latest,
                    limit
                );
            }
            prop_assert!(
                crate::backend::authority::within_scopes(&p.scopes, &t.scopes).is_ok(),
                "{} reaches further than its parent",
                t.id
            );
        }
        for (id, _, old) in &made {
            let live = old
                .iter()
                .filter(|s| {
                    crate::TokenDigest::from_token(s)
                        .ok()
                        .and_then(|d| b.find(&d, at(now)).ok().flatten())
                        .is_some()
                })
                .count();
            prop_assert!(live <= 1, "{id} has {live} live old secrets");
        }
    }
    Ok(())
}
