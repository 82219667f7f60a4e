//! The model test: random sequences of operations against a backend and
//! a `BTreeMap`, every answer and every listing compared.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::{
    AuthError, ExpiryPolicy, NewToken, Rotation, StoreError, Timestamp, TokenDigest, TokenId,
    TokenSecret,
};

use super::harness::at;
use super::{Backend, authenticate};

/// One step of the model test.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Create {
        user: u8,
        secs: u64,
        sliding: bool,
        cap: Option<u64>,
    },
    Revoke(usize),
    /// Rotate the token of an issued secret, with this grace (seconds).
    Rotate(usize, u64),
    RevokeUser(u8),
    Prune,
    Auth(usize),
    AuthAs(usize, u8),
    /// `find` an issued secret: no use may be recorded (the listing after
    /// the step checks that).
    Find(usize),
    Forged,
    Advance(u64),
    Flush,
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, 1u64..200, any::<bool>(), proptest::option::of(1u64..400))
            .prop_map(|(user, secs, sliding, cap)| Op::Create { user, secs, sliding, cap }),
        2 => any::<usize>().prop_map(Op::Revoke),
        2 => (any::<usize>(), prop_oneof![Just(0u64), 1u64..100]).prop_map(|(i, g)| Op::Rotate(i, g)),
        1 => (0u8..3).prop_map(Op::RevokeUser),
        1 => Just(Op::Prune),
        5 => any::<usize>().prop_map(Op::Auth),
        1 => (any::<usize>(), 0u8..3).prop_map(|(i, u)| Op::AuthAs(i, u)),
        2 => any::<usize>().prop_map(Op::Find),
        1 => Just(Op::Forged),
        3 => (1u64..120).prop_map(Op::Advance),
        2 => Just(Op::Flush),
    ]
}

/// What the model knows about a live token.
#[derive(Debug)]
pub(super) struct Model {
    user: String,
    /// When the current secret was issued (creation or last rotation).
    issued_at: u64,
    /// When the token's lifetime began (its creation: rotations stay
    /// within it), from which a sliding cap counts.
    lifetime_from: u64,
    rotated_at: Option<u64>,
    expires_at: u64,
    last_used_at: Option<u64>,
    window: Option<u64>,
    cap: Option<u64>,
}

/// Runs `cases` random sequences of operations against a fresh backend from
/// `make` and a `BTreeMap` model, checking every answer and, after every
/// step, that the listing is exactly the model.
pub fn run_model<B: Backend>(make: impl Fn() -> B, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        let backend = make();
        model_case(&backend, ops)
    });
    if let Err(e) = result {
        panic!("model test: {e}");
    }
}

