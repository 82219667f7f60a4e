//! Stores written by earlier builds (`tests/fixtures`, see its README),
//! opened by today's: every token works as it did, nothing is lost, and the
//! authority rule's fields start empty (no parent, the old grace kept until
//! a rotation ends it). One test per backend and earlier format.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pat_core::{
    Admin as _, AuthError, OnReuse, Perm, PgStore, Policy, Rotation, Store, Timestamp,
    Verifier as _, conformance,
};
use pat_integration_tests::postgres::postgres;

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The secrets a fixture's tokens were made with, by name.
fn secrets(name: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(fixture(name))
        .expect("the fixture's secrets")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// What every earlier store holds, checked through today's backend `b`:
/// alice's hard token, bob's scoped sliding one, carol's rotated one with
/// its old secret in its grace; then a rotation ends that grace.
fn holds_the_fixture_tokens(
    b: &(impl pat_core::Admin + pat_core::Verifier),
    secrets: &BTreeMap<String, String>,
) {
    let now = Timestamp::now();
    let auth = |name: &str| conformance::authenticate(b, &secrets[name], None, now);
    let alice = auth("alice").expect("alice's token works");
    assert_eq!(alice.user(), "alice");
    let bob = auth("bob").expect("bob's token works");
    assert!(bob.permits([&NODE.parse().unwrap()], Perm::READ));
    assert!(!bob.permits([&NODE.parse().unwrap()], Perm::WRITE));
    let carol = auth("carol").expect("carol's current secret works");
    let old = auth("carol_old").expect("carol's old secret is still in its grace");
    assert_eq!(old.token_id(), carol.token_id());
    assert!(old.is_previous_secret() && !carol.is_previous_secret());

    let listed = b.list(None, true, now).expect("list");
    let mut labels: Vec<&str> = listed.iter().map(|t| t.label.as_str()).collect();
    labels.sort_unstable();
    assert_eq!(labels, ["alice hard", "bob sliding", "carol rotated"]);
    for t in &listed {
        assert_eq!(
            t.parent, None,
            "{}: a token from before lineage has none",
            t.label
        );
        // Rotations restarted a token's lifetime then: it began at the last.
        assert_eq!(
            t.lifetime_from,
            t.rotated_at.unwrap_or(t.created_at),
            "{}",
            t.label
        );
    }
    let info = b.get(carol.token_id()).expect("get carol");
    assert!(info.rotated_at.is_some());
    // The old build gave a century's grace: bounded now, at most a day.
    let until = info
        .previous_secret_until(now)
        .expect("the old secret's grace, noted");
    assert!(
        until <= now.saturating_add(pat_core::authority::DEFAULT_MAX_GRACE),
        "{info:?}"
    );
    assert_eq!(
        b.descendants(alice.token_id()).expect("descendants").len(),
        0
    );

    // A rotation today ends the old grace (refuse: the old secret is
    // presented below on purpose).
    b.set_policy(Policy::default().on_reuse(OnReuse::Refuse))
        .expect("policy");
    let rotated = b
        .rotate(carol.token_id(), &Rotation::new(), now)
        .expect("rotate carol");
    assert!(matches!(auth("carol_old"), Err(AuthError::Unknown)));
    assert!(matches!(auth("carol"), Err(AuthError::Unknown)));
    conformance::authenticate(b, rotated.secret.expose_secret(), None, now)
        .expect("the new secret works");
    // A child of an old token is bound by it.
    let child = b
        .create(
            &pat_core::NewToken::new(
                "alice",
                // An hour: the CLI below may be built first, which takes a minute.
                pat_core::ExpiryPolicy::hard(Duration::from_secs(3600)),
            )
            .parent(alice.token_id()),
            now,
        )
        .expect("a child of an old token");
    assert_eq!(
        b.descendants(alice.token_id()).expect("descendants")[0].id,
        child.info.id
    );
}

/// Store format 1 (record versions 1 and 2), written by commit 334c0b2, is
/// upgraded to today's format in place.
#[test]
fn a_format_1_redb_store_is_upgraded_and_keeps_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    std::fs::copy(fixture("redb-format-1.redb"), &db).unwrap();
    // A copy has the checkout's mode; a store must be its owner's alone.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = secrets("redb-format-1.secrets");
    {
        let store = Store::builder()
            .manual_flush()
            .admin_socket(false)
            .open(&db)
            .expect("today's build opens a format 1 store");
        holds_the_fixture_tokens(&store, &secrets);
        store.flush().unwrap();
    }
    // Opened again: today's format, the same tokens, alice's still working.
    let store = Store::builder()
        .manual_flush()
        .admin_socket(false)
        .open(&db)
        .expect("reopen");
    assert_eq!(store.list(None, true, Timestamp::now()).unwrap().len(), 4);
    conformance::authenticate(&store, &secrets["alice"], None, Timestamp::now())
        .expect("alice after the reopen");
    drop(store);
    // The CLI reads it too.
    let out = std::process::Command::new(pat_integration_tests::pat_cli())
        .arg("--db")
        .arg(&db)
        .args(["token", "list", "--json"])
        .env_remove("PAT_DB")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 4, "{listed}");
}

