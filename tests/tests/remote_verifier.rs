//! The remote verifier: a service with no store of its own, behind
//! `PatLayer`, checking tokens by asking a reference server's
//! `/introspect` (a real process) over HTTP. Active, unknown, revoked,
//! HTTP Basic, scopes and sliding uses reach it; the endpoint going down
//! gives 503 (cached answers keep working up to the TTL), and coming back
//! needs no restart of the service.

use std::sync::Arc;
use std::time::Duration;

use pat_core::remote::{RemoteError, RemoteVerifier};
use pat_core::{Gate, Lookup, TokenDigest, TokenSecret, Verifier};
use pat_integration_tests::inproc::{
    Req, actix_seen, echo_actix, echo_router, endpoint_over, serve, tower_seen,
};
use pat_integration_tests::{Server, ServerKind, Workdir, basic, client};
use serde_json::Value;

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
const TTL: Duration = Duration::from_secs(1);

/// Serves `app` on 127.0.0.1 in the background; its base URL.
fn get(base: &str, authorization: &str) -> (u16, Option<String>, String) {
    let resp = client()
        .get(format!("{base}/"))
        .header("authorization", authorization)
        .send()
        .expect("request");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.text().unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn token_id(work: &Workdir, user: &str) -> String {
    let v: Value =
        serde_json::from_str(&work.cli_ok(&["token", "list", "-u", user, "--json"])).unwrap();
    v[0]["id"].as_str().unwrap().to_owned()
}

fn last_used(work: &Workdir, id: &str) -> Value {
    let v: Value = serde_json::from_str(&work.cli_ok(&["token", "show", id, "--json"])).unwrap();
    v["last_used_at"].clone()
}

#[test]
fn a_service_without_a_store_checks_tokens_at_an_introspection_endpoint() {
    for kind in ServerKind::ALL {
        behind(kind);
    }
}

/// The service in front of an endpoint served by the `kind` reference
/// server.
fn behind(kind: ServerKind) {
    let work = Workdir::new();
    let endpoint = Server::start(kind, &work.db(), &["--introspector", "gateway"]);
    let addr = endpoint.base().trim_start_matches("http://").to_owned();
    let gateway = TokenSecret::parse(&work.token(&["-u", "gateway", "-e", "1h"])).unwrap();
    let alice = work.token(&["-u", "alice", "-a", "1h"]);
    let bob = work.token(&["-u", "bob", "-e", "1h", "-s", &format!("node:{NODE}:r")]);
    let carol = work.token(&["-u", "carol", "-e", "1h"]);
    let unknown = TokenSecret::generate();

    let verifier = Arc::new(
        RemoteVerifier::builder()
            .ttl(TTL)
            .connect(&endpoint.url("/introspect"), &gateway)
            .expect("a loopback endpoint"),
    );
    assert!(
        !format!("{verifier:?}").contains(&gateway.expose_secret()[4..]),
        "the verifier's token in its Debug: {verifier:?}"
    );
    let gate = Gate::new(verifier.clone());
    let service = serve(echo_router(&gate));

    // Active: the identity comes from the endpoint, and the use is recorded there.
    let alice_id = token_id(&work, "alice");
    assert_eq!(last_used(&work, &alice_id), Value::Null);
    assert_eq!(
        get(&service, &bearer(&alice)),
        (200, None, "user alice".into())
    );
    assert!(
        last_used(&work, &alice_id).is_string(),
        "the use reached the store"
    );
    // HTTP Basic: the name must be the token's, whoever asks first.
    assert_eq!(get(&service, &basic("alice", &alice)).0, 200);
    assert_eq!(get(&service, &basic("mallory", &alice)).0, 401);
    assert_eq!(get(&service, &basic("mallory", &carol)).0, 401);
    assert_eq!(get(&service, &basic("carol", &carol)).0, 200);
    // Unknown and malformed: 401, like any backend.
    assert_eq!(get(&service, &bearer(unknown.expose_secret())).0, 401);
    assert_eq!(get(&service, "Bearer pat_nonsense").0, 401);

    // Scopes and the deadline travel with the identity.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = pat_core::Timestamp::now();
    let digest = TokenDigest::from_token(&bob).unwrap();
    let identity = rt
        .block_on(verifier.verify(Lookup::new(digest, None, now)))
        .expect("bob's token");
    assert_eq!(identity.scopes().to_string(), format!("node:{NODE}:r"));
    assert!(identity.expires_at() > now);

    // Metadata travels with the identity too.
    let tagged = work.token(&["-u", "dave", "-e", "1h", "--meta", "team=payments"]);
    let identity = rt
        .block_on(verifier.verify(Lookup::new(
            TokenDigest::from_token(&tagged).unwrap(),
            None,
            now,
        )))
        .expect("dave's token");
    assert_eq!(identity.meta().get("team"), Some("payments"));

    // A rate limit travels with it, and the service's gate counts it:
    // past the burst, 429 behind the verifier too (cached answers count).
    let limited = work.token(&["-u", "frank", "-e", "1h", "--rate", "2/h"]);
    assert_eq!(get(&service, &bearer(&limited)).0, 200);
    assert_eq!(get(&service, &bearer(&limited)).0, 200);
    assert_eq!(get(&service, &bearer(&limited)).0, 429);

    // A use quota is the endpoint's to count (issue 26): the verifier
    // never caches such an answer, so concurrent requests inside one TTL
    // get exactly the uses the token has, and the store has spent them.
    let counted = work.token(&["-u", "grace", "-e", "1h", "--max-uses", "3"]);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let all: Vec<_> = (0..8)
            .map(|_| s.spawn(|| get(&service, &bearer(&counted)).0))
            .collect();
        all.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        (
            statuses.iter().filter(|&&s| s == 200).count(),
            statuses.iter().filter(|&&s| s == 401).count()
        ),
        (3, 5),
        "{statuses:?}"
    );
    assert_eq!(get(&service, &bearer(&counted)).0, 401, "still used up");
    let shown: Value =
        serde_json::from_str(&work.cli_ok(&["token", "show", &token_id(&work, "grace"), "--json"]))
            .unwrap();
    assert_eq!((&shown["uses"], &shown["max_uses"]), (&3.into(), &3.into()));

    // A use the service's rate limit refuses spends no use of the quota:
    // the verifier's first question spends nothing, and the gate spends
    // only what its rate let through.
    let both = work.token(&[
        "-u",
        "heidi",
        "-e",
        "1h",
        "--max-uses",
        "5",
        "--rate",
        "2/h",
    ]);
    let statuses: Vec<u16> = (0..4).map(|_| get(&service, &bearer(&both)).0).collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    let shown: Value =
        serde_json::from_str(&work.cli_ok(&["token", "show", &token_id(&work, "heidi"), "--json"]))
            .unwrap();
    assert_eq!(
        (&shown["uses"], &shown["max_uses"]),
        (&2.into(), &5.into()),
        "{shown}"
    );

    // Named permissions arrive resolved: the verifier holds no catalog.
    for (scope, holds, lacks) in [
        (
            "demo:*",
            &["demo:read", "demo:write", "demo:admin", "demo:export"][..],
            &["admin"][..],
        ),
        ("demo:write", &["demo:read", "demo:write"], &["demo:admin"]),
    ] {
        let token = work.token(&["-u", "dave", "-e", "1h", "-s", scope]);
        let digest = TokenDigest::from_token(&token).unwrap();
        let identity = rt
            .block_on(verifier.verify(Lookup::new(digest, None, now)))
            .expect("dave's token");
        for name in holds {
            assert!(identity.has_scope(name), "{scope} holds {name}");
        }
        for name in lacks {
            assert!(!identity.has_scope(name), "{scope} lacks {name}");
        }
        assert!(!identity.permits([&NODE.parse().unwrap()], pat_core::Perm::READ));
    }

    // The same answers through actix-web (in process, same verifier).
    let reqs: Vec<Req> = [bearer(&alice), bearer(unknown.expose_secret())]
        .into_iter()
        .map(|a| Req {
            method: http::Method::GET,
            path: "/".into(),
            headers: vec![("authorization", a)],
        })
        .collect();
    let (tower, actix) = (
        tower_seen(echo_router(&gate), &reqs),
        actix_seen(echo_actix(&gate), &reqs),
    );
    assert_eq!(tower, actix);
    assert_eq!(tower[0].body, "user alice");

    // Disabled at the endpoint (issue 26): refused here once the TTL has
    // passed, as disabled, and back once enabled.
    let erin = work.token(&["-u", "erin", "-e", "1h"]);
    assert_eq!(get(&service, &bearer(&erin)).0, 200);
    let erin_id = token_id(&work, "erin");
    work.cli_ok(&["token", "disable", &erin_id]);
    std::thread::sleep(TTL + Duration::from_millis(100));
    let erin_digest = TokenDigest::from_token(&erin).unwrap();
    let ask = |digest| {
        rt.block_on(verifier.verify(Lookup::new(digest, None, pat_core::Timestamp::now())))
    };
    assert!(matches!(
        ask(erin_digest),
        Err(pat_core::AuthError::Disabled)
    ));
    assert_eq!(get(&service, &bearer(&erin)).0, 401);
    work.cli_ok(&["token", "enable", &erin_id]);
    std::thread::sleep(TTL + Duration::from_millis(100));
    assert_eq!(get(&service, &bearer(&erin)).0, 200, "enabled again");

    // Revoked at the endpoint: refused here once the TTL has passed.
    work.cli_ok(&["token", "revoke", &token_id(&work, "carol")]);
    std::thread::sleep(TTL + Duration::from_millis(100));
    assert_eq!(get(&service, &bearer(&carol)).0, 401);

    // The endpoint goes down: a cached answer lasts its TTL, then 503 with
    // Retry-After, never 401; a token never seen is 503 at once.
    assert_eq!(get(&service, &bearer(&alice)).0, 200);
    endpoint.kill();
    assert_eq!(get(&service, &bearer(&alice)).0, 200, "cached");
    std::thread::sleep(TTL + Duration::from_millis(100));
    for token in [&alice, &bob] {
        let (status, retry, body) = get(&service, &bearer(token));
        assert_eq!(status, 503, "{body}");
        assert!(retry.is_some(), "no Retry-After on 503");
    }
    let fresh = TokenSecret::generate();
    assert_eq!(get(&service, &bearer(fresh.expose_secret())).0, 503);

    // It comes back on its port: the service recovers by itself.
    let endpoint = Server::start_on(kind, &work.db(), &addr, &["--introspector", "gateway"]);
    assert_eq!(
        get(&service, &bearer(&alice)),
        (200, None, "user alice".into())
    );
    assert_eq!(get(&service, &bearer(&carol)).0, 401, "still revoked");

    // A verifier whose own token may not introspect: 503, not 401.
    let refused = RemoteVerifier::connect(
        &endpoint.url("/introspect"),
        &TokenSecret::parse(&alice).unwrap(),
    )
    .unwrap();
    let refused = serve(echo_router(&Gate::new(refused)));
    let (status, retry, _) = get(&refused, &bearer(&alice));
    assert_eq!((status, retry.is_some()), (503, true));
}