pub(super) fn model_case(b: &dyn Backend, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model: BTreeMap<TokenId, Model> = BTreeMap::new();
    // Every secret ever issued, so revoked and retired ones can be
    // presented again; a retired one with the time it stops working.
    let mut issued: Vec<(TokenId, TokenSecret)> = Vec::new();
    let mut retires: BTreeMap<TokenDigest, u64> = BTreeMap::new();
    // Tokens an old secret was replayed for after its grace: refused, and
    // revoked by the next flush (the default policy).
    let mut reused: std::collections::BTreeSet<TokenId> = Default::default();
    let mut now = 1_000u64;
    let err = |e: &dyn std::fmt::Display| TestCaseError::fail(e.to_string());
    for op in ops {
        match op {
            Op::Create {
                user,
                secs,
                sliding,
                cap,
            } => {
                let user = format!("user{user}");
                let cap = cap.filter(|&c| c >= secs);
                let policy = if sliding {
                    ExpiryPolicy::sliding(Duration::from_secs(secs), cap.map(Duration::from_secs))
                } else {
                    ExpiryPolicy::hard(Duration::from_secs(secs))
                };
                let created = b
                    .create(&NewToken::new(&user, policy), at(now))
                    .map_err(|e| err(&e))?;
                model.insert(
                    created.info.id,
                    Model {
                        user,
                        issued_at: now,
                        lifetime_from: now,
                        rotated_at: None,
                        expires_at: now + secs,
                        last_used_at: None,
                        window: sliding.then_some(secs),
                        cap: if sliding { cap } else { None },
                    },
                );
                issued.push((created.info.id, created.secret));
            }
            Op::Revoke(i) if !issued.is_empty() => {
                let id = issued[i % issued.len()].0;
                let got = b.revoke(id);
                reused.remove(&id);
                match model.remove(&id) {
                    Some(_) => prop_assert_eq!(got.map_err(|e| err(&e))?.id, id),
                    None => prop_assert!(matches!(got, Err(StoreError::NotFound(_)))),
                }
            }
            Op::Rotate(i, grace) if !issued.is_empty() => {
                let id = issued[i % issued.len()].0;
                let got = b.rotate(
                    id,
                    &Rotation::new().grace(Duration::from_secs(grace)),
                    at(now),
                );
                match model.get_mut(&id) {
                    // A token reuse detection is revoking is as good as gone.
                    Some(_) if reused.contains(&id) => {
                        prop_assert!(matches!(got, Err(StoreError::NotFound(_))), "{:?}", got)
                    }
                    None => prop_assert!(matches!(got, Err(StoreError::NotFound(_))), "{:?}", got),
                    Some(m) => {
                        // Within its envelope: its own duration from now, a
                        // sliding cap counted from the lifetime's start.
                        let lifetime = match m.window {
                            Some(w) => w,
                            None => (m.expires_at - m.issued_at).max(1),
                        };
                        let mut expires_at = now + lifetime;
                        if let Some(c) = m.cap {
                            expires_at = expires_at.min(m.lifetime_from + c);
                        }
                        if expires_at <= now {
                            prop_assert!(
                                matches!(got, Err(StoreError::Authority(_))),
                                "a token past its cap was rotated: {:?}",
                                got
                            );
                            continue;
                        }
                        let created = got.map_err(|e| err(&e))?;
                        // The grace ends by the old deadline, and every
                        // earlier grace ends now.
                        let grace_end = (now + grace).min(m.expires_at.max(now));
                        m.issued_at = now;
                        m.rotated_at = Some(now);
                        m.expires_at = expires_at;
                        for (_, s) in issued.iter().filter(|(i, _)| *i == id) {
                            if let Some(until) = retires.get_mut(&s.digest()) {
                                *until = (*until).min(now);
                            }
                        }
                        let current = issued
                            .iter()
                            .rev()
                            .find(|(i, _)| *i == id)
                            .map(|(_, s)| s.digest());
                        if let Some(d) = current {
                            retires.insert(d, grace_end);
                        }
                        issued.push((id, created.secret));
                    }
                }
            }
            Op::RevokeUser(u) => {
                let user = format!("user{u}");
                let before = model.len();
                model.retain(|_, m| m.user != user);
                reused.retain(|id| model.contains_key(id));
                prop_assert_eq!(
                    b.revoke_user(&user).map_err(|e| err(&e))?,
                    before - model.len()
                );
            }
            Op::Prune => {
                let before = model.len();
                model.retain(|_, m| now < m.expires_at);
                reused.retain(|id| model.contains_key(id));
                prop_assert_eq!(b.prune(at(now)).map_err(|e| err(&e))?, before - model.len());
            }
            Op::Auth(i) | Op::AuthAs(i, _) if !issued.is_empty() => {
                let as_user = match op {
                    Op::AuthAs(_, u) => Some(format!("user{u}")),
                    _ => None,
                };
                let (id, secret) = &issued[i % issued.len()];
                let got = authenticate(b, secret.expose_secret(), as_user.as_deref(), at(now));
                let retired = retires.get(&secret.digest()).is_some_and(|&r| now >= r);
                match model.get_mut(id) {
                    None => prop_assert!(matches!(got, Err(AuthError::Unknown)), "{:?}", got),
                    Some(_) if retired => {
                        prop_assert!(matches!(got, Err(AuthError::Unknown)), "{:?}", got);
                        // Reuse: refused from now on, revoked at the flush.
                        reused.insert(*id);
                    }
                    Some(_) if reused.contains(id) => {
                        prop_assert!(matches!(got, Err(AuthError::Unknown)), "{:?}", got);
                    }
                    Some(m) if as_user.as_ref().is_some_and(|u| *u != m.user) => {
                        prop_assert!(matches!(got, Err(AuthError::WrongUser)), "{:?}", got);
                    }
                    Some(m) if now >= m.expires_at => {
                        let expected = at(m.expires_at);
                        prop_assert!(
                            matches!(got, Err(AuthError::Expired { expires_at }) if expires_at == expected),
                            "{:?}",
                            got
                        );
                    }
                    Some(m) => {
                        if let Some(w) = m.window {
                            let mut next = now + w;
                            if let Some(c) = m.cap {
                                next = next.min(m.lifetime_from + c);
                            }
                            m.expires_at = m.expires_at.max(next);
                        }
                        m.last_used_at = Some(m.last_used_at.map_or(now, |t| t.max(now)));
                        let identity = got.map_err(|e| err(&e))?;
                        prop_assert_eq!(identity.token_id(), *id);
                        prop_assert_eq!(identity.user(), m.user.as_str());
                        prop_assert_eq!(identity.expires_at(), at(m.expires_at));
                    }
                }
            }
            Op::Find(i) if !issued.is_empty() => {
                let (id, secret) = &issued[i % issued.len()];
                let retired = retires.get(&secret.digest()).is_some_and(|&r| now >= r);
                let found = b.find(&secret.digest(), at(now)).map_err(|e| err(&e))?;
                match model.get(id) {
                    Some(m) if !retired => {
                        let info = found.ok_or_else(|| TestCaseError::fail("not found"))?;
                        prop_assert_eq!(info.id, *id);
                        prop_assert_eq!(info.expiry.expires_at(), at(m.expires_at));
                        prop_assert_eq!(info.last_used_at, m.last_used_at.map(at));
                    }
                    _ => prop_assert!(found.is_none(), "{:?}", found),
                }
            }
            Op::Forged => {
                let forged = TokenSecret::generate();
                prop_assert!(matches!(
                    authenticate(b, forged.expose_secret(), None, at(now)),
                    Err(AuthError::Unknown)
                ));
            }
            Op::Advance(s) => now += s,
            Op::Flush => {
                b.flush().map_err(|e| err(&e))?;
                for id in std::mem::take(&mut reused) {
                    model.remove(&id);
                }
            }
            Op::Revoke(_) | Op::Rotate(..) | Op::Auth(_) | Op::AuthAs(..) | Op::Find(_) => {}
        }
        // After every step the listing is exactly the live model.
        type Row = (String, Timestamp, Option<Timestamp>, Option<Timestamp>);
        let listed: BTreeMap<TokenId, Row> = b
            .list(None, true, at(now))
            .map_err(|e| err(&e))?
            .into_iter()
            .map(|i| {
                let row = (i.user, i.expiry.expires_at(), i.last_used_at, i.rotated_at);
                (i.id, row)
            })
            .collect();
        let expected: BTreeMap<TokenId, Row> = model
            .iter()
            .map(|(id, m)| {
                let (last, rotated) = (m.last_used_at.map(at), m.rotated_at.map(at));
                (*id, (m.user.clone(), at(m.expires_at), last, rotated))
            })
            .collect();
        prop_assert_eq!(listed, expected);
    }
    Ok(())
}
