//! The gate's decisions, request by request.

use std::time::Duration;

use base64::Engine as _;

use super::*;
use crate::testing::conformance::block_on;
use crate::{Admin as _, ExpiryPolicy, MemoryStore, NewToken, Store, TokenSecret};

fn at(s: u64) -> Timestamp {
    Timestamp::from_unix_secs(s).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    gate: Gate,
    token: String,
    expired: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::builder()
            .manual_flush()
            .open(dir.path().join("pat.redb"))
            .unwrap(),
    );
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let token = store
        .create(&NewToken::new("alice", hour), at(1000))
        .unwrap();
    let old = ExpiryPolicy::hard(Duration::from_secs(10));
    let expired = store.create(&NewToken::new("alice", old), at(0)).unwrap();
    Fixture {
        _dir: dir,
        gate: Gate::new(store.clone()),
        store,
        token: token.secret.expose_secret().to_owned(),
        expired: expired.secret.expose_secret().to_owned(),
    }
}

fn check(gate: &Gate, headers: &[&str]) -> Outcome {
    block_on(gate.check_at(headers.iter().map(|h| h.as_bytes()), false, at(1001)))
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[track_caller]
fn rejected(o: Outcome) -> Rejection {
    match o {
        Outcome::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn bearer_and_basic_authenticate() {
    let f = fixture();
    for h in [format!("Bearer {}", f.token), basic("alice", &f.token)] {
        let Outcome::Authenticated(id) = check(&f.gate, &[&h]) else {
            panic!("{h}")
        };
        assert_eq!(id.user(), "alice");
        // The digest presented rides along, for changes that need the
        // current secret.
        let digest = pat_core_digest(&f.token);
        assert_eq!(id.presented(), Some(&digest));
    }
}

fn pat_core_digest(token: &str) -> crate::TokenDigest {
    crate::TokenDigest::from_token(token).unwrap()
}

#[test]
fn no_credentials_gets_challenges_without_error() {
    let f = fixture();
    let r = rejected(check(&f.gate, &[]));
    assert_eq!(r.status(), 401);
    assert_eq!(r.error_code(), None);
    assert_eq!(
        r.challenges(),
        [
            "Bearer realm=\"pat\"",
            "Basic realm=\"pat\", charset=\"UTF-8\""
        ]
    );
}

#[test]
fn refused_tokens_say_why() {
    let f = fixture();
    let unknown = TokenSecret::generate();
    let cases = [
        (format!("Bearer {}", f.expired), "the token has expired"),
        (
            format!("Bearer {}", unknown.expose_secret()),
            "the token is unknown or revoked",
        ),
        (
            format!("Bearer {}", &f.token[..30]),
            "the token is malformed",
        ),
        (
            "Bearer ghp_other".to_owned(),
            "the credentials are not a personal access token",
        ),
        (
            basic("bob", &f.token),
            "the user name does not match the token",
        ),
        (
            basic("alice", "hunter2"),
            "the credentials are not a personal access token",
        ),
    ];
    for (h, why) in cases {
        let r = rejected(check(&f.gate, &[&h]));
        assert_eq!(r.status(), 401, "{h}");
        assert_eq!(r.error_code(), Some("invalid_token"));
        assert!(
            r.challenges()[0].ends_with(&format!(
                "error=\"invalid_token\", error_description=\"{why}\""
            )),
            "{h}: {:?}",
            r.challenges()
        );
        assert!(r.challenges()[0].starts_with("Bearer realm=\"pat\", "));
    }
}

/// The gate asks the backend's memory before it checks a token's alphabet
/// and checksum: nothing it refused before may change its answer, cached
/// or not, whatever the backend (redb's cache answers hits; the memory
/// store answers nothing from memory, so it sees every check first).
#[test]
fn checks_skipped_on_a_hit_still_refuse_every_damaged_token() {
    let f = fixture();
    let memory = MemoryStore::new();
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let kept = memory
        .create(&NewToken::new("alice", hour), at(1000))
        .unwrap();
    let kept = kept.secret.expose_secret().to_owned();
    let unknown = TokenSecret::generate().expose_secret().to_owned();
    for (gate, token) in [(&f.gate, &f.token), (&Gate::new(memory), &kept)] {
        // Warm: the token cached, an unknown one remembered as unknown.
        assert!(matches!(
            check(gate, &[&format!("Bearer {token}")]),
            Outcome::Authenticated(_)
        ));
        let r = rejected(check(gate, &[&format!("Bearer {unknown}")]));
        assert_eq!(
            r.reason(),
            RejectReason::InvalidToken(TokenProblem::Unknown)
        );
        let last = token.len() - 1;
        let flip = |b: u8| if b == b'A' { "B" } else { "A" };
        let checksum = format!("{}{}", &token[..last], flip(token.as_bytes()[last]));
        let body = format!(
            "{}{}{}",
            &token[..10],
            flip(token.as_bytes()[10]),
            &token[11..]
        );
        let alphabet = format!("{}-{}", &token[..10], &token[11..]);
        for damaged in [checksum, body, alphabet] {
            // A lookup by digest (introspection's `token_digest` makes one)
            // notes the damaged value's digest as unknown: that memory must
            // not answer before the checks.
            let digest = crate::TokenDigest::from_bytes(
                <sha2::Sha256 as sha2::Digest>::digest(damaged.as_bytes()).into(),
            );
            let looked_up = block_on(gate.verifier().verify(Lookup::new(digest, None, at(1001))));
            assert!(matches!(looked_up, Err(AuthError::Unknown)));
            for header in [format!("Bearer {damaged}"), basic("alice", &damaged)] {
                let r = rejected(check(gate, &[&header]));
                assert_eq!(
                    r.reason(),
                    RejectReason::InvalidToken(TokenProblem::Malformed),
                    "{header}"
                );
            }
        }
        // A token's length of bytes that are not UTF-8 is still a broken
        // request, as `Credentials::parse` says.
        let mut bytes = format!("Bearer {token}").into_bytes();
        let at_end = bytes.len() - 1;
        bytes[at_end] = 0xff;
        let r = rejected(block_on(gate.check_at([bytes.as_slice()], false, at(1001))));
        assert_eq!(
            r.reason(),
            RejectReason::InvalidRequest(CredentialsError::NotUtf8)
        );
        // And the token itself is still accepted.
        assert!(matches!(
            check(gate, &[&format!("Bearer {token}")]),
            Outcome::Authenticated(_)
        ));
    }
}

#[test]
fn a_wrong_user_does_not_refresh_the_token() {
    let f = fixture();
    let _ = check(&f.gate, &[&basic("bob", &f.token)]);
    assert_eq!(f.store.pending_uses(), 0);
}

#[test]
fn broken_headers_are_400_invalid_request() {
    let f = fixture();
    let bearer = format!("Bearer {}", f.token);
    for headers in [
        vec!["Basic %%%"],
        vec!["Bearer"],
        vec![bearer.as_str(), bearer.as_str()],
    ] {
        let r = rejected(check(&f.gate, &headers));
        assert_eq!(r.status(), 400);
        assert_eq!(r.error_code(), Some("invalid_request"));
        assert_eq!(r.challenges().len(), 2);
    }
    let r = rejected(block_on(f.gate.check_at(
        [b"Bearer \xff".as_slice()],
        false,
        at(0),
    )));
    assert_eq!(r.status(), 400);
}

#[test]
fn optional_mode_passes_what_is_not_ours_and_still_rejects_bad_pats() {
    let f = fixture();
    let gate = f.gate.clone().mode(Mode::Optional);
    for h in [vec![], vec!["Bearer ghp_other"], vec!["Negotiate abc"]] {
        assert!(matches!(check(&gate, &h), Outcome::Anonymous), "{h:?}");
    }
    let b = basic("alice", "hunter2");
    assert!(matches!(check(&gate, &[&b]), Outcome::Anonymous));
    let expired = format!("Bearer {}", f.expired);
    assert_eq!(rejected(check(&gate, &[&expired])).status(), 401);
    let token = format!("Bearer {}", f.token);
    assert!(matches!(check(&gate, &[&token]), Outcome::Authenticated(_)));
    // Required mode: another scheme is "no credentials of ours".
    let r = rejected(check(&f.gate, &["Negotiate abc"]));
    assert_eq!((r.status(), r.error_code()), (401, None));
}

/// A store with its own prefix: in optional mode a token of another
/// (`pat_`, well formed) is not ours and passes; its own tokens, of the
/// current and a former prefix, authenticate, Bearer and Basic; in required
/// mode the other is "not a token".
#[test]
fn optional_mode_passes_a_token_of_another_prefix() {
    use crate::Prefix;
    let store = std::sync::Arc::new(MemoryStore::with_prefix("acme".parse().unwrap()));
    let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)));
    let acme = store.create(&new, at(0)).unwrap().secret;
    store.set_prefix("beta".parse().unwrap()).unwrap();
    let beta = store.create(&new, at(0)).unwrap().secret;
    assert_eq!(
        store.token_prefixes().unwrap()[1],
        "acme".parse::<Prefix>().unwrap()
    );
    let optional = Gate::new(store.clone()).mode(Mode::Optional);
    let other = TokenSecret::generate();
    let bearer = |t: &TokenSecret| format!("Bearer {}", t.expose_secret());
    assert!(matches!(
        check(&optional, &[&bearer(&other)]),
        Outcome::Anonymous
    ));
    assert!(matches!(
        check(&optional, &[&basic("alice", other.expose_secret())]),
        Outcome::Anonymous
    ));
    for t in [&acme, &beta] {
        let o = check(&optional, &[&bearer(t)]);
        assert!(matches!(o, Outcome::Authenticated(_)), "{o:?}");
        let b = basic("alice", t.expose_secret());
        assert!(matches!(check(&optional, &[&b]), Outcome::Authenticated(_)));
    }
    let required = Gate::new(store);
    let r = rejected(check(&required, &[&bearer(&other)]));
    assert_eq!((r.status(), r.error_code()), (401, Some("invalid_token")));
}