#[test]
fn endpoints_that_would_leak_the_verifiers_token_are_refused() {
    let token = TokenSecret::generate();
    let err = |url: &str| RemoteVerifier::connect(url, &token).unwrap_err();
    for url in [
        "http://10.0.0.7/introspect",
        "http://auth.example/introspect",
    ] {
        let e = err(url);
        assert!(matches!(e, RemoteError::PlainHttp { .. }), "{url}: {e}");
        assert!(e.to_string().contains("in clear"), "{e}");
        RemoteVerifier::builder()
            .allow_plain_http(true)
            .connect(url, &token)
            .expect("allowed explicitly");
    }
    for url in [
        "http://127.0.0.1:9/introspect",
        "http://[::1]:9/introspect",
        "http://localhost:9/introspect",
        "https://auth.example/introspect",
    ] {
        RemoteVerifier::connect(url, &token).unwrap_or_else(|e| panic!("{url}: {e}"));
    }
    for (url, says) in [
        ("ftp://auth.example/x", "http or https"),
        ("/introspect", "relative URL"),
        ("https://gw:secret@auth.example/x", "credentials in the URL"),
    ] {
        let e = err(url).to_string();
        assert!(e.contains(says), "{url}: {e}");
        assert!(!e.contains(&token.expose_secret()[4..]));
    }
}

