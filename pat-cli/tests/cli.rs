//! The real `pat-cli` binary against real store files in temp dirs.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pat_core::{Admin as _, AuthError, Perm, Store, Timestamp, TokenId};
use serde_json::Value;

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("pat.redb")
    }

    /// Runs `pat-cli --db <temp db> ARGS`.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pat-cli"));
        cmd.arg("--db")
            .arg(self.db())
            .args(args)
            .env_remove("PAT_DB");
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Creates a token with `-q` and returns it.
    fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["token", "-q"];
        all.extend_from_slice(args);
        self.ok(&all).trim_end().to_owned()
    }

    fn store(&self) -> Store {
        Store::open(self.db()).unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure with `code` whose stderr mentions every one of `needles`.
#[track_caller]
fn fails(out: Output, code: i32, needles: &[&str]) {
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout on failure: {:?}", out.stdout);
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in: {err}");
    }
}

#[test]
fn quiet_prints_exactly_the_token_and_it_authenticates() {
    let env = Env::new();
    let out = env.ok(&["token", "-u", "alice", "-e", "24h", "-q"]);
    assert_eq!(out.lines().count(), 1);
    assert!(out.ends_with('\n'));
    let token = out.trim_end();
    assert!(token.starts_with("pat_"));
    let id = env.store().authenticate(token, Timestamp::now()).unwrap();
    assert_eq!(id.user(), "alice");
    assert!(id.scopes().is_unrestricted());
}

#[test]
fn long_flags_work_like_short_ones() {
    let env = Env::new();
    let token = env.ok(&[
        "token", "--user", "alice", "--expire", "1h", "--quiet", "--label", "laptop",
    ]);
    let info = env
        .store()
        .authenticate(token.trim_end(), Timestamp::now())
        .unwrap();
    assert_eq!(info.user(), "alice");
    let listed = env.json(&["token", "list", "--json"]);
    assert_eq!(listed[0]["label"], "laptop");
}

#[test]
fn human_output_shows_token_expiry_id_and_warning() {
    let env = Env::new();
    let out = env.ok(&["token", "-u", "alice", "-e", "24h"]);
    let first = out.lines().next().unwrap();
    assert!(first.starts_with("pat_") && !first.contains(' '), "{out}");
    let info = &env.store().list(None, true, Timestamp::now()).unwrap()[0];
    assert!(out.contains(&info.id.to_string()), "{out}");
    assert!(out.contains(&info.expiry.expires_at().to_string()), "{out}");
    assert!(out.contains("hard limit"), "{out}");
    assert!(out.contains("shown only once"), "{out}");

    let out = env.ok(&["token", "-u", "bob", "-a", "10m"]);
    assert!(out.contains("unless it is used before"), "{out}");
    assert!(out.contains("10m"), "{out}");
}

#[test]
fn json_output_has_every_field() {
    let env = Env::new();
    let before = Timestamp::now();
    let v = env.json(&[
        "token",
        "-u",
        "bob",
        "-a",
        "10m",
        "--max-lifetime",
        "1d",
        "-s",
        &format!("node:{}:r,node:{NODE}:w", NODE.to_uppercase()),
        "-l",
        "ci",
        "--json",
    ]);
    assert!(v["token"].as_str().unwrap().starts_with("pat_"));
    assert_eq!(v["user"], "bob");
    assert_eq!(v["label"], "ci");
    assert_eq!(v["auto_refresh_seconds"], 600);
    assert_eq!(v["max_lifetime_seconds"], 86_400);
    assert_eq!(v["scopes"], serde_json::json!([format!("node:{NODE}:rw")]));
    assert!(!v["created_by"].as_str().unwrap().is_empty());
    let created = humantime::parse_rfc3339(v["created_at"].as_str().unwrap()).unwrap();
    let expires = humantime::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.duration_since(created).unwrap().as_secs(), 600);
    assert!(created >= before.to_system_time());
    let id: TokenId = v["id"].as_str().unwrap().parse().unwrap();

    let hard = env.json(&["token", "-u", "carol", "-e", "2h", "--json"]);
    assert_eq!(hard["auto_refresh_seconds"], Value::Null);
    assert_eq!(hard["max_lifetime_seconds"], Value::Null);
    assert_eq!(hard["scopes"], serde_json::json!([]));

    // The scoped token authenticates with its scopes.
    let identity = env
        .store()
        .authenticate(v["token"].as_str().unwrap(), Timestamp::now())
        .unwrap();
    assert_eq!(identity.token_id(), id);
    let node = pat_core::NodeId::parse(NODE).unwrap();
    assert!(identity.permits([&node], Perm::READ_WRITE));
}

#[test]
fn scopes_repeat_and_split_on_commas() {
    let env = Env::new();
    let other = "1b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
    let v = env.json(&[
        "token",
        "-u",
        "a",
        "-e",
        "1h",
        "--json",
        "-s",
        &format!("node:{NODE}:r"),
        "--scope",
        &format!("node:{other}:w,node:{NODE}:w"),
    ]);
    assert_eq!(
        v["scopes"],
        serde_json::json!([format!("node:{NODE}:rw"), format!("node:{other}:w")])
    );
}