#[test]
fn preflights_pass_unless_configured() {
    let f = fixture();
    assert!(matches!(
        f.gate.check_at([], true, at(0)).into_ready(),
        Ok(Outcome::Anonymous)
    ));
    let strict = f.gate.clone().reject_preflight(true);
    assert!(matches!(
        strict.check_at([], true, at(0)).into_ready(),
        Ok(Outcome::Rejected(_))
    ));
}

#[test]
fn realm_is_escaped_into_valid_header_values() {
    let f = fixture();
    let gate = f.gate.clone().realm("my \"app\" \\ é");
    let r = rejected(check(&gate, &[]));
    assert_eq!(r.challenges()[0], r#"Bearer realm="my \"app\" \\ _""#);
    assert_eq!(gate.realm_name(), "my \"app\" \\ é");
}

#[test]
fn outcomes_are_logged_without_secrets() {
    let f = fixture();
    let logs = crate::test_logs::capture(|| {
        check(&f.gate, &[&format!("Bearer {}", f.token)]);
        check(&f.gate, &[&format!("Bearer {}", f.expired)]);
        check(&f.gate, &[&basic("alice", &f.token)]);
        check(&f.gate, &[&basic("bob", &f.token)]);
    });
    assert!(
        logs.contains("token accepted") && logs.contains("user=alice"),
        "{logs}"
    );
    assert!(logs.contains("token_id="), "{logs}");
    assert!(logs.contains("Expired"), "{logs}");
    for secret in [&f.token, &f.expired] {
        assert!(!logs.contains(&secret[4..]), "secret in logs: {logs}");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("alice:{}", f.token));
    assert!(!logs.contains(&encoded));
}

#[test]
fn json_body_is_small_and_valid() {
    let f = fixture();
    let r = rejected(check(&f.gate, &["Bearer ghp_x"]));
    assert_eq!(
        r.json_body(),
        r#"{"error":"invalid_token","error_description":"the credentials are not a personal access token"}"#
    );
    assert_eq!(
        rejected(check(&f.gate, &[])).json_body(),
        r#"{"error":"unauthorized"}"#
    );
}

/// From issue 26: the gate hands the backend its count of the rate, so
/// that a use over the limit is refused before it is recorded (no last
/// use, no sliding refresh); a backend that drops it (one outside pat-core)
/// still has the rate counted, once, by the gate after its answer.
#[test]
fn a_use_over_the_rate_is_refused_before_the_backend_records_it() {
    let store = Arc::new(MemoryStore::new());
    let mut sliding = NewToken::new(
        "alice",
        ExpiryPolicy::sliding(Duration::from_secs(600), None),
    );
    sliding.rate = Some("1/h".parse().unwrap());
    let t = store.create(&sliding, at(1000)).unwrap();
    let h = format!("Bearer {}", t.secret.expose_secret());
    let use_at =
        |gate: &Gate, secs| block_on(gate.check_from_at([h.as_bytes()], false, None, at(secs)));
    let gate = Gate::new(store.clone());
    assert!(matches!(use_at(&gate, 1001), Outcome::Authenticated(_)));
    assert_eq!(rejected(use_at(&gate, 1300)).status(), 429);
    let held = store.get(t.info.id).unwrap();
    assert_eq!(
        held.last_used_at,
        Some(at(1001)),
        "the refused use recorded nothing"
    );
    assert_eq!(
        held.expiry.expires_at(),
        at(1601),
        "nor refreshed the token"
    );
    // Behind a backend that drops the gate's count, the gate counts: once
    // per use, not twice.
    let other = store.create(&sliding, at(1000)).unwrap();
    let h = format!("Bearer {}", other.secret.expose_secret());
    let remote = Gate::new(Arc::new(Remote {
        inner: store.clone(),
        down: false,
    }));
    let first = block_on(remote.check_from_at([h.as_bytes()], false, None, at(1001)));
    assert!(matches!(first, Outcome::Authenticated(_)), "{first:?}");
    let second = block_on(remote.check_from_at([h.as_bytes()], false, None, at(1002)));
    assert_eq!(rejected(second).status(), 429);
}

/// A backend answering every lookup later, from another thread, or
/// failing: what a networked backend does.
struct Remote {
    inner: Arc<MemoryStore>,
    down: bool,
}

impl Verifier for Remote {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        let (inner, down) = (self.inner.clone(), self.down);
        let (digest, user, now) = (
            *lookup.digest(),
            lookup.user().map(str::to_owned),
            lookup.now(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = if down {
                Err(AuthError::Store(crate::StoreError::Storage(
                    crate::BackendError::new(std::io::Error::other("connection refused")),
                )))
            } else {
                block_on(inner.verify(Lookup::new(digest, user.as_deref(), now)))
            };
            let _ = tx.send(result);
        });
        Verification::pending(std::future::poll_fn(move |cx| match rx.try_recv() {
            Ok(r) => std::task::Poll::Ready(r),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    }

    /// Later too, from another thread.
    fn spend(&self, identity: Identity, now: Timestamp) -> Verification {
        let inner = self.inner.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(block_on(inner.spend(identity, now)));
        });
        Verification::pending(std::future::poll_fn(move |cx| match rx.try_recv() {
            Ok(r) => std::task::Poll::Ready(r),
            Err(_) => {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    }
}

/// A use quota is spent last, after the rate limit: a request the rate
/// limit refuses spends nothing; past the quota, 401 `invalid_token`; the
/// same when the backend answers later; and a backend that keeps no quotas
/// refuses such a token (503) rather than let it through uncounted.
#[test]
fn a_quota_is_spent_last_and_exactly() {
    let store = Arc::new(MemoryStore::new());
    let hour = || ExpiryPolicy::hard(Duration::from_secs(3600));
    let mut limited = NewToken::new("alice", hour()).max_uses(3);
    limited.rate = Some("2/h".parse().unwrap());
    let limited = store.create(&limited, at(1000)).unwrap();
    let header = |t: &crate::CreatedToken| format!("Bearer {}", t.secret.expose_secret());
    let h = header(&limited);
    let gate = Gate::new(store.clone());
    for left in [2, 1] {
        let Outcome::Authenticated(id) = block_on(gate.check_at([h.as_bytes()], false, at(1001)))
        else {
            panic!("a use")
        };
        assert_eq!(id.uses_left(), Some(left));
    }
    // The third use of this gate's rate is refused: nothing spent.
    let r = rejected(block_on(gate.check_at([h.as_bytes()], false, at(1001))));
    assert_eq!(r.status(), 429);
    assert_eq!(store.get(limited.info.id).unwrap().uses, 2);
    // Another gate (another replica's count): the last use, then none.
    let other = Gate::new(store.clone());
    let Outcome::Authenticated(id) = block_on(other.check_at([h.as_bytes()], false, at(1002)))
    else {
        panic!("the last use")
    };
    assert_eq!(id.uses_left(), Some(0));
    let r = rejected(block_on(other.check_at([h.as_bytes()], false, at(1003))));
    assert_eq!(
        (r.status(), r.reason()),
        (401, RejectReason::InvalidToken(TokenProblem::UsedUp))
    );
    assert!(
        r.challenges()[0].contains("the token has no uses left"),
        "{r:?}"
    );
    // Answered later: spent later, as exactly.
    let once = store
        .create(&NewToken::new("alice", hour()).max_uses(1), at(1000))
        .unwrap();
    let later = Gate::new(Remote {
        inner: store.clone(),
        down: false,
    });
    let h = header(&once);
    let pending = later.check_at([h.as_bytes()], false, at(1001));
    let Outcome::Authenticated(id) = block_on(pending.into_ready().expect_err("pending")) else {
        panic!("its one use")
    };
    assert_eq!(id.uses_left(), Some(0));
    let r = rejected(block_on(later.check_at([h.as_bytes()], false, at(1002))));
    assert_eq!(r.reason(), RejectReason::InvalidToken(TokenProblem::UsedUp));
    // A backend without quotas: refused, not passed.
    let blind = crate::testing::conformance::Scripted::ready(|_: &Lookup<'_>| {
        let mut info = crate::TokenInfo::new(
            crate::TokenId::from_u64(7),
            "alice",
            at(1000),
            crate::Expiry::Hard {
                expires_at: at(5000),
            },
        );
        info.max_uses = Some(1);
        Ok(Identity::new(&info, at(5000)))
    });
    let any = TokenSecret::generate();
    let h = format!("Bearer {}", any.expose_secret());
    let r = rejected(block_on(Gate::new(blind).check_at(
        [h.as_bytes()],
        false,
        at(1001),
    )));
    assert_eq!(r.status(), 503);
}

#[test]
fn a_backend_may_answer_later() {
    let inner = Arc::new(MemoryStore::new());
    let hour = ExpiryPolicy::hard(std::time::Duration::from_secs(3600));
    let token = inner
        .create(&NewToken::new("alice", hour), at(1000))
        .unwrap();
    let gate = Gate::new(Remote { inner, down: false });
    let header = format!("Bearer {}", token.secret.expose_secret());
    let checking = gate.check_at([header.as_bytes()], false, at(1001));
    let pending = checking
        .into_ready()
        .expect_err("a remote lookup is pending");
    let Outcome::Authenticated(id) = block_on(pending) else {
        panic!("expected the identity")
    };
    assert_eq!(id.user(), "alice");
    assert_eq!(id.presented(), Some(&token.secret.digest()));
    // Token work stays in the gate: a malformed token never reaches it.
    let bad = format!("Bearer {}", &token.secret.expose_secret()[..30]);
    assert!(matches!(
        gate.check_at([bad.as_bytes()], false, at(1001)).into_ready(),
        Ok(Outcome::Rejected(r)) if r.reason() == RejectReason::InvalidToken(TokenProblem::Malformed)
    ));
}

#[test]
fn an_unavailable_backend_is_503_with_retry_after_never_401() {
    let gate = Gate::new(Remote {
        inner: Arc::new(MemoryStore::new()),
        down: true,
    })
    .retry_after(7);
    let token = TokenSecret::generate();
    let r = rejected(check(
        &gate,
        &[&format!("Bearer {}", token.expose_secret())],
    ));
    assert_eq!(r.status(), 503);
    assert_eq!(r.retry_after(), Some(7));
    assert!(r.challenges().is_empty());
    assert_eq!(
        r.json_body(),
        r#"{"error":"temporarily_unavailable","error_description":"the token store is unavailable"}"#
    );
    // In optional mode too: a PAT nobody could check does not pass.
    let optional = gate.mode(Mode::Optional);
    let r = rejected(check(
        &optional,
        &[&format!("Bearer {}", token.expose_secret())],
    ));
    assert_eq!(r.status(), 503);
}

#[test]
fn two_headers_of_other_schemes_are_not_ours() {
    let f = fixture();
    let optional = f.gate.clone().mode(Mode::Optional);
    let negotiate = format!("Negotiate {}", "YII".repeat(2000));
    let two = [negotiate.as_str(), "Digest username=\"x\""];
    assert!(matches!(check(&optional, &two), Outcome::Anonymous));
    assert_eq!(rejected(check(&f.gate, &two)).status(), 401);
    let bearer = format!("Bearer {}", f.token);
    let mixed = ["Digest username=\"x\"", bearer.as_str()];
    assert_eq!(rejected(check(&optional, &mixed)).status(), 400);
}

#[test]
fn a_rate_limited_token_is_429_past_its_burst_and_a_refusal_before_counts_nothing() {
    let store = Arc::new(MemoryStore::new());
    let gate = Gate::new(store.clone());
    let mut limited = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)))
        .allow_from(["10.0.0.0/8".parse().unwrap()]);
    limited.rate = Some("2/h".parse().unwrap());
    let limited = store.create(&limited, at(1000)).unwrap();
    let open = store
        .create(
            &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600))),
            at(1000),
        )
        .unwrap();
    let use_from = |secret: &TokenSecret, client: &str| {
        let h = format!("Bearer {}", secret.expose_secret());
        block_on(gate.check_from_at(
            [h.as_bytes()],
            false,
            Some(client.parse().unwrap()),
            at(1001),
        ))
    };
    // Refused by the address rule, many times: no use counted.
    for _ in 0..5 {
        let r = rejected(use_from(&limited.secret, "192.0.2.1"));
        assert_eq!(
            r.reason(),
            RejectReason::InvalidToken(TokenProblem::AddressNotAllowed)
        );
    }
    for _ in 0..2 {
        assert!(matches!(
            use_from(&limited.secret, "10.0.0.1"),
            Outcome::Authenticated(_)
        ));
    }
    let r = rejected(use_from(&limited.secret, "10.0.0.1"));
    assert_eq!(r.status(), 429);
    let RejectReason::RateLimited(t) = r.reason() else {
        panic!("{r:?}")
    };
    assert_eq!(t.limit.to_string(), "2/h");
    // One use comes back every half hour.
    assert!((1790..=1800).contains(&r.retry_after().unwrap()), "{r:?}");
    assert!(r.challenges().is_empty(), "not a credentials problem");
    let [policy, now] = r.rate_limit_fields().expect("the fields");
    assert_eq!(
        policy,
        ("ratelimit-policy", "\"token\";q=2;w=3600".to_owned())
    );
    assert_eq!(now.0, "ratelimit");
    assert!(now.1.starts_with("\"token\";r=0;t=1"), "{now:?}");
    assert_eq!(
        r.json_body(),
        r#"{"error":"rate_limited","error_description":"the token's rate limit is used up for now"}"#
    );
    // A clone of the gate (another worker) shares the count; a token
    // without a limit is never counted.
    let clone = gate.clone();
    let h = format!("Bearer {}", limited.secret.expose_secret());
    let r = rejected(block_on(clone.check_from_at(
        [h.as_bytes()],
        false,
        Some("10.0.0.1".parse().unwrap()),
        at(1001),
    )));
    assert_eq!(r.status(), 429);
    for _ in 0..100 {
        assert!(matches!(
            use_from(&open.secret, "192.0.2.1"),
            Outcome::Authenticated(_)
        ));
    }
    // With the http feature, the response carries the fields.
    #[cfg(feature = "http")]
    {
        let res = r.to_response(());
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["ratelimit-policy"], "\"token\";q=2;w=3600");
        assert!(res.headers().contains_key("ratelimit"));
        assert!(res.headers().contains_key("retry-after"));
    }
}
/// Every request moves an identity and an outcome by value: a field added
/// carelessly grows them past what the hot path was measured with.
#[test]
fn an_identity_stays_small() {
    assert!(std::mem::size_of::<Identity>() <= 120);
    assert!(std::mem::size_of::<Outcome>() <= 120);
    assert!(std::mem::size_of::<Checking>() <= 120);
}

