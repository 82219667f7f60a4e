//! Rules for secret scanners (issue 25): `pat-cli scan-rules`, run for
//! real, and what it prints used the way each scanner uses it, on the same
//! planted files: a live token of ours, the same token with a broken
//! checksum, a well-formed token of another prefix, and a token followed
//! by more letters (a longer run is no token).
//!
//! detect-secrets (Yelp's, from PyPI) runs for real; `.ci/run` installs it
//! and under `CI=true` this test fails without it. gitleaks is a Go binary
//! this machine does not have: its rule is checked against the schema
//! gitleaks documents (the keys and types of its `ViperConfig`) and its
//! regex run on the files, as gitleaks would (keywords first, then the
//! regex, the secret in `secretGroup`).

use std::process::Command;

use pat_integration_tests::{Workdir, pat_cli, required};

/// The files scanned, and what is in them.
struct Planted {
    dir: tempfile::TempDir,
    /// A live token, on line 2 of `live.env`.
    live: String,
    /// The live token with its last checksum character changed.
    broken: String,
}

const FILES: [&str; 4] = ["live.env", "broken.env", "other.env", "longer.env"];

fn plant(work: &Workdir) -> Planted {
    let live = work.token(&["-u", "alice", "-e", "1d"]);
    let last = live.chars().last().expect("a token");
    let broken = format!(
        "{}{}",
        &live[..live.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    // A token of another prefix, checksum and all, as another service
    // built on pat would issue it.
    let body = &live[4..live.len() - 6];
    let head = format!("acme_{body}");
    let other = format!("{head}{}", checksum(&head));
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write("live.env", format!("# settings\nPAT_TOKEN={live}\n"));
    write("broken.env", format!("PAT_TOKEN=\"{broken}\"\n"));
    write("other.env", format!("ACME_TOKEN={other}\n"));
    write("longer.env", format!("ID={live}x\n"));
    Planted { dir, live, broken }
}

/// The token checksum (CRC32 as 6 base62 digits), written here again from
/// the format's description so that the test does not take pat's word.
fn checksum(head_and_body: &str) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = crc32fast::hash(head_and_body.as_bytes());
    let mut digits = [0u8; 6];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits.to_vec()).unwrap()
}