/// The reference contract, in process through both adapters, with the
/// remote verifier in front of an introspection endpoint over a
/// `MemoryStore` (served on a real port).
#[test]
fn the_remote_verifier_keeps_the_reference_contract() {
    use pat_core::{Admin as _, ExpiryPolicy, MemoryStore, NewToken, Timestamp};
    use pat_integration_tests::contract::{Tokens, cases};

    let store = Arc::new(MemoryStore::new());
    let tokens = Tokens::create(store.as_ref());
    let own = store
        .create(
            &NewToken::new("gateway", ExpiryPolicy::hard(Duration::from_secs(3600))),
            Timestamp::now(),
        )
        .unwrap()
        .secret;
    let endpoint = serve(endpoint_over(&store));
    let remote = RemoteVerifier::connect(&format!("{endpoint}/introspect"), &own).unwrap();
    let gate = Gate::new(remote);
    let cases = cases(&tokens);
    let reqs: Vec<Req> = cases.iter().map(Req::from).collect();
    let tower = tower_seen(
        pat_integration_tests::inproc::reference_router(&gate),
        &reqs,
    );
    let actix = actix_seen(pat_integration_tests::inproc::reference_actix(&gate), &reqs);
    for ((case, t), a) in cases.iter().zip(&tower).zip(&actix) {
        case.check(t, "axum on remote");
        case.check(a, "actix on remote");
        assert_eq!(t, a, "the adapters differ on {}", case.name);
    }
}