/// Every decision is counted once, by its result: one that waited for the
/// backend when it is answered, and one dropped before (a client that gave
/// up on a slow backend) as `cancelled`.
#[cfg(feature = "metrics")]
#[test]
fn each_decision_is_counted_once_and_an_abandoned_one_as_cancelled() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let store = Arc::new(MemoryStore::new());
    let hour = || ExpiryPolicy::hard(Duration::from_secs(3600));
    let token = store
        .create(&NewToken::new("alice", hour()), at(1000))
        .unwrap();
    let h = format!("Bearer {}", token.secret.expose_secret());
    let (gate, slow) = metrics::with_local_recorder(&recorder, || {
        let slow = Gate::new(Remote {
            inner: store.clone(),
            down: false,
        });
        (Gate::new(store.clone()), slow)
    });
    let count = |result: &str| {
        let series = format!("pat_authentications_total{{result=\"{result}\",scheme=\"bearer\"}} ");
        handle
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(matches!(
        block_on(gate.check_at([h.as_bytes()], false, at(1001))),
        Outcome::Authenticated(_)
    ));
    let pending = slow.check_at([h.as_bytes()], false, at(1001));
    assert!(matches!(
        block_on(pending.into_ready().expect_err("pending")),
        Outcome::Authenticated(_)
    ));
    assert_eq!((count("authenticated"), count("cancelled")), (2, 0));
    // Dropped while the backend answers: counted as cancelled, once.
    drop(
        slow.check_at([h.as_bytes()], false, at(1001))
            .into_ready()
            .expect_err("pending"),
    );
    assert_eq!((count("authenticated"), count("cancelled")), (2, 1));
}
