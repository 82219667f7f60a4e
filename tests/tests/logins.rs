//! `pat_core::Logins`, the password check of non-HTTP protocols (issue 23),
//! on every backend: the in-memory store, a redb file, PostgreSQL and the
//! remote verifier, awaited on a current-thread runtime (a networked
//! backend is awaited, never waited for on the runtime's one thread).

use std::sync::Arc;
use std::time::Duration;

use pat_core::remote::RemoteVerifier;
use pat_core::{
    Admin, ExpiryPolicy, LoginRefused, Logins, MemoryStore, NewToken, PgStore, Store, Timestamp,
    TokenProblem,
};
use pat_integration_tests::inproc::{endpoint_over, serve};
use pat_integration_tests::postgres::postgres;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hour() -> ExpiryPolicy {
    ExpiryPolicy::hard(Duration::from_secs(3600))
}

/// The same decisions on any backend: `admin` makes and revokes tokens,
/// `logins` checks them; `settle` waits out a backend's staleness bound.
fn decides_as_basic_auth(backend: &str, admin: &dyn Admin, logins: &Logins, settle: Duration) {
    let rt = runtime();
    let now = Timestamp::now();
    let alice = admin.create(&NewToken::new("alice", hour()), now).unwrap();
    let bob = admin.create(&NewToken::new("bob", hour()), now).unwrap();
    let alices = alice.secret.expose_secret();
    let peer = Some("192.0.2.1".parse().unwrap());
    let check = |user: &str, password: &str| rt.block_on(logins.check(user, password, peer));

    let identity = check("alice", alices).unwrap_or_else(|e| panic!("{backend}: {e}"));
    assert_eq!(identity.user(), "alice", "{backend}");
    assert_eq!(identity.token_id(), alice.info.id, "{backend}");
    let refused = |user, password, problem| {
        assert_eq!(
            check(user, password),
            Err(LoginRefused::Invalid(problem)),
            "{backend}: {user}"
        );
    };
    refused("alice", bob.secret.expose_secret(), TokenProblem::WrongUser);
    refused("mallory", alices, TokenProblem::WrongUser);
    refused(
        "alice",
        "correct horse battery staple",
        TokenProblem::NotAToken,
    );
    refused("alice", "pat_short", TokenProblem::Malformed);
    let unknown = pat_core::TokenSecret::generate();
    refused("alice", unknown.expose_secret(), TokenProblem::Unknown);

    // A disabled token's login is refused as disabled (issue 26), and an
    // open session's recheck sees it; enabled, both work again.
    let carol = admin.create(&NewToken::new("carol", hour()), now).unwrap();
    let carols = carol.secret.expose_secret();
    let session = check("carol", carols).unwrap_or_else(|e| panic!("{backend}: {e}"));
    admin.disable(carol.info.id).unwrap();
    std::thread::sleep(settle);
    refused("carol", carols, TokenProblem::Disabled);
    assert_eq!(
        rt.block_on(logins.recheck(&session)),
        Err(LoginRefused::Invalid(TokenProblem::Disabled)),
        "{backend}"
    );
    admin.enable(carol.info.id).unwrap();
    std::thread::sleep(settle);
    check("carol", carols).unwrap_or_else(|e| panic!("{backend}: {e}"));

    // A login is one use of a quota (issue 26); a session's recheck is
    // none, behind the remote verifier too: two logins of a two-use token
    // pass, with rechecks between them, and a third is refused.
    let dave = admin
        .create(&NewToken::new("dave", hour()).max_uses(2), now)
        .unwrap();
    let daves = dave.secret.expose_secret();
    let session = check("dave", daves).unwrap_or_else(|e| panic!("{backend}: {e}"));
    for _ in 0..3 {
        assert!(rt.block_on(logins.recheck(&session)).is_ok(), "{backend}");
    }
    assert_eq!(admin.get(dave.info.id).unwrap().uses, 1, "{backend}");
    check("dave", daves).unwrap_or_else(|e| panic!("{backend}: {e}"));
    refused("dave", daves, TokenProblem::UsedUp);
    assert_eq!(admin.get(dave.info.id).unwrap().uses, 2, "{backend}");
    // Used up, the token's open session goes on (its login spent a use),
    // even right after a login was refused as used up.
    assert!(rt.block_on(logins.recheck(&session)).is_ok(), "{backend}");
    assert_eq!(admin.get(dave.info.id).unwrap().uses, 2, "{backend}");

    // A session's recheck sees the revocation (within the backend's bound).
    assert!(rt.block_on(logins.recheck(&identity)).is_ok(), "{backend}");
    admin.revoke(alice.info.id).unwrap();
    std::thread::sleep(settle);
    assert_eq!(
        rt.block_on(logins.recheck(&identity)),
        Err(LoginRefused::Invalid(TokenProblem::Unknown)),
        "{backend}"
    );
    refused("alice", alices, TokenProblem::Unknown);
}

#[test]
fn the_memory_store() {
    let store = Arc::new(MemoryStore::new());
    decides_as_basic_auth(
        "memory",
        &*store,
        &Logins::new(store.clone()),
        Duration::ZERO,
    );
}

#[test]
fn a_redb_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .open(dir.path().join("pat.redb"))
            .unwrap(),
    );
    decides_as_basic_auth("redb", &*store, &Logins::new(store.clone()), Duration::ZERO);
}

#[test]
fn a_postgres_store() {
    let Some(pg) = postgres() else { return };
    let store = Arc::new(PgStore::builder().connect(&pg.database()).unwrap());
    decides_as_basic_auth(
        "postgres",
        &*store,
        &Logins::new(store.clone()),
        Duration::ZERO,
    );
}

#[test]
fn the_remote_verifier_and_an_endpoint_that_is_down() {
    let store = Arc::new(MemoryStore::new());
    let endpoint = serve(endpoint_over(&store));
    let gateway = store
        .create(&NewToken::new("gateway", hour()), Timestamp::now())
        .unwrap();
    let ttl = Duration::from_millis(200);
    let verifier = RemoteVerifier::builder()
        .ttl(ttl)
        .connect(&format!("{endpoint}/introspect"), &gateway.secret)
        .unwrap();
    decides_as_basic_auth(
        "remote",
        &*store,
        &Logins::new(verifier),
        ttl + Duration::from_millis(100),
    );

    // Nothing listens: unavailable, which is not the client's failure, so
    // it never counts toward the address's limit.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    let down = RemoteVerifier::builder()
        .connect(&url, &gateway.secret)
        .unwrap();
    let logins = Logins::new(down).failures_per_address(1, Duration::from_secs(60));
    let rt = runtime();
    let token = store
        .create(&NewToken::new("alice", hour()), Timestamp::now())
        .unwrap();
    let peer = Some("192.0.2.1".parse().unwrap());
    for _ in 0..3 {
        assert_eq!(
            rt.block_on(logins.check("alice", token.secret.expose_secret(), peer)),
            Err(LoginRefused::Unavailable)
        );
    }
}