/// Lookups that miss together share a round trip per token, and no more
/// than `max_in_flight` requests reach the endpoint at once: counted at a
/// real endpoint that answers slowly.
#[test]
fn the_endpoint_sees_one_request_per_token_and_a_bounded_number_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pat_core::{Admin as _, ExpiryPolicy, MemoryStore, NewToken, Timestamp};

    let store = Arc::new(MemoryStore::new());
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let now = Timestamp::now();
    let make = |user: &str| {
        store
            .create(&NewToken::new(user, hour), now)
            .unwrap()
            .secret
    };
    let own = make("gateway");
    let tokens: Vec<TokenSecret> = (0..8).map(|i| make(&format!("user{i}"))).collect();

    static SEEN: AtomicUsize = AtomicUsize::new(0);
    static NOW: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    let slow = axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            SEEN.fetch_add(1, Ordering::SeqCst);
            let at_once = NOW.fetch_add(1, Ordering::SeqCst) + 1;
            MOST.fetch_max(at_once, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let response = next.run(req).await;
            NOW.fetch_sub(1, Ordering::SeqCst);
            response
        },
    );
    let endpoint = serve(endpoint_over(&store).layer(slow));
    let verifier = RemoteVerifier::builder()
        .max_in_flight(2)
        .timeout(Duration::from_secs(30))
        .connect(&format!("{endpoint}/introspect"), &own)
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lookup = |t: &TokenSecret| verifier.verify(Lookup::new(t.digest(), None, now));

    // 16 lookups of one token not yet cached: one request.
    let burst: Vec<_> = (0..16).map(|_| lookup(&tokens[0])).collect();
    for answer in rt.block_on(futures_util::future::join_all(burst)) {
        assert_eq!(answer.expect("active").user(), "user0");
    }
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        1,
        "one round trip for the burst"
    );

    // 7 other tokens at once: all answered, never more than 2 at a time.
    let others: Vec<_> = tokens[1..].iter().map(lookup).collect();
    for (i, answer) in rt
        .block_on(futures_util::future::join_all(others))
        .into_iter()
        .enumerate()
    {
        assert_eq!(answer.expect("active").user(), format!("user{}", i + 1));
    }
    assert_eq!(SEEN.load(Ordering::SeqCst), 8);
    assert_eq!(MOST.load(Ordering::SeqCst), 2, "the in-flight bound");
}