/// PostgreSQL schema 3, dumped from a database commit 334c0b2 wrote, is
/// upgraded to today's schema when today's build connects.
#[test]
fn a_schema_3_postgres_database_is_upgraded_and_keeps_its_tokens() {
    let Some(pg) = postgres() else { return };
    let url = pg.database();
    load_dump(&url, "pg-schema-3.sql");
    let secrets = secrets("pg-schema-3.secrets");
    let store = PgStore::builder()
        .manual_flush()
        .connect(&url)
        .expect("today's build connects to a schema 3 database");
    holds_the_fixture_tokens(&store, &secrets);
    drop(store);
    let again = PgStore::builder()
        .manual_flush()
        .connect(&url)
        .expect("again");
    assert_eq!(again.list(None, true, Timestamp::now()).unwrap().len(), 4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let version: i64 = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query_one(
                "SELECT value FROM pat_meta WHERE key = 'schema_version'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(version, pat_core::SCHEMA_VERSION);
}

/// What the stores written just before the prefix per store hold, checked
/// through today's backend `b`: the three tokens work (carol's old secret's
/// grace, bounded to a day when it was written, is over), the store's one
/// prefix is `pat`, and a new prefix keeps them working.
fn holds_the_prefix_less_tokens(
    b: &(impl pat_core::Admin + pat_core::Verifier),
    secrets: &BTreeMap<String, String>,
) {
    let now = Timestamp::now();
    let auth = |name: &str| conformance::authenticate(b, &secrets[name], None, now);
    assert_eq!(auth("alice").expect("alice's token works").user(), "alice");
    let bob = auth("bob").expect("bob's token works");
    assert!(bob.permits([&NODE.parse().unwrap()], Perm::READ));
    auth("carol").expect("carol's current secret works");
    let mut labels: Vec<String> = b
        .list(None, true, now)
        .expect("list")
        .into_iter()
        .map(|t| t.label)
        .collect();
    labels.sort_unstable();
    assert_eq!(labels, ["alice hard", "bob sliding", "carol rotated"]);
    assert_eq!(
        b.token_prefixes().expect("prefixes"),
        [pat_core::Prefix::DEFAULT]
    );
    let acme: pat_core::Prefix = "acme".parse().unwrap();
    b.set_prefix(acme).expect("a new prefix");
    let made = b
        .create(
            &pat_core::NewToken::new(
                "dave",
                pat_core::ExpiryPolicy::hard(Duration::from_secs(3600)),
            )
            .label("dave acme"),
            now,
        )
        .expect("create");
    assert!(made.secret.expose_secret().starts_with("acme_"));
    conformance::authenticate(b, made.secret.expose_secret(), None, now).expect("dave's works");
    auth("alice").expect("alice's `pat_` token still works");
}

/// Store format 2, written by commit 449f38e just before the prefix per
/// store, is upgraded to format 3: its tokens carry `pat`, which it keeps.
#[test]
fn a_format_2_redb_store_is_upgraded_and_its_tokens_keep_the_prefix_pat() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    std::fs::copy(fixture("redb-format-2.redb"), &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = secrets("redb-format-2.secrets");
    let open = || {
        Store::builder()
            .manual_flush()
            .admin_socket(false)
            // A store that exists keeps its own prefix.
            .prefix("other".parse().unwrap())
            .open(&db)
            .expect("today's build opens a format 2 store")
    };
    holds_the_prefix_less_tokens(&open(), &secrets);
    let again = open();
    assert_eq!(
        again.token_prefixes().unwrap(),
        ["acme".parse().unwrap(), pat_core::Prefix::DEFAULT],
        "the new prefix and the old one, kept"
    );
    conformance::authenticate(&again, &secrets["bob"], None, Timestamp::now())
        .expect("bob after the reopen");
}

/// PostgreSQL schema 4, dumped from a database commit 449f38e wrote, is
/// upgraded to schema 5: its tokens carry `pat`, which it keeps.
#[test]
fn a_schema_4_postgres_database_is_upgraded_and_its_tokens_keep_the_prefix_pat() {
    let Some(pg) = postgres() else { return };
    let url = pg.database();
    load_dump(&url, "pg-schema-4.sql");
    let secrets = secrets("pg-schema-4.secrets");
    let connect = || {
        PgStore::builder()
            .manual_flush()
            .prefix("other".parse().unwrap())
            .connect(&url)
            .expect("today's build connects to a schema 4 database")
    };
    holds_the_prefix_less_tokens(&connect(), &secrets);
    let again = connect();
    assert_eq!(
        again.token_prefixes().unwrap(),
        ["acme".parse().unwrap(), pat_core::Prefix::DEFAULT]
    );
    assert_eq!(again.prefixes().all(), again.token_prefixes().unwrap());
}

/// Loads a fixture's `pg_dump` into the database at `url`.
fn load_dump(url: &str, name: &str) {
    // pg_dump's psql meta-commands (`\restrict`) are not SQL.
    let dump: String = std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('\\'))
        .map(|l| format!("{l}\n"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(connection);
        client.batch_execute(&dump).await.expect("the dump loads");
    });
}

/// What the stores written just before named permissions hold, checked
/// through today's backend as `open` opens it: the three tokens of the
/// prefix `acme` work, the store's prefixes are still `beta` then `acme`,
/// its catalog is empty, and permissions defined now are carried by a new
/// token, also after a reopen, while the old tokens, which carry none,
/// hold every permission (unscoped) or none (node-scoped) as before.
fn holds_the_tokens_from_before_permissions<B: pat_core::Admin + pat_core::Verifier>(
    open: impl Fn() -> B,
    secrets: &BTreeMap<String, String>,
) {
    let now = Timestamp::now();
    let auth = |b: &B, name: &str| conformance::authenticate(b, &secrets[name], None, now);
    let b = open();
    let alice = auth(&b, "alice").expect("alice's token works");
    assert!(alice.has_scope("anything"), "unscoped: every permission");
    let bob = auth(&b, "bob").expect("bob's token works");
    assert!(bob.permits([&NODE.parse().unwrap()], Perm::READ));
    assert!(!bob.has_scope("anything"), "node-scoped: no permission");
    auth(&b, "carol").expect("carol's current secret works");
    assert_eq!(
        b.token_prefixes().expect("prefixes"),
        [
            "beta".parse().unwrap(),
            "acme".parse::<pat_core::Prefix>().unwrap()
        ]
    );
    assert!(b.permissions().expect("catalog").is_empty(), "none before");
    b.define_permissions(&[
        pat_core::PermissionDef::new("read_api".parse().unwrap()),
        pat_core::PermissionDef::new("api".parse().unwrap()).implies("read_api".parse().unwrap()),
    ])
    .expect("define");
    let scopes = ["api".parse::<pat_core::TokenScope>().unwrap()]
        .into_iter()
        .collect();
    let made = b
        .create(
            &pat_core::NewToken::new(
                "dave",
                pat_core::ExpiryPolicy::hard(Duration::from_secs(3600)),
            )
            .scopes(scopes),
            now,
        )
        .expect("create");
    assert!(made.secret.expose_secret().starts_with("beta_"));
    drop(b);
    let again = open();
    assert_eq!(again.permissions().expect("catalog").len(), 2, "kept");
    let dave = conformance::authenticate(&again, made.secret.expose_secret(), None, now)
        .expect("dave's token works after a reopen");
    assert!(dave.has_scope("read_api") && !dave.has_scope("admin"));
    auth(&again, "alice").expect("alice after the reopen");
}

/// Store format 3, written by commit 563e90d just before named
/// permissions, is upgraded to format 4: an empty catalog, and records
/// with names in record version 4.
#[test]
fn a_format_3_redb_store_is_upgraded_with_an_empty_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    std::fs::copy(fixture("redb-format-3.redb"), &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = secrets("redb-format-3.secrets");
    let open = || {
        Store::builder()
            .manual_flush()
            .admin_socket(false)
            .open(&db)
            .expect("today's build opens a format 3 store")
    };
    holds_the_tokens_from_before_permissions(open, &secrets);
}

/// PostgreSQL schema 5, dumped from a database commit 563e90d wrote, is
/// upgraded to schema 6: an empty catalog, tokens' names in `scopes`.
#[test]
fn a_schema_5_postgres_database_is_upgraded_with_an_empty_catalog() {
    let Some(pg) = postgres() else { return };
    let url = pg.database();
    load_dump(&url, "pg-schema-5.sql");
    let secrets = secrets("pg-schema-5.secrets");
    let connect = || {
        PgStore::builder()
            .manual_flush()
            .connect(&url)
            .expect("today's build connects to a schema 5 database")
    };
    holds_the_tokens_from_before_permissions(connect, &secrets);
}

/// What the stores written just before suspension hold, checked through
/// today's backend as `open` opens it: every token works (dave's named
/// permission with its implication), the catalog is kept, no token is
/// disabled, and a token disabled now is refused, also after a reopen,
/// until enabled; the others are untouched; a token made now keeps its
/// metadata across the reopen.
fn holds_the_tokens_from_before_suspension<B: pat_core::Admin + pat_core::Verifier>(
    open: impl Fn() -> B,
    secrets: &BTreeMap<String, String>,
) {
    let now = Timestamp::now();
    let auth = |b: &B, name: &str| conformance::authenticate(b, &secrets[name], None, now);
    let b = open();
    auth(&b, "alice").expect("alice's token works");
    auth(&b, "bob").expect("bob's token works");
    auth(&b, "carol").expect("carol's current secret works");
    let dave = auth(&b, "dave").expect("dave's token works");
    assert!(dave.has_scope("repo:write") && dave.has_scope("repo:read"));
    assert!(dave.permits([&NODE.parse().unwrap()], Perm::WRITE));
    assert_eq!(b.permissions().expect("catalog").len(), 2);
    let all = b.list(None, true, now).expect("list");
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|t| !t.is_disabled()), "none was disabled");
    assert_eq!(b.disable(dave.token_id()).expect("disable"), 1);
    assert!(matches!(
        auth(&b, "dave"),
        Err(pat_core::AuthError::Disabled)
    ));
    let meta = pat_core::Metadata::new([("team", "payments")]).unwrap();
    let tagged = b
        .create(
            &pat_core::NewToken::new(
                "erin",
                pat_core::ExpiryPolicy::hard(Duration::from_secs(3600)),
            )
            .meta(meta.clone()),
            now,
        )
        .expect("create");
    drop(b);
    let again = open();
    assert!(matches!(
        auth(&again, "dave"),
        Err(pat_core::AuthError::Disabled)
    ));
    auth(&again, "alice").expect("alice after the reopen");
    assert_eq!(again.enable(dave.token_id()).expect("enable"), 1);
    auth(&again, "dave").expect("dave enabled again");
    let erin = conformance::authenticate(&again, tagged.secret.expose_secret(), None, now)
        .expect("a token made after the upgrade");
    assert_eq!(erin.meta(), &meta, "its metadata kept across the reopen");
}

/// Store format 4, written by commit a3f1928 just before suspension, is
/// upgraded to format 5; disabled records are written in record version 5.
#[test]
fn a_format_4_redb_store_is_upgraded_and_its_tokens_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pat.redb");
    std::fs::copy(fixture("redb-format-4.redb"), &db).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    let secrets = secrets("redb-format-4.secrets");
    let open = || {
        Store::builder()
            .manual_flush()
            .admin_socket(false)
            .open(&db)
            .expect("today's build opens a format 4 store")
    };
    holds_the_tokens_from_before_suspension(open, &secrets);
}

/// PostgreSQL schema 6, dumped from a database commit a3f1928 wrote, is
/// upgraded to schema 7 (`disabled_by`).
#[test]
fn a_schema_6_postgres_database_is_upgraded_and_its_tokens_can_be_disabled() {
    let Some(pg) = postgres() else { return };
    let url = pg.database();
    load_dump(&url, "pg-schema-6.sql");
    let secrets = secrets("pg-schema-6.secrets");
    let connect = || {
        PgStore::builder()
            .manual_flush()
            .connect(&url)
            .expect("today's build connects to a schema 6 database")
    };
    holds_the_tokens_from_before_suspension(connect, &secrets);
}