#[test]
fn list_show_revoke_and_prune() {
    let env = Env::new();
    let alice = env.token(&["-u", "alice", "-e", "1h"]);
    env.token(&["-u", "alice", "-a", "10m"]);
    env.token(&["-u", "bob", "-e", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let all = env.json(&["token", "list", "--all", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let live = env.json(&["token", "list", "--json"]);
    assert_eq!(live.as_array().unwrap().len(), 2, "expired bob hidden");
    let mine = env.json(&["token", "list", "-u", "alice", "--json"]);
    assert_eq!(mine.as_array().unwrap().len(), 2);
    for t in mine.as_array().unwrap() {
        assert!(t.get("token").is_none(), "list never shows secrets");
        assert!(t.get("last_used_at").is_some());
    }

    let table = env.ok(&["token", "list", "--all"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("(expired)"), "{table}");
    assert!(!table.contains("pat_"), "{table}");

    let alice_id = env
        .store()
        .authenticate(&alice, Timestamp::now())
        .unwrap()
        .token_id();
    let shown = env.json(&["token", "show", &alice_id.to_string(), "--json"]);
    assert_eq!(shown["user"], "alice");
    assert!(shown["last_used_at"].is_string(), "use recorded");
    let human = env.ok(&["token", "show", &alice_id.to_string()]);
    assert!(
        human.contains("alice") && human.contains("valid"),
        "{human}"
    );

    let out = env.ok(&["token", "prune"]);
    assert_eq!(out, "removed 1 expired token\n");

    let out = env.ok(&["token", "revoke", &alice_id.to_string()]);
    assert!(out.starts_with(&format!("revoked {alice_id}")), "{out}");
    assert!(matches!(
        env.store().authenticate(&alice, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    fails(
        env.run(&["token", "revoke", &alice_id.to_string()]),
        1,
        &["no token with id", &alice_id.to_string()],
    );

    env.token(&["-u", "alice", "-e", "1h"]);
    assert_eq!(
        env.ok(&["token", "revoke", "--user", "alice"]),
        "revoked 2 tokens of alice\n"
    );
    assert_eq!(env.ok(&["token", "list"]), "no tokens\n");
}

#[test]
fn rotate_gives_a_new_secret_once_and_retires_the_old() {
    let env = Env::new();
    // The old secrets are presented below to show they are refused; by
    // default that revokes the token (see
    // `a_replayed_old_secret_revokes_its_token_by_default`).
    env.ok(&["policy", "set", "--on-reuse", "refuse"]);
    let old = env.token(&[
        "-u",
        "alice",
        "-e",
        "2h",
        "-l",
        "ci",
        "-s",
        &format!("node:{NODE}:r"),
    ]);
    let id = env
        .store()
        .authenticate(&old, Timestamp::now())
        .unwrap()
        .token_id()
        .to_string();

    // Human output: the secret once, the record, what became of the old one.
    let out = env.ok(&["token", "rotate", &id]);
    let new = out.lines().next().unwrap().to_owned();
    assert!(new.starts_with("pat_") && new != old, "{out}");
    assert!(
        out.contains(&format!("Token {id} for user alice, label \"ci\"")),
        "{out}"
    );
    assert!(
        out.contains("The previous secret no longer works."),
        "{out}"
    );
    assert!(out.contains("shown only once"), "{out}");
    let store = env.store();
    assert!(matches!(
        store.authenticate(&old, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    let identity = store.authenticate(&new, Timestamp::now()).unwrap();
    assert_eq!(identity.token_id().to_string(), id);
    assert!(identity.permits([&NODE.parse().unwrap()], Perm::READ));
    drop(store);

    // JSON, with a grace and a new sliding policy: both secrets work.
    let v = env.json(&[
        "token", "rotate", &id, "--grace", "10m", "-a", "30m", "--json",
    ]);
    let newer = v["token"].as_str().unwrap();
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["auto_refresh_seconds"], 1800);
    assert!(v["rotated_at"].is_string(), "{v}");
    assert!(v["previous_secret_retires_at"].is_string(), "{v}");
    let store = env.store();
    for t in [&new, newer] {
        assert_eq!(
            store
                .authenticate(t, Timestamp::now())
                .unwrap()
                .token_id()
                .to_string(),
            id
        );
    }
    drop(store);
    let shown = env.ok(&["token", "show", &id]);
    assert!(shown.contains("rotated:"), "{shown}");
    assert!(!shown.contains("pat_"), "{shown}");
    // The live old secret is shown, with the end of its grace.
    let until = v["previous_secret_retires_at"].as_str().unwrap();
    assert!(
        shown.contains(&format!("old secret: still works until {until}")),
        "{shown}"
    );
    let listed = env.json(&["token", "show", &id, "--json"]);
    assert_eq!(listed["previous_secret_until"], until);
    assert!(
        env.ok(&["token", "list"])
            .contains(&format!("old secret until {until}")),
        "the list marks it too"
    );

    // Quiet: exactly the token. A new rotation ends the earlier grace: at
    // most one old secret works, and this one has none.
    let quiet = env.ok(&["token", "rotate", &id, "-q", "-e", "1d"]);
    assert_eq!(quiet.lines().count(), 1);
    assert!(quiet.starts_with("pat_"));
    let shown = env.json(&["token", "show", &id, "--json"]);
    assert!(shown["previous_secret_until"].is_null(), "{shown}");
    // The grace asked is capped by the policy's (a day by default).
    let v = env.json(&["token", "rotate", &id, "--grace", "30d", "--json"]);
    // RFC 3339 in UTC, one width: compared as text.
    let retires = v["previous_secret_retires_at"].as_str().unwrap();
    let day = Timestamp::now().saturating_add(std::time::Duration::from_secs(86_400));
    assert!(retires <= day.to_string().as_str(), "{retires}");
    let quiet = v["token"].as_str().unwrap().to_owned();
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Errors: which flag, which value; nothing changes.
    fails(
        env.run(&["token", "rotate", &id, "-e", "0s"]),
        2,
        &["--expire", "0s"],
    );
    fails(
        env.run(&["token", "rotate", &id, "-e", "1h", "-a", "1h"]),
        2,
        &["--auto"],
    );
    fails(
        env.run(&["token", "rotate", &id, "--max-lifetime", "1h"]),
        2,
        &["--auto"],
    );
    fails(
        env.run(&["token", "rotate", &id, "-a", "2h", "--max-lifetime", "1h"]),
        2,
        &["--max-lifetime"],
    );
    fails(
        env.run(&["token", "rotate", &id, "--grace", "soon"]),
        2,
        &["--grace", "soon"],
    );
    fails(env.run(&["token", "rotate", "nope"]), 2, &["nope"]);
    fails(
        env.run(&["token", "rotate", "00000000000000ff"]),
        1,
        &["no token with id 00000000000000ff"],
    );
    assert_eq!(
        env.store()
            .authenticate(quiet.trim_end(), Timestamp::now())
            .unwrap()
            .token_id()
            .to_string(),
        id,
        "failed rotations changed nothing"
    );
}

#[test]
fn the_policy_limits_new_tokens_and_list_marks_old_ones() {
    let env = Env::new();
    env.token(&["-u", "alice", "-e", "30d", "-l", "old"]);
    assert_eq!(
        env.ok(&["policy"]),
        "max lifetime:         none\nmax tokens per user:  none\n\
         max grace:            1d (default)\non reuse:             revoke\n"
    );
    let out = env.ok(&[
        "policy",
        "set",
        "--max-lifetime",
        "7d",
        "--max-tokens-per-user",
        "2",
    ]);
    assert_eq!(
        out,
        "max lifetime:         7d\nmax tokens per user:  2\n\
         max grace:            1d (default)\non reuse:             revoke\n"
    );
    let v = env.json(&["policy", "--json"]);
    assert_eq!(v["max_lifetime_seconds"], 604_800);
    assert_eq!(v["max_tokens_per_user"], 2);
    assert_eq!(v["max_grace_seconds"], 86_400);
    assert_eq!(v["on_reuse"], "revoke");

    // Refusals name the limit, exit 1 and store nothing.
    fails(
        env.run(&["token", "-u", "alice", "-e", "8d"]),
        1,
        &["policy", "7d", "8d"],
    );
    fails(
        env.run(&["token", "-u", "alice", "-a", "1h"]),
        1,
        &["--max-lifetime", "7d"],
    );
    env.token(&[
        "-u",
        "alice",
        "-a",
        "1h",
        "--max-lifetime",
        "7d",
        "-l",
        "new",
    ]);
    fails(
        env.run(&["token", "-u", "alice", "-e", "1d"]),
        1,
        &["2 live tokens", "alice", "revoke one"],
    );
    env.token(&["-u", "bob", "-e", "1d"]);
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // The old token is left alone, and marked.
    let table = env.ok(&["token", "list", "-u", "alice"]);
    for line in table.lines().skip(1) {
        assert_eq!(
            line.contains("over policy"),
            line.contains("old"),
            "{table}"
        );
    }
    let listed = env.json(&["token", "list", "--json", "-u", "alice"]);
    let within: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["label"].as_str().unwrap().to_owned(),
                t["within_policy"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(within.contains(&("old".into(), false)) && within.contains(&("new".into(), true)));

    // Lifting a limit.
    env.ok(&["policy", "set", "--max-tokens-per-user", "none"]);
    env.token(&["-u", "alice", "-e", "1d"]);
    assert!(env.ok(&["policy"]).contains("max tokens per user:  none"));

    // Usage errors name the flag and value.
    fails(
        env.run(&["policy", "set"]),
        2,
        &["--max-lifetime", "--max-tokens-per-user"],
    );
    fails(
        env.run(&["policy", "set", "--max-tokens-per-user", "0"]),
        2,
        &["--max-tokens-per-user", "`0`"],
    );
    fails(
        env.run(&["policy", "set", "--max-lifetime", "forever"]),
        2,
        &["--max-lifetime", "forever"],
    );
}

/// Every change is in the audit log with the OS user who made it, or the
/// socket peer's uid when a service holds the store; never a secret.
#[test]
fn the_audit_log_names_every_change_and_its_actor() {
    let env = Env::new();
    let as_user = |user: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pat-cli"))
            .arg("--db")
            .arg(env.db())
            .args(args)
            .env_remove("PAT_DB")
            .env("USER", user)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let token = as_user("carol", &["token", "-q", "-u", "alice", "-e", "1h"]);
    let id = env
        .store()
        .authenticate(token.trim_end(), Timestamp::now())
        .unwrap()
        .token_id()
        .to_string();
    let rotated = as_user("dave", &["token", "rotate", &id, "-q"]);
    as_user("erin", &["policy", "set", "--max-tokens-per-user", "9"]);
    {
        // Through a running service's socket: the peer's uid, whatever
        // $USER claims.
        let held = env.store();
        as_user("mallory", &["token", "revoke", &id]);
        drop(held);
    }
    as_user("carol", &["token", "-q", "-u", "bob", "-e", "1h"]);

    let log: Vec<Value> = serde_json::from_str::<Value>(&as_user("x", &["audit", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    let uid = format!("uid {}", rustix::process::getuid().as_raw());
    let rows: Vec<(String, String, String)> = log
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["user"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let row = |a: &str, u: &str, actor: &str| (a.to_owned(), u.to_owned(), actor.to_owned());
    assert_eq!(
        rows,
        [
            row("create", "alice", "carol"),
            row("rotate", "alice", "dave"),
            row("set_policy", "", "erin"),
            row("revoke", "alice", &uid),
            row("create", "bob", "carol"),
        ]
    );
    assert_eq!(log[0]["token_id"], id.as_str());
    assert_eq!(
        log[2]["outcome"],
        "max lifetime none, max tokens per user 9"
    );
    let all = as_user("x", &["audit"]);
    assert!(all.starts_with("AT") && all.lines().count() == 6, "{all}");
    for secret in [token.trim_end(), rotated.trim_end()] {
        assert!(!all.contains(&secret[4..]), "{all}");
    }
    let bob = as_user("x", &["audit", "-u", "bob", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&bob)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        as_user("x", &["audit", "--since", "1h", "-u", "nobody"]),
        "no entries\n"
    );
    fails(
        env.run(&["audit", "--since", "yesterday"]),
        2,
        &["--since", "yesterday"],
    );
}

/// `token check` reads the token from stdin, never echoes it, and does not
/// count as a use.
#[test]
fn check_reads_stdin_and_says_what_a_token_is() {
    use std::io::Write as _;
    use std::process::Stdio;

    let env = Env::new();
    let check = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pat-cli"))
            .arg("--db")
            .arg(env.db())
            .args(["token", "check"])
            .env_remove("PAT_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // No store yet: the format alone.
    let forged = pat_core::TokenSecret::generate();
    let out = check(&format!("{}\n", forged.expose_secret()));
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with("well-formed") && said.contains("no store"),
        "{said}"
    );
    assert!(!env.db().exists(), "check created a store");

    let live = env.token(&["-u", "alice", "-a", "1h"]);
    let short = env.token(&["-u", "bob", "-e", "1s"]);
    for (token, needles) in [
        (&live, &["alice", "live until"][..]),
        (&short, &["bob"][..]),
        (
            &forged.expose_secret().to_owned(),
            &["unknown to this store"][..],
        ),
    ] {
        let out = check(&format!("  {token}\n"));
        assert!(out.status.success(), "{}", stderr(&out));
        let said = String::from_utf8(out.stdout).unwrap();
        for n in needles {
            assert!(said.contains(n), "{n:?} not in {said}");
        }
        assert!(!said.contains(&token[4..]), "echoed: {said}");
    }
    let listed = env.json(&["token", "list", "-u", "alice", "--json"]);
    assert!(
        listed[0]["last_used_at"].is_null(),
        "check counted as a use"
    );

    // Not a token: exit 1, the reason, and nothing echoed.
    let mut typo = live.clone();
    typo.replace_range(10..11, if &live[10..11] == "a" { "b" } else { "a" });
    for (input, needle) in [
        (typo.as_str(), "checksum"),
        ("ghp_abcdef", "does not start with `pat_`"),
        ("", "does not start with `pat_`"),
    ] {
        let out = check(input);
        fails(out, 1, &["not a well-formed token", needle]);
    }
    let out = check(&typo);
    assert!(!stderr(&out).contains(&typo[4..]));
}

#[test]
fn list_filters_by_expiry_and_idleness() {
    let env = Env::new();
    let soon = env.token(&["-u", "alice", "-e", "1h", "-l", "soon"]);
    env.token(&["-u", "alice", "-e", "30d", "-l", "later"]);
    env.token(&["-u", "bob", "-e", "2h", "-l", "bob"]);
    env.store().authenticate(&soon, Timestamp::now()).unwrap();
    let labels = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["token", "list", "--json"];
        all.extend_from_slice(args);
        // Tokens created within one second list in id order: sort.
        let mut v: Vec<String> = env
            .json(&all)
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["label"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(labels(&["--expiring-within", "3h"]), ["bob", "soon"]);
    assert_eq!(
        labels(&["--expiring-within", "3h", "-u", "alice"]),
        ["soon"]
    );
    assert_eq!(labels(&["--unused-for", "1d"]), ["bob", "later"]);
    assert_eq!(
        labels(&["--unused-for", "1d", "--expiring-within", "3h"]),
        ["bob"]
    );
    let table = env.ok(&["token", "list", "--unused-for", "1d", "-u", "alice"]);
    assert!(
        table.contains("later") && !table.contains("soon"),
        "{table}"
    );
    fails(
        env.run(&["token", "list", "--unused-for", "0"]),
        2,
        &["--unused-for"],
    );
}

/// A long list is written as it is formatted: aligned, complete, one JSON
/// array, and a reader that stops early (`| head -1`) is not an error.
#[test]
fn long_lists_stream_and_a_closed_pipe_is_not_an_error() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let env = Env::new();
    let news: Vec<_> = (0..3000)
        .map(|i| {
            pat_core::NewToken::new(format!("user{i}"), pat_core::ExpiryPolicy::hard(HOUR)).label(
                if i == 1234 {
                    "the longest label".into()
                } else {
                    String::new()
                },
            )
        })
        .collect();
    env.store().create_many(&news, Timestamp::now()).unwrap();

    let table = env.ok(&["token", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3001);
    let column = lines[0].find("EXPIRY").unwrap();
    for line in &lines {
        assert_eq!(
            line.find(" hard").map(|i| i + 1).unwrap_or(column),
            column,
            "{line}"
        );
    }
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3000
    );

    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pat-cli"));
        cmd.arg("--db").arg(env.db()).args(["token", "list"]);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader is dropped: the rest of the output meets a closed pipe.
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn revoking_several_ids_revokes_the_known_ones_and_reports_the_rest() {
    let env = Env::new();
    env.token(&["-u", "a", "-e", "1h"]);
    env.token(&["-u", "b", "-e", "1h"]);
    let ids: Vec<String> = env
        .json(&["token", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let unknown = "00000000000000ff";
    let out = env.run(&["token", "revoke", &ids[0], unknown, &ids[1]]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(unknown));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    assert_eq!(env.ok(&["token", "list", "--all"]), "no tokens\n");
}

#[test]
fn usage_errors_name_the_flag_and_value_and_exit_2() {
    let env = Env::new();
    let bad_scope = format!("node:{NODE}:x");
    let cases: &[(&[&str], &[&str])] = &[
        (&["token", "-e", "24h"], &["--user"]),
        (
            &["token", "-u", "a"],
            &["--expire (-e)", "--auto (-a)", "required"],
        ),
        (
            &["token", "-u", "a", "-e", "1h", "-a", "10m"],
            &["--expire (-e)", "--auto (-a)", "cannot be combined"],
        ),
        (
            &["token", "-u", "a", "-e", "0s"],
            &["--expire", "`0s`", "zero"],
        ),
        (
            &["token", "-u", "a", "-e", "24"],
            &["--expire", "`24`", "no unit"],
        ),
        (&["token", "-u", "a", "-e", "-5m"], &["--expire", "-5m"]),
        (&["token", "-u", "a", "-e", ""], &["--expire", "empty"]),
        (
            &["token", "-u", "a", "-e", "5x"],
            &["--expire", "`5x`", "unit"],
        ),
        (
            &["token", "-u", "a", "-e", "3000000d"],
            &["--expire", "9999"],
        ),
        (
            &["token", "-u", "a", "-e", "2930000d"],
            &["--expire", "9999", "shorter"],
        ),
        (
            &["token", "-u", "a", "-e", "10M"],
            &["--expire", "`10M`", "lowercase"],
        ),
        (
            &["token", "-u", "a", "-e", "1w"],
            &["--expire", "`1w`", "unit"],
        ),
        (
            &["token", "-u", "a", "-a", "1h 30m"],
            &["--auto", "`1h 30m`", "space"],
        ),
        (
            &["token", "-u", "a", "-a", "tenminutes"],
            &["--auto", "`tenminutes`"],
        ),
        (
            &["token", "-u", "a", "-e", "1h", "--max-lifetime", "2h"],
            &["--max-lifetime", "--auto"],
        ),
        (
            &["token", "-u", "a", "-a", "1h", "--max-lifetime", "30m"],
            &["--max-lifetime", "30m", "1h"],
        ),
        (
            &["token", "-u", "a", "-e", "1h", "-s", "node:x:r"],
            &["--scope", "`x` is not a UUID"],
        ),
        (
            &["token", "-u", "a", "-e", "1h", "-s", &bad_scope],
            &["--scope", "`x` is not a permission"],
        ),
        // Not a node scope: a permission's name, which the (missing)
        // store's catalog lacks.
        (
            &["token", "-u", "a", "-e", "1h", "-s", "file:1:r"],
            &["--scope", "`file:1:r`", "in the catalog"],
        ),
        (
            &["token", "-u", "a", "-e", "1h", "-s", "Repo:Read"],
            &["--scope", "`Repo:Read` is not a permission", "a-z"],
        ),
        (
            &["token", "-u", "a", "-e", "1h", "-q", "--json"],
            &["--quiet", "--json"],
        ),
        (&["token", "show", "xyz"], &["`xyz`", "16 hex digits"]),
        (&["token", "revoke"], &["<IDS|--user <USER>>"]),
        (
            &["token", "revoke", "00000000000000ff", "--user", "a"],
            &["--user"],
        ),
        (&["token", "frobnicate"], &["frobnicate"]),
        (&["completions", "tcsh"], &["tcsh"]),
    ];
    for (args, needles) in cases {
        fails(env.run(args), 2, needles);
    }
    assert!(!env.db().exists(), "no usage error touches the store");
}

#[test]
fn invalid_names_are_usage_errors_that_store_nothing() {
    // Regression: `-u ""` exited 1 with "invalid user ``" and no flag name.
    let env = Env::new();
    env.token(&["-u", "alice", "-e", "1h"]);
    let zero_width = "ali\u{200b}ce";
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["token", "-u", "a:b", "-e", "1h"],
            &["--user", "`a:b`", "`:`"],
        ),
        (&["token", "-u", "", "-e", "1h"], &["--user", "empty"]),
        (
            &["token", "-u", " bob", "-e", "1h"],
            &["--user", "white space"],
        ),
        (
            &["token", "-u", zero_width, "-e", "1h"],
            &["--user", "invisible", "ali\\u{200b}ce"],
        ),
        (
            &["token", "-u", "\u{202e}ecila", "-e", "1h"],
            &["--user", "invisible"],
        ),
        (
            &["token", "-u", "bob", "-e", "1h", "-l", "a\u{2066}b"],
            &["--label", "invisible"],
        ),
        (
            &["token", "-u", "bob", "-e", "1h", "-l", "tab\there"],
            &["--label", "control"],
        ),
        (&["token", "list", "-u", ""], &["--user", "empty"]),
        (&["token", "revoke", "--user", "a:b"], &["--user", "`:`"]),
    ];
    for (args, needles) in cases {
        let out = env.run(args);
        let err = stderr(&out);
        assert!(
            !err.contains('\u{200b}') && !err.contains('\u{202e}'),
            "{err}"
        );
        fails(out, 2, needles);
    }
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn errors_never_echo_a_token_or_a_terminal_escape() {
    // Regression: `pat-cli token revoke pat_…` answered "token id `pat_…` is
    // not 16 hex digits" with the whole token, and ESC sequences typed (or
    // pasted) in a value reached the terminal.
    let env = Env::new();
    let token = env.token(&["-u", "alice", "-e", "1h"]);
    let body = &token[4..];
    for args in [
        vec!["token", "revoke", token.as_str()],
        vec!["token", "show", token.as_str()],
        vec!["token", "-u", "a", "-e", token.as_str()],
        vec!["token", "-u", "a", "-e", "1h", "-s", token.as_str()],
    ] {
        let out = env.run(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            !err.contains(&body[..8]),
            "{args:?} echoed the token: {err}"
        );
        assert!(err.contains("pat_…"), "{args:?}: {err}");
    }
    let out = env.run(&["token", "-u", "a", "-e", "\x1b]0;owned\x07\x1b[2J"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("\\u{1b}"), "{err}");
}

#[test]
fn runtime_errors_exit_1() {
    let env = Env::new();
    // Missing directory.
    let out = Command::new(env!("CARGO_BIN_EXE_pat-cli"))
        .args([
            "--db",
            "/nonexistent/dir/pat.redb",
            "token",
            "-u",
            "a",
            "-e",
            "1h",
        ])
        .output()
        .unwrap();
    fails(out, 1, &["/nonexistent/dir", "does not exist"]);
    // Unknown id.
    env.token(&["-u", "a", "-e", "1h"]);
    fails(
        env.run(&["token", "show", "00000000000000ff"]),
        1,
        &["no token with id 00000000000000ff"],
    );
    // Management commands do not create a store at a mistyped path.
    let other = env.dir.path().join("typo.redb");
    let out = Command::new(env!("CARGO_BIN_EXE_pat-cli"))
        .arg("--db")
        .arg(&other)
        .args(["token", "list"])
        .output()
        .unwrap();
    fails(out, 1, &["does not exist"]);
    assert!(!other.exists());
    // Corrupt store.
    let junk = env.dir.path().join("junk.redb");
    std::fs::write(&junk, b"definitely not a database").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pat-cli"))
        .arg("--db")
        .arg(&junk)
        .args(["token", "-u", "a", "-e", "1h"])
        .output()
        .unwrap();
    fails(out, 1, &["not a pat token store"]);
    assert_eq!(std::fs::read(&junk).unwrap(), b"definitely not a database");
}

#[test]
fn a_store_held_without_admin_socket_is_a_clear_error_and_loses_nothing() {
    let env = Env::new();
    let token = env.token(&["-u", "a", "-e", "1h"]);
    let held = Store::builder().admin_socket(false).open(env.db()).unwrap();
    let pid = format!("pid {}", std::process::id());
    for args in [&["token", "-u", "b", "-e", "1h"][..], &["token", "list"]] {
        fails(
            env.run(args),
            1,
            &[
                "in use by another process",
                &pid,
                "no admin socket answers",
                "stop that process",
            ],
        );
    }
    assert!(held.authenticate(&token, Timestamp::now()).is_ok());
    drop(held);
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_store_held_by_a_process_is_managed_through_its_socket() {
    let env = Env::new();
    let direct = env.token(&["-u", "a", "-e", "1h", "-l", "direct"]);
    let held = env.store();
    // Create through the socket: the holder accepts the token at once.
    let v = env.json(&[
        "token",
        "-u",
        "b",
        "-a",
        "10m",
        "-s",
        &format!("node:{NODE}:r"),
        "--json",
    ]);
    let remote = v["token"].as_str().unwrap();
    assert_eq!(
        held.authenticate(remote, Timestamp::now()).unwrap().user(),
        "b"
    );
    let quiet = env.ok(&["token", "-u", "c", "-e", "1h", "-q"]);
    assert_eq!(quiet.lines().count(), 1);
    // Listing and showing read the same as a direct open would.
    let through_socket = env.ok(&["token", "list", "--all"]);
    let id = v["id"].as_str().unwrap();
    fails(
        env.run(&["token", "show", "00000000000000ff"]),
        1,
        &["no token with id 00000000000000ff"],
    );
    // A bad request is refused before the socket is asked.
    fails(
        env.run(&["token", "-u", "a:b", "-e", "1h"]),
        2,
        &["--user", "`a:b`", "`:`"],
    );
    // Revoke through the socket: refused on the holder's next request.
    let direct_id = held
        .authenticate(&direct, Timestamp::now())
        .unwrap()
        .token_id();
    env.ok(&["token", "revoke", &direct_id.to_string()]);
    assert!(matches!(
        held.authenticate(&direct, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    assert_eq!(
        env.ok(&["token", "revoke", "--user", "c"]),
        "revoked 1 token of c\n"
    );
    assert_eq!(env.ok(&["token", "prune"]), "removed 0 expired tokens\n");
    // Check through the socket: found, and not counted as a use.
    let out = {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_pat-cli"))
            .arg("--db")
            .arg(env.db())
            .args(["token", "check"])
            .env_remove("PAT_DB")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(remote.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains(" of b, live until"), "{said}");
    // The policy through the socket. Refuse on reuse: the old secret is
    // presented below, which would otherwise revoke the token.
    env.ok(&[
        "policy",
        "set",
        "--max-tokens-per-user",
        "5",
        "--on-reuse",
        "refuse",
    ]);
    assert_eq!(held.policy().unwrap().max_tokens_per_user, Some(5));
    assert_eq!(held.policy().unwrap().on_reuse, pat_core::OnReuse::Refuse);
    assert_eq!(env.json(&["policy", "--json"])["max_tokens_per_user"], 5);
    // Rotate through the socket: the holder refuses the old secret at once.
    let rotated = env.json(&["token", "rotate", id, "--json"]);
    let new = rotated["token"].as_str().unwrap();
    assert!(matches!(
        held.authenticate(remote, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    assert_eq!(
        held.authenticate(new, Timestamp::now()).unwrap().user(),
        "b"
    );
    held.flush().unwrap();
    let listed = env.ok(&["token", "list", "--all"]);
    let shown = env.ok(&["token", "show", id, "--json"]);
    drop(held);
    // The same output once the file is free and opened directly.
    assert_eq!(env.ok(&["token", "list", "--all"]), listed);
    assert_eq!(env.ok(&["token", "show", id, "--json"]), shown);
    assert!(through_socket.contains("direct"));
}

#[test]
fn store_file_is_0600_and_holds_no_plaintext() {
    let env = Env::new();
    let mut tokens = Vec::new();
    for user in ["alice", "bob", "carol"] {
        tokens.push(env.token(&["-u", user, "-a", "10m"]));
    }
    for t in &tokens {
        env.store().authenticate(t, Timestamp::now()).unwrap();
    }
    let mode = std::fs::metadata(env.db()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(env.db()).unwrap();
    for t in &tokens {
        let body = &t.as_bytes()[4..];
        assert!(
            !bytes.windows(body.len()).any(|w| w == body),
            "plaintext in store"
        );
    }
}

#[test]
fn a_store_others_can_read_is_refused_with_the_fix() {
    // Issue 8: a store open to others was only warned about; it may have been
    // widened (or planted) by someone else, so it is refused, untouched.
    let env = Env::new();
    env.token(&["-u", "a", "-e", "1h"]);
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(env.db()).unwrap();
    for args in [
        &["token", "-u", "b", "-e", "1h", "-q"][..],
        &["token", "list"],
    ] {
        fails(env.run(args), 1, &["refusing", "mode is 0644", "chmod 600"]);
    }
    assert_eq!(std::fs::read(env.db()).unwrap(), before);
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(env.ok(&["token", "list"]).contains(" a "));
}

#[test]
fn a_linked_or_empty_store_is_refused() {
    let env = Env::new();
    env.token(&["-u", "a", "-e", "1h"]);
    let link = env.dir.path().join("link.redb");
    std::os::unix::fs::symlink(env.db(), &link).unwrap();
    let run = |db: &Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pat-cli"))
            .arg("--db")
            .arg(db)
            .args(args)
            .env_remove("PAT_DB")
            .output()
            .unwrap()
    };
    fails(
        run(&link, &["token", "list"]),
        1,
        &["refusing", "symbolic link"],
    );
    fails(
        run(&link, &["token", "-u", "b", "-e", "1h"]),
        1,
        &["symbolic link"],
    );
    let empty = env.dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o600)).unwrap();
    fails(
        run(&empty, &["token", "-u", "b", "-e", "1h"]),
        1,
        &["empty file", "truncated"],
    );
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

fn run_in(dir: &Path, envs: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pat-cli"));
    cmd.current_dir(dir).args(args).env_remove("PAT_DB");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn db_falls_back_to_pat_db_then_current_directory() {
    let env = Env::new();
    let from_env = env.dir.path().join("from-env.redb");
    let out = run_in(
        env.dir.path(),
        &[("PAT_DB", &from_env)],
        &["token", "-u", "a", "-e", "1h", "-q"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(from_env.exists());
    assert!(!env.dir.path().join("pat.redb").exists());

    let out = run_in(env.dir.path(), &[], &["token", "-u", "a", "-e", "1h", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.dir.path().join("pat.redb").exists());

    // --db wins over PAT_DB.
    let flag = env.dir.path().join("flag.redb");
    let out = run_in(
        env.dir.path(),
        &[("PAT_DB", &from_env)],
        &["--db", flag.to_str().unwrap(), "token", "list"],
    );
    fails(out, 1, &["flag.redb", "does not exist"]);
}

#[test]
fn completions_are_printed_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = env.ok(&["completions", shell]);
        assert!(out.contains("pat-cli"), "{shell}");
        assert!(out.contains("max-lifetime"), "{shell}");
    }
    assert!(!env.db().exists());
}

#[test]
fn help_mentions_both_expiry_models() {
    let env = Env::new();
    let help = env.ok(&["token", "--help"]);
    for needle in [
        "--expire",
        "--auto",
        "--scope",
        "--quiet",
        "node:NODE_UUID:PERM",
    ] {
        assert!(help.contains(needle), "{needle}");
    }
}

#[test]
fn the_policy_sets_the_grace_and_what_a_replayed_secret_does() {
    let env = Env::new();
    env.token(&["-u", "alice", "-e", "30d"]);
    let out = env.ok(&["policy", "set", "--max-grace", "1h", "--on-reuse", "refuse"]);
    assert_eq!(
        out,
        "max lifetime:         none\nmax tokens per user:  none\n\
         max grace:            1h\non reuse:             refuse\n"
    );
    let v = env.json(&["policy", "--json"]);
    assert_eq!(v["max_grace_seconds"], 3600);
    assert_eq!(v["on_reuse"], "refuse");
    // The limits not given stay as they are.
    env.ok(&["policy", "set", "--max-tokens-per-user", "5"]);
    let v = env.json(&["policy", "--json"]);
    assert_eq!(
        (v["max_grace_seconds"].as_u64(), v["on_reuse"].as_str()),
        (Some(3600), Some("refuse"))
    );
    let out = env.ok(&[
        "policy",
        "set",
        "--max-grace",
        "default",
        "--on-reuse",
        "revoke",
    ]);
    assert!(
        out.contains("max grace:            1d (default)\non reuse:             revoke\n"),
        "{out}"
    );
    // Bad values name the flag and what it accepts, exit 2 and change nothing.
    fails(
        env.run(&["policy", "set", "--on-reuse", "ignore"]),
        2,
        &["--on-reuse", "`ignore`", "revoke", "refuse"],
    );
    fails(
        env.run(&["policy", "set", "--max-grace", "forever"]),
        2,
        &["--max-grace", "forever"],
    );
    assert_eq!(env.json(&["policy", "--json"])["on_reuse"], "revoke");
}

#[test]
fn a_replayed_old_secret_revokes_its_token_by_default() {
    let env = Env::new();
    let old = env.token(&["-u", "alice", "-e", "1h"]);
    let id = env
        .store()
        .authenticate(&old, Timestamp::now())
        .unwrap()
        .token_id()
        .to_string();
    let new = env.json(&["token", "rotate", &id, "--json"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = env.store();
    assert!(matches!(
        store.authenticate(&old, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    // Refused at once, in memory; revoked by the flush.
    assert!(matches!(
        store.authenticate(&new, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    store.flush().unwrap();
    drop(store);
    fails(
        env.run(&["token", "show", &id]),
        1,
        &[&format!("no token with id {id}")],
    );
    let log = env.ok(&["audit", "-u", "alice"]);
    assert!(log.contains("replayed_secret"), "{log}");
    assert!(log.contains("reuse detection"), "{log}");
}

/// Issue 24: `scopes define|list|remove` keep the catalog, `-s` takes its
/// names (and refuses others as usage errors with close matches), and a
/// removal is refused while live tokens carry the name, unless forced.
#[test]
fn the_catalog_is_managed_and_tokens_carry_its_names() {
    let env = Env::new();
    assert_eq!(
        env.ok(&["scopes", "define", "read_api", "-d", "Read the API"]),
        "defined `read_api`\n"
    );
    env.ok(&["scopes", "define", "api", "--implies", "read_api"]);
    env.ok(&["scopes", "define", "repo:read"]);
    assert_eq!(
        env.ok(&["scopes", "define", "repo:read"]),
        "unchanged: `repo:read`\n"
    );
    let listed = env.json(&["scopes", "list", "--json"]);
    assert_eq!(
        listed,
        serde_json::json!([
            {"name": "api", "description": "", "implies": ["read_api"]},
            {"name": "read_api", "description": "Read the API", "implies": []},
            {"name": "repo:read", "description": "", "implies": []},
        ])
    );
    let human = env.ok(&["scopes"]);
    assert!(human.starts_with("PERMISSION"), "{human}");
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines[1], "api         read_api", "{human}");
    assert_eq!(lines[2], "read_api    -         Read the API", "{human}");

    // Tokens carry names and node scopes together.
    let v = env.json(&[
        "token",
        "-u",
        "alice",
        "-e",
        "1h",
        "-s",
        "api",
        "-s",
        &format!("node:{NODE}:r"),
        "--json",
    ]);
    assert_eq!(
        v["scopes"],
        serde_json::json!([format!("node:{NODE}:r"), "api"])
    );
    let secret = v["token"].as_str().unwrap().to_owned();
    let shown = env.ok(&["token", "show", v["id"].as_str().unwrap()]);
    assert!(
        shown.contains(&format!("Scopes: node:{NODE}:r,api.")),
        "{shown}"
    );
    let who = env.store().authenticate(&secret, Timestamp::now()).unwrap();
    assert!(who.has_scope("read_api") && !who.has_scope("repo:read"));

    // An unknown name: a usage error naming it and what is close, nothing made.
    let before = env
        .json(&["token", "list", "--json"])
        .as_array()
        .unwrap()
        .len();
    fails(
        env.run(&["token", "-u", "alice", "-e", "1h", "-s", "repo:raed"]),
        2,
        &["--scope", "`repo:raed`", "did you mean `repo:read`"],
    );
    fails(
        env.run(&["token", "-u", "alice", "-e", "1h", "-s", "org:*"]),
        2,
        &["--scope", "`org:*` stands for no permission"],
    );
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        before
    );

    // Definitions the catalog refuses, saying why; nothing changes.
    fails(
        env.run(&["scopes", "define", "read_api", "--implies", "api"]),
        1,
        &["cycle", "api → read_api → api"],
    );
    fails(
        env.run(&["scopes", "define", "x", "--implies", "nope"]),
        1,
        &["no permission `nope`"],
    );
    fails(
        env.run(&["scopes", "define", "Bad"]),
        2,
        &["`Bad` is not a permission"],
    );
    // Nothing a terminal acts on, nor anything that hides or reorders what
    // is around it, reaches the catalog; the message does not repeat it.
    for hostile in ["\x1b[2Jgone", "evil\u{202e}txt", "a\u{200b}b"] {
        let out = env.run(&["scopes", "define", "y", "-d", hostile]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{hostile:?}: {err}");
        assert!(err.contains("its description has"), "{err}");
        assert!(!err.contains(hostile), "{err}");
    }
    assert!(!env.ok(&["scopes"]).contains("\ny "));

    // Removal: implied, in use, then by force.
    fails(
        env.run(&["scopes", "remove", "read_api"]),
        1,
        &["`read_api` is implied by `api`"],
    );
    fails(
        env.run(&["scopes", "remove", "api"]),
        1,
        &["1 live token carries `api`", "--force"],
    );
    let only = env.token(&["-u", "bob", "-e", "1h", "-s", "api"]);
    assert_eq!(
        env.ok(&["scopes", "remove", "api", "--force"]),
        "removed `api`; 1 token lost it; 1 token revoked (no scope left, or made with one that \
         had none)\n"
    );
    let store = env.store();
    assert!(matches!(
        store.authenticate(&only, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    let who = store.authenticate(&secret, Timestamp::now()).unwrap();
    assert!(!who.has_scope("api") && who.permits([&NODE.parse().unwrap()], Perm::READ));
    drop(store);
    let audit = env.ok(&["audit"]);
    for action in ["define_permission", "remove_permission", "lose_permission"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
}

/// The catalog through a running store's admin socket: defined there, the
/// service's tokens hold the new names on its very next request.
#[test]
fn the_catalog_is_changed_through_the_socket_of_a_running_store() {
    let env = Env::new();
    env.ok(&["scopes", "define", "repo:read"]);
    let wild = env.token(&["-u", "alice", "-e", "1h", "-s", "repo:*"]);
    let held = env.store();
    let who = held.authenticate(&wild, Timestamp::now()).unwrap();
    assert!(who.has_scope("repo:read") && !who.has_scope("repo:admin"));
    env.ok(&[
        "scopes",
        "define",
        "repo:admin",
        "-d",
        "Administer repositories",
    ]);
    let who = held.authenticate(&wild, Timestamp::now()).unwrap();
    assert!(
        who.has_scope("repo:admin"),
        "the cached record was resolved again"
    );
    let listed = env.json(&["scopes", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let made = env.token(&["-u", "bob", "-e", "1h", "-s", "repo:admin"]);
    assert!(
        held.authenticate(&made, Timestamp::now())
            .unwrap()
            .has_scope("repo:admin")
    );
    fails(
        env.run(&["token", "-u", "bob", "-e", "1h", "-s", "repo:amdin"]),
        2,
        &["did you mean `repo:admin`"],
    );
    fails(
        env.run(&["scopes", "remove", "repo:admin"]),
        1,
        &["1 live token carries `repo:admin`"],
    );
    env.ok(&["scopes", "remove", "repo:admin", "--force"]);
    assert!(matches!(
        held.authenticate(&made, Timestamp::now()),
        Err(AuthError::Unknown)
    ));
    assert!(
        !held
            .authenticate(&wild, Timestamp::now())
            .unwrap()
            .has_scope("repo:admin")
    );
}

#[test]
fn disable_and_enable_on_the_file_refuse_and_give_back() {
    let env = Env::new();
    let token = env.token(&["-u", "alice", "-e", "1h"]);
    let id = env.json(&["token", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.ok(&["token", "disable", &id]),
        format!("disabled {id}\n")
    );
    let shown = env.json(&["token", "show", &id, "--json"]);
    assert_eq!(shown["disabled"], true);
    assert_eq!(shown["disabled_by"], id.as_str());
    assert!(env.ok(&["token", "list"]).contains("hard, disabled"));
    assert!(matches!(
        env.store().authenticate(&token, Timestamp::now()),
        Err(AuthError::Disabled)
    ));
    assert_eq!(env.ok(&["token", "enable", &id]), format!("enabled {id}\n"));
    assert_eq!(
        env.json(&["token", "show", &id, "--json"])["disabled"],
        false
    );
    // Without an id it is a usage error; an id that is no token, a failure.
    fails(env.run(&["token", "disable"]), 2, &["<IDS>"]);
    fails(env.run(&["token", "enable", "nope"]), 2, &["nope"]);
    fails(
        env.run(&["token", "enable", "00000000000000ff"]),
        1,
        &["no token with id 00000000000000ff"],
    );
}

#[test]
fn rate_is_kept_shown_and_checked() {
    let env = Env::new();
    let token = env.token(&["-u", "alice", "-e", "1h", "--rate", "100/m"]);
    let id = env.json(&["token", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(env.json(&["token", "show", &id, "--json"])["rate"], "100/m");
    assert!(
        env.ok(&["token", "show", &id])
            .contains("rate:       at most 100/m\n")
    );
    assert!(env.ok(&["token", "list"]).contains(", at most 100/m"));
    let identity = env.store().authenticate(&token, Timestamp::now()).unwrap();
    assert_eq!(
        identity.rate().map(|r| r.to_string()).as_deref(),
        Some("100/m")
    );
    for (arg, says) in [
        ("100", "no `/`"),
        ("100/d", "not s, m or h"),
        ("0/s", "refuse every use"),
        ("x/s", "not a number"),
        ("2000000/s", "at most"),
    ] {
        fails(
            env.run(&["token", "-u", "bob", "-e", "1h", "--rate", arg]),
            2,
            &["--rate", says],
        );
    }
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn max_uses_is_kept_spent_shown_and_checked() {
    let env = Env::new();
    let token = env.token(&["-u", "alice", "-e", "1h", "--max-uses", "2"]);
    let id = env.json(&["token", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = env.json(&["token", "show", &id, "--json"]);
    assert_eq!(
        (shown["max_uses"].as_u64(), shown["uses"].as_u64()),
        (Some(2), Some(0))
    );
    assert!(
        env.ok(&["token", "show", &id])
            .contains("uses:       0 of 2\n")
    );
    let store = env.store();
    let first = store.authenticate(&token, Timestamp::now()).unwrap();
    assert_eq!(first.uses_left(), Some(1));
    store.authenticate(&token, Timestamp::now()).unwrap();
    assert!(matches!(
        store.authenticate(&token, Timestamp::now()),
        Err(AuthError::UsedUp)
    ));
    drop(store);
    // The uses were written: a fresh process reads them back.
    assert!(
        env.ok(&["token", "show", &id])
            .contains("uses:       2 of 2\n")
    );
    assert!(env.ok(&["token", "list"]).contains(", 2 of 2 uses"));
    assert_eq!(env.json(&["token", "show", &id, "--json"])["uses"], 2);
    // A token without a quota says nothing of uses.
    env.token(&["-u", "carol", "-e", "1h"]);
    let all = env.json(&["token", "list", "--json"]);
    let carol = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["user"] == "carol")
        .unwrap();
    assert_eq!(
        (carol["max_uses"].is_null(), carol["uses"].as_u64()),
        (true, Some(0))
    );
    for (arg, says) in [
        ("0", "give 1 to 1000000000 uses"),
        ("1000000001", "give 1 to 1000000000 uses"),
        ("99999999999999999999", "is not a use count"),
        ("-1", "is not a use count"),
        ("one", "is not a use count"),
        ("", "is not a use count"),
    ] {
        fails(
            env.run(&["token", "-u", "bob", "-e", "1h", "--max-uses", arg]),
            2,
            &["--max-uses", says],
        );
    }
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn allow_from_is_kept_shown_and_checked() {
    let env = Env::new();
    let token = env.token(&[
        "-u",
        "alice",
        "-e",
        "1h",
        "--allow-from",
        "10.0.0.0/8,2001:db8::/32",
        "--allow-from",
        "192.0.2.7",
    ]);
    let id = env.json(&["token", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.json(&["token", "show", &id, "--json"])["allow_from"],
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"])
    );
    assert!(
        env.ok(&["token", "show", &id])
            .contains("from:       10.0.0.0/8, 2001:db8::/32, 192.0.2.7/32\n")
    );
    assert!(env.ok(&["token", "list"]).contains(", from 10.0.0.0/8"));
    let record = env.store().get(id.parse().unwrap()).unwrap();
    assert!(record.allows_from("10.9.8.7".parse().unwrap()));
    assert!(!record.allows_from("192.0.2.8".parse().unwrap()));
    // Used from nowhere known, as the offline check does: refused.
    assert!(matches!(
        env.store().authenticate(&token, Timestamp::now()),
        Err(pat_core::AuthError::AddressNotAllowed)
    ));
    // Each mistake is a usage error naming the flag and the value, and no
    // token is made.
    for (arg, says) in [
        ("10.0.0.0/33", "too long"),
        ("10.0.0.0/x", "not a number"),
        ("example.com", "not an IP address"),
        ("", "not an IP address"),
    ] {
        fails(
            env.run(&["token", "-u", "bob", "-e", "1h", "--allow-from", arg]),
            2,
            &["--allow-from", says],
        );
    }
    let many: Vec<String> = (0..17).map(|i| format!("10.0.0.{i}")).collect();
    fails(
        env.run(&[
            "token",
            "-u",
            "bob",
            "-e",
            "1h",
            "--allow-from",
            &many.join(","),
        ]),
        2,
        &["--allow-from", "at most 16"],
    );
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn meta_is_kept_shown_and_checked() {
    let env = Env::new();
    let token = env.token(&[
        "-u",
        "alice",
        "-e",
        "1h",
        "--meta",
        "team=payments",
        "--meta",
        "ticket=OPS-12",
    ]);
    let id = env.json(&["token", "list", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.json(&["token", "show", &id, "--json"])["meta"],
        serde_json::json!({"team": "payments", "ticket": "OPS-12"})
    );
    assert!(
        env.ok(&["token", "show", &id])
            .contains("metadata:   team=payments ticket=OPS-12\n")
    );
    let identity = env.store().authenticate(&token, Timestamp::now()).unwrap();
    assert_eq!(identity.meta().get("ticket"), Some("OPS-12"));
    // Each mistake is a usage error naming the flag and what is wrong, and
    // no token is made.
    for (args, says) in [
        (&["--meta", "nokey"][..], "key=value"),
        (&["--meta", "bad key=x"], "a character that is not allowed"),
        (&["--meta", "=x"], "empty"),
        (&["--meta", "a=1", "--meta", "a=2"], "given twice"),
        (&["--meta", "a=\u{1b}[31mred"], "control"),
    ] {
        let mut all = vec!["token", "-u", "bob", "-e", "1h"];
        all.extend_from_slice(args);
        fails(env.run(&all), 2, &["--meta", says]);
    }
    let many: Vec<String> = (0..17).map(|i| format!("k{i}=v")).collect();
    let mut all = vec!["token", "-u", "bob", "-e", "1h"];
    for m in &many {
        all.extend_from_slice(&["--meta", m]);
    }
    fails(env.run(&all), 2, &["--meta", "at most 16"]);
    assert_eq!(
        env.json(&["token", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `--json` output escapes what a terminal would act on or hide (C1
/// controls, bidi and zero-width characters), which JSON leaves raw: an
/// actor's name the API recorded reaches `audit --json` and `events
/// --json` as `\u` escapes of the same characters.
#[test]
fn json_output_escapes_what_a_terminal_acts_on() {
    let env = Env::new();
    let hostile = "ops\u{9b}2J\u{202e}gnp.exe\u{200b}";
    {
        let store = env.store();
        store
            .acting_as(hostile)
            .create(
                &pat_core::NewToken::new(
                    "alice",
                    pat_core::ExpiryPolicy::hard(std::time::Duration::from_secs(3600)),
                ),
                Timestamp::now(),
            )
            .unwrap();
    }
    for args in [&["audit", "--json"][..], &["events", "--json"]] {
        let raw = env.ok(args);
        assert!(
            !raw.contains('\u{9b}') && !raw.contains('\u{202e}') && !raw.contains('\u{200b}'),
            "{args:?}: {raw:?}"
        );
        assert!(
            raw.contains(r"\u009b2J\u202egnp.exe\u200b"),
            "{args:?}: {raw}"
        );
        let parsed: Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(parsed[0]["actor"], hostile, "{args:?}: the same value");
    }
}