/// Refusals and identities are kept apart: a flood of made-up tokens (anyone
/// can compute a checksum) fills and clears the refusals, and the token in
/// use stays cached. (Issue 20: one map held both, so random well-formed
/// digests flushed legitimate answers and every one cost a round trip.)
/// A memory store holding the verifier's own token (`gateway`) and
/// alice's, behind an introspection endpoint that counts its requests.
struct Counted {
    _store: Arc<pat_core::MemoryStore>,
    now: pat_core::Timestamp,
    own: TokenSecret,
    alice: TokenSecret,
    endpoint: String,
    /// Requests the endpoint has answered (leaked: one per test).
    seen: &'static std::sync::atomic::AtomicUsize,
}

fn counted_endpoint() -> Counted {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pat_core::{Admin as _, ExpiryPolicy, MemoryStore, NewToken, Timestamp};

    let store = Arc::new(MemoryStore::new());
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    let now = Timestamp::now();
    let made = |user: &str| {
        store
            .create(&NewToken::new(user, hour), now)
            .unwrap()
            .secret
    };
    let (own, alice) = (made("gateway"), made("alice"));
    let seen: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
    let counted = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| async move {
            seen.fetch_add(1, Ordering::SeqCst);
            next.run(req).await
        },
    );
    let endpoint = serve(endpoint_over(&store).layer(counted));
    Counted {
        _store: store,
        now,
        own,
        alice,
        endpoint,
        seen,
    }
}

#[test]
fn made_up_tokens_never_push_out_a_cached_identity() {
    use std::sync::atomic::Ordering;

    let Counted {
        now,
        own,
        alice,
        endpoint,
        seen: requests,
        ..
    } = counted_endpoint();
    let verifier = RemoteVerifier::builder()
        .capacity(4)
        .ttl(Duration::from_secs(600))
        .connect(&format!("{endpoint}/introspect"), &own)
        .unwrap();
    let check = |t: &TokenSecret| {
        pat_core::conformance::block_on(verifier.verify(Lookup::new(t.digest(), None, now)))
    };
    check(&alice).expect("alice's token");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    for _ in 0..20 {
        assert!(check(&TokenSecret::generate()).is_err());
    }
    assert_eq!(requests.load(Ordering::SeqCst), 21);
    assert!(verifier.cached() <= 1 + 4, "bounded: {}", verifier.cached());
    check(&alice).expect("alice's token, from the cache");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        21,
        "the flood pushed alice's answer out"
    );
    assert_eq!(verifier.cached_active(), 1);
}

