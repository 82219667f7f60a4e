//! Issue 29: the README's Rust snippets compile as a new integrator writes
//! them, in a crate whose only pat dependency is the one the snippet names
//! (pat-tower, pat-actix, or pat-core for the library sections), beside
//! the framework it uses. A path that works only with pat-core next to
//! the adapter fails here. (The tests crate also runs them as doctests,
//! with every crate of the workspace at hand.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fenced Rust block of the README: its first line number, its info
/// string (`rust,no_run`) and its text.
struct Snippet {
    line: usize,
    info: String,
    code: String,
}

fn snippets(readme: &str) -> Vec<Snippet> {
    let mut out = Vec::new();
    let mut open: Option<Snippet> = None;
    for (i, line) in readme.lines().enumerate() {
        if let Some(snippet) = &mut open {
            if line == "```" {
                out.extend(open.take());
            } else {
                snippet.code.push_str(line);
                snippet.code.push('\n');
            }
        } else if let Some(info) = line.strip_prefix("```rust") {
            open = Some(Snippet {
                line: i + 1,
                info: format!("rust{info}"),
                code: String::new(),
            });
        }
    }
    out
}

/// The one pat crate `code` uses at top level (`pat_tower::pat_core::…`
/// counts as pat-tower); an error naming them when there are several.
fn pat_crate(code: &str) -> Result<&'static str, Vec<&'static str>> {
    // Comments may name the other adapter ("or pat_actix::PgStore").
    let code: String = code
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let code = code.as_str();
    let mut used = Vec::new();
    for (name, krate) in [
        ("pat_tower", "pat-tower"),
        ("pat_actix", "pat-actix"),
        ("pat_core", "pat-core"),
    ] {
        let top_level = code.match_indices(name).any(|(at, _)| {
            let before = &code[..at];
            let after = &code[at + name.len()..];
            !before.ends_with("::")
                && !before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
                && !after.starts_with(|c: char| c.is_alphanumeric() || c == '_')
        });
        if top_level {
            used.push(krate);
        }
    }
    match used.as_slice() {
        [one] => Ok(one),
        _ => Err(used),
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/`, shared with the workspace's build (the outer `cargo test`
/// holds no lock while tests run).
fn target_root() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test>
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// A crate depending on `krate` (with the features the README's sections
/// use) and the frameworks, whose docs are `snippets`; `cargo test --doc`.
fn check(krate: &str, snippets: &[&Snippet]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let root = workspace();
    let features = match krate {
        "pat-tower" => r#", features = ["postgres", "remote"]"#,
        "pat-actix" => r#", features = ["postgres", "remote"]"#,
        _ => "",
    };
    let manifest = format!(
        r#"[package]
name = "readme-{krate}"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
{krate} = {{ path = "{path}"{features} }}
actix-web = "4"
axum = "0.8"
tokio = {{ version = "1", features = ["full"] }}

[dev-dependencies]
tempfile = "3"
"#,
        path = root.join(krate).display(),
    );
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    // The workspace's versions, so nothing new is resolved.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let mut docs = String::new();
    for s in snippets {
        docs.push_str(&format!(
            "README.md line {}:\n\n```{}\n{}```\n\n",
            s.line, s.info, s.code
        ));
    }
    std::fs::write(dir.path().join("SNIPPETS.md"), docs).unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "#![doc = include_str!(\"../SNIPPETS.md\")]\n",
    )
    .unwrap();
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--doc", "--quiet", "--manifest-path"])
        .arg(dir.path().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_root())
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{krate}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_readme_snippet_builds_with_its_one_pat_dependency() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let all = snippets(&readme);
    assert!(all.len() >= 5, "found {} snippets", all.len());
    let mut groups: Vec<(&str, Vec<&Snippet>)> = Vec::new();
    for s in &all {
        let krate = pat_crate(&s.code).unwrap_or_else(|used| {
            panic!(
                "README.md line {}: a snippet should use one pat crate, not {used:?}",
                s.line
            )
        });
        match groups.iter_mut().find(|(k, _)| *k == krate) {
            Some((_, list)) => list.push(s),
            None => groups.push((krate, vec![s])),
        }
    }
    let failures: Vec<String> = groups
        .iter()
        .filter_map(|(krate, list)| check(krate, list).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_snippet_names_its_one_pat_crate() {
    assert_eq!(pat_crate("use pat_tower::pat_core::Gate;"), Ok("pat-tower"));
    assert_eq!(pat_crate("use pat_core::Store;"), Ok("pat-core"));
    assert_eq!(
        pat_crate("let s = pat_tower::PgStore::connect(u)?; // or pat_actix::PgStore"),
        Ok("pat-tower")
    );
    assert_eq!(
        pat_crate("use pat_core::Lookup;\nlet _ = pat_tower::PatLayer::new(s);"),
        Err(vec!["pat-tower", "pat-core"])
    );
}