/// `pat-cli scan-rules --format FORMAT`, run with a store path that does
/// not exist (the command needs none, and must create none).
fn scan_rules(format: &str) -> String {
    let missing = tempfile::tempdir().unwrap();
    let db = missing.path().join("none.redb");
    let out = Command::new(pat_cli())
        .args(["--db"])
        .arg(&db)
        .args(["scan-rules", "--format", format])
        .output()
        .expect("pat-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!db.exists(), "scan-rules created a store");
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn have_detect_secrets() -> bool {
    let found = Command::new("python3")
        .args(["-m", "detect_secrets", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    required(
        "detect-secrets (python3 -m pip install detect-secrets)",
        found,
    )
}

#[test]
fn detect_secrets_with_the_plugin_reports_only_the_live_token_of_ours() {
    if !have_detect_secrets() {
        return;
    }
    let work = Workdir::new();
    let planted = plant(&work);
    let plugin = planted.dir.path().join("pat_tokens.py");
    std::fs::write(&plugin, scan_rules("detect-secrets")).unwrap();
    let out = Command::new("python3")
        .args(["-m", "detect_secrets", "scan", "--plugin"])
        .arg(&plugin)
        .args(FILES)
        .current_dir(planted.dir.path())
        .output()
        .expect("detect-secrets");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let baseline: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        baseline["plugins_used"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "PatTokenDetector"),
        "the plugin was not loaded: {baseline}"
    );
    let ours: Vec<(String, u64)> = baseline["results"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|found| found.as_array().unwrap())
        .filter(|found| found["type"] == "Personal access token (pat)")
        .map(|found| {
            (
                found["filename"].as_str().unwrap().to_owned(),
                found["line_number"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, [("live.env".to_owned(), 2)], "{baseline}");
}

/// The keys gitleaks reads (its `ViperConfig`, config/config.go, and the
/// README's configuration section), with the TOML type of each.
fn check_gitleaks_table(table: &toml_edit::Table, keys: &[(&str, &str)], at: &str) {
    for (key, item) in table.iter() {
        let Some((_, kind)) = keys.iter().find(|(k, _)| *k == key) else {
            panic!("{at}.{key} is not a key gitleaks reads");
        };
        let ok = match *kind {
            "string" => item.as_str().is_some(),
            "bool" => item.as_bool().is_some(),
            "integer" => item.as_integer().is_some(),
            "float" => item.as_float().is_some(),
            "strings" => item
                .as_array()
                .is_some_and(|a| a.iter().all(|v| v.as_str().is_some())),
            "table" => item.is_table(),
            "tables" => item.is_array_of_tables(),
            _ => unreachable!(),
        };
        assert!(ok, "{at}.{key} is not a {kind}");
    }
}

#[test]
fn the_gitleaks_rule_follows_gitleaks_schema_and_finds_tokens_by_shape() {
    let work = Workdir::new();
    let planted = plant(&work);
    let config = scan_rules("gitleaks");
    let doc = toml_edit::Document::parse(config.as_str()).expect("TOML");
    let top = doc.as_table();
    check_gitleaks_table(
        top,
        &[
            ("title", "string"),
            ("description", "string"),
            ("minVersion", "string"),
            ("extend", "table"),
            ("rules", "tables"),
            ("allowlist", "table"),
            ("allowlists", "tables"),
        ],
        "",
    );
    let extend = top["extend"].as_table().expect("[extend]");
    check_gitleaks_table(
        extend,
        &[
            ("useDefault", "bool"),
            ("path", "string"),
            ("disabledRules", "strings"),
        ],
        "extend",
    );
    assert_eq!(
        extend["useDefault"].as_bool(),
        Some(true),
        "gitleaks' own rules kept"
    );
    let rules = top["rules"].as_array_of_tables().expect("[[rules]]");
    assert_eq!(rules.len(), 1);
    let rule = rules.get(0).unwrap();
    check_gitleaks_table(
        rule,
        &[
            ("id", "string"),
            ("description", "string"),
            ("path", "string"),
            ("regex", "string"),
            ("secretGroup", "integer"),
            ("entropy", "float"),
            ("keywords", "strings"),
            ("tags", "strings"),
            ("allowlist", "table"),
            ("allowlists", "tables"),
            ("required", "tables"),
            ("skipReport", "bool"),
        ],
        "rules",
    );
    assert!(!rule["id"].as_str().unwrap().is_empty());
    let re = regex_lite::Regex::new(rule["regex"].as_str().unwrap()).expect("the regex");
    let group = rule["secretGroup"].as_integer().unwrap() as usize;
    let keywords: Vec<&str> = rule["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let found = |name: &str| -> Vec<String> {
        let text = std::fs::read_to_string(planted.dir.path().join(name)).unwrap();
        // gitleaks runs a rule's regex only on text holding a keyword,
        // compared lowercased.
        if !keywords.iter().any(|k| text.to_lowercase().contains(k)) {
            return Vec::new();
        }
        re.captures_iter(&text)
            .map(|c| c.get(group).unwrap().as_str().to_owned())
            .collect()
    };
    assert_eq!(found("live.env"), std::slice::from_ref(&planted.live));
    // By shape only: gitleaks cannot check the checksum (the rule says so).
    assert_eq!(found("broken.env"), std::slice::from_ref(&planted.broken));
    assert!(config.contains("broken checksum"), "{config}");
    assert!(found("other.env").is_empty());
    assert!(found("longer.env").is_empty());
}

#[test]
fn the_regex_is_one_line_with_the_token_in_group_one() {
    let work = Workdir::new();
    let planted = plant(&work);
    let out = scan_rules("regex");
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let re = regex_lite::Regex::new(out.trim_end()).expect("the regex");
    let read = |name: &str| std::fs::read_to_string(planted.dir.path().join(name)).unwrap();
    let live = read("live.env");
    assert_eq!(&re.captures(&live).unwrap()[1], planted.live);
    assert!(!re.is_match(&read("other.env")));
    assert!(!re.is_match(&read("longer.env")));
    // The default format.
    let default = Command::new(pat_cli()).arg("scan-rules").output().unwrap();
    assert_eq!(String::from_utf8(default.stdout).unwrap(), out);
}

#[test]
fn an_unknown_format_is_a_usage_error_listing_the_formats() {
    let out = Command::new(pat_cli())
        .args(["scan-rules", "--format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    for part in ["--format", "'yaml'", "regex", "gitleaks", "detect-secrets"] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
}

/// The rules of a store with its own prefixes, read from the store: the
/// real detect-secrets reports the tokens of its current and former
/// prefixes, and neither a well-formed token of the default `pat` (another
/// service's) nor one of its own with a broken checksum.
#[test]
fn detect_secrets_with_a_stores_rules_reports_its_current_and_former_prefixes() {
    if !have_detect_secrets() {
        return;
    }
    let work = Workdir::new();
    work.cli_ok(&["init", "--prefix", "acme"]);
    let acme = work.token(&["-u", "alice", "-e", "1d"]);
    work.cli_ok(&["prefix", "set", "beta"]);
    let beta = work.token(&["-u", "bob", "-e", "1d"]);
    assert!(acme.starts_with("acme_") && beta.starts_with("beta_"));
    let last = beta.chars().last().unwrap();
    let broken = format!(
        "{}{}",
        &beta[..beta.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let other = pat_core::TokenSecret::generate();
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("acme.env", acme.clone()),
        ("beta.env", beta.clone()),
        ("broken.env", broken),
        ("pat.env", other.expose_secret().to_owned()),
    ];
    for (name, token) in &files {
        std::fs::write(dir.path().join(name), format!("TOKEN={token}\n")).unwrap();
    }
    let plugin = dir.path().join("store_tokens.py");
    std::fs::write(
        &plugin,
        work.cli_ok(&["scan-rules", "--format", "detect-secrets"]),
    )
    .unwrap();
    let out = Command::new("python3")
        .args(["-m", "detect_secrets", "scan", "--plugin"])
        .arg(&plugin)
        .args(files.map(|(name, _)| name))
        .current_dir(dir.path())
        .output()
        .expect("detect-secrets");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let baseline: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut found: Vec<String> = baseline["results"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|found| found.as_array().unwrap())
        .filter(|found| {
            found["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("Personal access token"))
        })
        .map(|found| found["filename"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    assert_eq!(found, ["acme.env", "beta.env"], "{baseline}");
    // The regex names both, current first.
    assert_eq!(
        work.cli_ok(&["scan-rules"]),
        "((?:beta|acme)_[0-9A-Za-z]{38})(?:[^0-9A-Za-z]|$)\n"
    );
}