/// The gate asks the verifier's memory before a token's alphabet and
/// checksum: only cached identities answer there. A refusal the endpoint
/// gave for a digest no token check vouched for (a caller of `verify` may
/// ask about any digest) must not turn a damaged token from "malformed"
/// into "unknown", and a cached identity still answers with no round trip.
#[test]
fn the_gate_asks_only_cached_identities_before_checking_a_token() {
    use std::sync::atomic::Ordering;

    use pat_core::{Outcome, RejectReason, TokenProblem};

    let Counted {
        now,
        own,
        alice,
        endpoint,
        seen: requests,
        ..
    } = counted_endpoint();
    let verifier = Arc::new(
        RemoteVerifier::builder()
            .ttl(Duration::from_secs(600))
            .connect(&format!("{endpoint}/introspect"), &own)
            .unwrap(),
    );
    let gate = Gate::new(verifier.clone());
    let check = |token: &str| {
        let header = format!("Bearer {token}");
        pat_core::conformance::block_on(gate.check_at([header.as_bytes()], false, now))
    };
    assert!(matches!(
        check(alice.expose_secret()),
        Outcome::Authenticated(_)
    ));
    let mut damaged = alice.expose_secret().to_owned();
    let last = damaged.pop().unwrap();
    damaged.push(if last == 'A' { 'B' } else { 'A' });
    let digest =
        TokenDigest::from_bytes(<sha2::Sha256 as sha2::Digest>::digest(damaged.as_bytes()).into());
    let planted = pat_core::conformance::block_on(verifier.verify(Lookup::new(digest, None, now)));
    assert!(planted.is_err(), "the endpoint knows no such token");
    let seen = requests.load(Ordering::SeqCst);
    match check(&damaged) {
        Outcome::Rejected(r) => assert_eq!(
            r.reason(),
            RejectReason::InvalidToken(TokenProblem::Malformed)
        ),
        other => panic!("a damaged token: {other:?}"),
    }
    assert!(matches!(
        check(alice.expose_secret()),
        Outcome::Authenticated(_)
    ));
    assert_eq!(
        requests.load(Ordering::SeqCst),
        seen,
        "neither the damaged token nor the cached one cost a round trip"
    );
}

/// A store's prefix changes while a verifier runs in front of it: the
/// verifier, told nothing, takes its own token's prefix; a token of the new
/// prefix is not its store's until an answer of the endpoint names it,
/// which the next use of any token brings; one told the prefixes at the
/// start takes it at once. Tokens of the former prefix keep working.
#[test]
fn the_verifier_learns_a_changed_prefix_from_the_endpoint() {
    let work = Workdir::new();
    work.cli_ok(&["init", "--prefix", "acme"]);
    let endpoint = Server::start(ServerKind::Axum, &work.db(), &["--introspector", "gateway"]);
    let gateway = TokenSecret::parse(&work.token(&["-u", "gateway", "-e", "1h"])).unwrap();
    let alice = work.token(&["-u", "alice", "-e", "1h"]);
    assert!(alice.starts_with("acme_"));
    let connect = |told: &[&str]| {
        let verifier = RemoteVerifier::builder()
            .ttl(Duration::ZERO)
            .prefixes(told.iter().map(|p| p.parse().unwrap()))
            .connect(&endpoint.url("/introspect"), &gateway)
            .expect("a loopback endpoint");
        let gate = Gate::new(Arc::new(verifier));
        serve(echo_router(&gate))
    };
    let learning = connect(&[]);
    let told = connect(&["beta", "acme"]);
    assert_eq!(get(&learning, &bearer(&alice)).0, 200);

    work.cli_ok(&["prefix", "set", "beta"]);
    let bob = work.token(&["-u", "bob", "-e", "1h"]);
    assert!(bob.starts_with("beta_"));
    assert_eq!(get(&told, &bearer(&bob)).0, 200, "told: taken at once");
    let (status, _, said) = get(&learning, &bearer(&bob));
    assert_eq!(status, 401, "not its store's yet: {said}");
    // Any token's active answer names the store's prefixes now.
    assert_eq!(get(&learning, &bearer(&alice)).0, 200);
    assert_eq!(get(&learning, &bearer(&bob)).0, 200, "learnt");
    assert_eq!(
        get(&learning, &bearer(&alice)).0,
        200,
        "the former still works"
    );
    assert!(endpoint.stop());
}
