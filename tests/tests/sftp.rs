//! The reference servers' SFTP share (issue 23), driven by real clients:
//! OpenSSH's `sftp` in batch mode (the token given by `sshpass`) and
//! rclone's sftp backend. A login is a user name and a token; scopes apply
//! as on WebDAV, on the same node ids; links are neither listed nor
//! followed; a token revoked during a session is refused at its next
//! request; failed logins are limited per connection and per address; the
//! host key is refused when another user could read or plant it.
//!
//! `sftp`, `sshpass` and `rclone` come from the system packages (`.ci/run`
//! installs them); without them these tests say so and pass, except under
//! `CI=true`, where they fail.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[path = "sftp/limits.rs"]
mod limits;

use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp};
use pat_integration_tests::sftp::{
    batch_args, have, have_openssh, run_sftp, sftp, sftp_as, ssh_options,
};
use pat_integration_tests::{Server, ServerKind, Workdir, basic, client, make_share_tree};
use reqwest::Method;
use serde_json::Value;

struct Share {
    work: Workdir,
    root: PathBuf,
    admin: String,
}

impl Share {
    fn new() -> Share {
        let work = Workdir::new();
        let root = work.path().join("share");
        make_share_tree(&root);
        let admin = work.token(&["-u", "alice", "-e", "1h"]);
        Share { work, root, admin }
    }

    fn args(&self) -> [&str; 4] {
        [
            "--dav-root",
            self.root.to_str().unwrap(),
            "--sftp-addr",
            "127.0.0.1:0",
        ]
    }

    fn start(&self, kind: ServerKind) -> Server {
        Server::start(kind, &self.work.db(), &self.args())
    }

    fn token(&self, args: &[&str]) -> String {
        self.work.token(args)
    }

    /// A local file of `text` in the work directory.
    fn local(&self, name: &str, text: &str) -> PathBuf {
        let path = self.work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The node id of `path`, asked of `/nodes/by-path` with an unscoped token.
fn node(server: &Server, token: &str, path: &str) -> String {
    let res = client()
        .get(server.url(&format!("/nodes/by-path?path={path}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    let v: Value = serde_json::from_str(&res.text().unwrap()).unwrap();
    v["node"].as_str().unwrap().to_owned()
}

#[test]
fn an_unscoped_token_lists_reads_writes_renames_and_removes() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    let up = share.local("up.txt", "uploaded");
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let got = share.work.path().join(format!("got-{kind:?}.txt"));
        let run = sftp(
            &server,
            &share.admin,
            &format!(
                "ls -1 /projects\n\
                 get /projects/a/readme.txt {got}\n\
                 mkdir /new\n\
                 put {up} /new/up.txt\n\
                 rename /new/up.txt /new/renamed.txt\n\
                 ls -1 /new\n\
                 cd /projects/../new\n\
                 pwd\n\
                 rm renamed.txt\n\
                 rmdir /new\n\
                 ls -1 /\n",
                got = got.display(),
                up = up.display()
            ),
        );
        assert!(run.ok, "{kind:?}: {}\n{}", run.out, run.err);
        assert!(
            run.out.contains("\n/projects/a\n/projects/b\n"),
            "{kind:?}: {}",
            run.out
        );
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "read me");
        assert!(run.out.contains("renamed.txt"), "{}", run.out);
        assert!(
            run.out.contains("Remote working directory: /new"),
            "{}",
            run.out
        );
        assert!(!share.root.join("new").exists(), "removed");
        // `..` never leaves the share: the root's parent is the root.
        let run = sftp(&server, &share.admin, "ls -1 /../../..\n");
        assert!(
            run.out.contains("other.txt") && !run.out.contains("share"),
            "{}",
            run.out
        );
        assert!(server.stop());
    }
}

#[test]
fn refused_logins_look_alike_to_the_client_and_the_log_says_which() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    // Made before the server holds the store.
    let expired = {
        let store = Store::open(share.work.db()).unwrap();
        let two_hours_ago =
            Timestamp::from_unix_secs(Timestamp::now().as_unix_secs() - 7200).unwrap();
        let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)));
        let created = store.create(&new, two_hours_ago).unwrap();
        created.secret.expose_secret().to_owned()
    };
    let revoked: Value = serde_json::from_str(
        &share
            .work
            .cli_ok(&["token", "-u", "alice", "-e", "1h", "--json"]),
    )
    .unwrap();
    share
        .work
        .cli_ok(&["token", "revoke", revoked["id"].as_str().unwrap()]);
    let revoked = revoked["token"].as_str().unwrap().to_owned();
    let bobs = share.token(&["-u", "bob", "-e", "1h"]);
    let mut broken = share.admin.clone();
    let last = broken.pop().unwrap();
    broken.push(if last == 'A' { 'B' } else { 'A' });
    let refused = [
        (revoked.as_str(), "the token is unknown or revoked"),
        (expired.as_str(), "the token has expired"),
        (bobs.as_str(), "the user name does not match the token"),
        (broken.as_str(), "the token is malformed"),
        ("alice's password", "not a personal access token"),
    ];
    for kind in ServerKind::ALL {
        let log = share.work.path().join(format!("{kind:?}.log"));
        let server =
            Server::start_logging_at(kind, &share.work.db(), &share.args(), &log, "pat_core=info");
        let mut answers = Vec::new();
        for (token, _) in refused {
            let run = sftp(&server, token, "ls /\n");
            assert!(!run.ok, "{kind:?}: {token} logged in");
            assert!(run.err.contains("Permission denied"), "{}", run.err);
            answers.push(run.err.replace(token, "TOKEN"));
        }
        // A token pasted into the user name field (the attack review's
        // F4: it was logged whole).
        let run = sftp_as(&server, &share.admin, "x", "ls /\n");
        assert!(!run.ok);
        answers.dedup();
        assert_eq!(
            answers.len(),
            1,
            "{kind:?}: the answers differ: {answers:?}"
        );
        // A good token still works (six failures are below the limit).
        assert!(sftp(&server, &share.admin, "ls /\n").ok);
        assert!(server.stop());
        let log = std::fs::read_to_string(&log).unwrap();
        for (token, reason) in refused {
            assert!(log.contains(reason), "{kind:?}: `{reason}` not in {log}");
            assert!(!log.contains(token), "{kind:?}: the log shows a password");
        }
        assert!(
            !log.contains(&share.admin),
            "{kind:?}: the log shows a token typed as a user name"
        );
        assert!(log.contains("login refused"), "{log}");
    }
}

#[test]
fn keyboard_interactive_logins_take_the_token_too() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let options = ssh_options(&server, "keyboard-interactive");
        // The prompt is `Token: `.
        let run = run_sftp(&["-e", "-P", "Token"], &share.admin, &options, "ls -1 /\n");
        assert!(run.ok, "{kind:?}: {}\n{}", run.out, run.err);
        assert!(run.out.contains("other.txt"), "{}", run.out);
        let run = run_sftp(&["-e", "-P", "Token"], "pat_wrong", &options, "ls -1 /\n");
        assert!(!run.ok);
        assert!(server.stop());
    }
}

#[test]
fn scoped_tokens_reach_their_folder_only_as_on_webdav() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    let up = share.local("up.txt", "new");
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let a = node(&server, &share.admin, "/projects/a");
        let r = share.token(&["-u", "alice", "-e", "1h", "-s", &format!("node:{a}:r")]);
        let rw = share.token(&["-u", "alice", "-e", "1h", "-s", &format!("node:{a}:rw")]);
        let got = share.work.path().join(format!("deep-{kind:?}.txt"));

        // `r`: the way there is listed and nothing else; inside is read.
        let run = sftp(
            &server,
            &r,
            &format!(
                "ls -1 /\nls -1 /projects\nls -1 /projects/a\nget /projects/a/sub/deep.txt {}\n",
                got.display()
            ),
        );
        assert!(run.ok, "{kind:?}: {}\n{}", run.out, run.err);
        let listed: Vec<&str> = run
            .out
            .lines()
            .filter(|l| !l.starts_with("sftp>"))
            .collect();
        assert_eq!(
            listed,
            [
                "/projects",
                "/projects/a",
                "/projects/a/readme.txt",
                "/projects/a/sub"
            ],
            "{kind:?}"
        );
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "deep");
        for refused in [
            "get /other.txt".to_owned(),
            "get /projects/b/secret.txt".to_owned(),
            "ls /projects/b".to_owned(),
            format!("put {} /projects/a/up.txt", up.display()),
            "mkdir /projects/a/dir".to_owned(),
            "rm /projects/a/readme.txt".to_owned(),
            "rename /projects/a/readme.txt /projects/a/moved.txt".to_owned(),
        ] {
            let run = sftp(&server, &r, &format!("{refused}\n"));
            assert!(
                !run.ok,
                "{kind:?}: an r token could `{refused}`: {}",
                run.out
            );
        }
        assert!(!share.root.join("projects/a/up.txt").exists());
        assert!(share.root.join("projects/a/readme.txt").exists());

        // `rw`: writes inside only; a rename out of its folder is refused.
        let run = sftp(
            &server,
            &rw,
            &format!(
                "put {} /projects/a/up.txt\nrename /projects/a/up.txt /projects/a/sub/up.txt\n",
                up.display()
            ),
        );
        assert!(run.ok, "{kind:?}: {}\n{}", run.out, run.err);
        assert_eq!(
            std::fs::read_to_string(share.root.join("projects/a/sub/up.txt")).unwrap(),
            "new"
        );
        for refused in [
            format!("put {} /projects/b/up.txt", up.display()),
            format!("put {} /up.txt", up.display()),
            "rename /projects/a/sub/up.txt /projects/b/up.txt".to_owned(),
            "rename /projects/a/sub/up.txt /up.txt".to_owned(),
            "rename /projects/b/secret.txt /projects/a/secret.txt".to_owned(),
            "rmdir /projects/b".to_owned(),
        ] {
            let run = sftp(&server, &rw, &format!("{refused}\n"));
            assert!(
                !run.ok,
                "{kind:?}: an rw token could `{refused}`: {}",
                run.out
            );
        }
        assert!(share.root.join("projects/a/sub/up.txt").exists());
        assert!(share.root.join("projects/b/secret.txt").exists());
        std::fs::remove_file(share.root.join("projects/a/sub/up.txt")).unwrap();
        assert!(server.stop());
    }
}

#[test]
fn node_ids_survive_renames_over_sftp_and_webdav_alike() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        std::fs::write(share.root.join("projects/b/doc.txt"), "doc").unwrap();
        let id = node(&server, &share.admin, "/projects/b/doc.txt");
        // An SFTP rename keeps the id, as WebDAV sees it.
        let run = sftp(
            &server,
            &share.admin,
            "rename /projects/b/doc.txt /projects/b/sftp.txt\n",
        );
        assert!(run.ok, "{}", run.err);
        assert_eq!(node(&server, &share.admin, "/projects/b/sftp.txt"), id);
        // A WebDAV MOVE keeps it, as a token scoped to it sees over SFTP.
        let moved = client()
            .request(
                Method::from_bytes(b"MOVE").unwrap(),
                server.url("/dav/projects/b/sftp.txt"),
            )
            .header("authorization", basic("alice", &share.admin))
            .header("destination", server.url("/dav/projects/dav.txt"))
            .send()
            .unwrap();
        assert!(moved.status().is_success(), "{kind:?}: {}", moved.status());
        let scoped = share.token(&["-u", "alice", "-e", "1h", "-s", &format!("node:{id}:r")]);
        let got = share.work.path().join(format!("dav-{kind:?}.txt"));
        let run = sftp(
            &server,
            &scoped,
            &format!("get /projects/dav.txt {}\n", got.display()),
        );
        assert!(run.ok, "{kind:?}: {}", run.err);
        assert_eq!(std::fs::read_to_string(&got).unwrap(), "doc");
        std::fs::remove_file(share.root.join("projects/dav.txt")).unwrap();
        assert!(server.stop());
    }
}

#[test]
fn links_are_neither_listed_nor_followed_and_modes_stay() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    let a = share.root.join("projects/a");
    std::os::unix::fs::symlink("../b/secret.txt", a.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("../b", a.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("/etc", share.root.join("etc")).unwrap();
    // A time past the protocol's u32 seconds (the attack review's F3: a
    // time russh-sftp's calendar could not show ended the session).
    let later = std::time::UNIX_EPOCH + Duration::from_secs(1 << 33);
    std::fs::File::options()
        .write(true)
        .open(share.root.join("other.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let run = sftp(&server, &share.admin, "ls -l /\n");
        assert!(
            run.ok && run.out.contains("other.txt"),
            "{kind:?}: {}{}",
            run.out,
            run.err
        );
        let run = sftp(&server, &share.admin, "ls -1 /projects/a\nls -1 /\n");
        assert!(run.ok, "{}", run.err);
        for link in ["link.txt", "dirlink", "etc"] {
            assert!(
                !run.out.contains(link),
                "{kind:?}: {link} listed: {}",
                run.out
            );
        }
        let got = share.work.path().join("got");
        for refused in [
            format!("get /projects/a/link.txt {}", got.display()),
            "ls /projects/a/dirlink".to_owned(),
            format!("get /projects/a/dirlink/secret.txt {}", got.display()),
            "ls /etc".to_owned(),
            "cd /etc".to_owned(),
            "symlink /projects/b/secret.txt /projects/a/new-link".to_owned(),
            "ln /projects/b/secret.txt /projects/a/hard".to_owned(),
            "chmod 777 /projects/a/readme.txt".to_owned(),
            "chown 0 /projects/a/readme.txt".to_owned(),
            "rm /projects/a/link.txt".to_owned(),
        ] {
            let run = sftp(&server, &share.admin, &format!("{refused}\n"));
            assert!(!run.ok, "{kind:?}: `{refused}` succeeded: {}", run.out);
        }
        assert!(!got.exists());
        assert!(!a.join("new-link").exists() && !a.join("hard").exists());
        assert!(a.join("link.txt").symlink_metadata().is_ok(), "left alone");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(a.join("readme.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o777, 0o777);
        assert!(server.stop());
    }
}

#[test]
fn a_token_revoked_during_a_session_is_refused_at_its_next_request() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let created: Value = serde_json::from_str(
            &share
                .work
                .cli_ok(&["token", "-u", "alice", "-a", "10m", "--json"]),
        )
        .unwrap();
        let token = created["token"].as_str().unwrap();
        let options = ssh_options(&server, "password");
        let mut child = Command::new("sshpass")
            .arg("-e")
            .arg("sftp")
            .args(batch_args(&options))
            .env("SSHPASS", token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        writeln!(stdin, "ls -1").unwrap();
        let until = |want: &str| loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line == want => break,
                Ok(_) => {}
                Err(e) => panic!("{kind:?}: no `{want}` from sftp: {e}"),
            }
        };
        until("other.txt");
        share
            .work
            .cli_ok(&["token", "revoke", created["id"].as_str().unwrap()]);
        let got = share.work.path().join(format!("after-{kind:?}.txt"));
        writeln!(stdin, "get /other.txt {}", got.display()).unwrap();
        drop(stdin);
        let status = child.wait().unwrap();
        assert!(!status.success(), "{kind:?}: the session went on");
        assert!(!got.exists(), "{kind:?}: read after the revocation");
        assert!(server.stop());
    }
}

#[test]
fn failed_logins_are_limited_per_connection_and_per_address() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    // An askpass that always answers wrong, and counts how often it is asked.
    let count = share.work.path().join("asked");
    let askpass = share.work.path().join("askpass.sh");
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\necho x >> {}\necho pat_wrong\n", count.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    for kind in ServerKind::ALL {
        let log = share.work.path().join(format!("limit-{kind:?}.log"));
        let server =
            Server::start_logging_at(kind, &share.work.db(), &share.args(), &log, "pat_core=info");
        let _ = std::fs::remove_file(&count);
        // One connection offering five passwords is dropped after three.
        let mut options = ssh_options(&server, "password");
        let at = options
            .iter()
            .position(|o| o == "NumberOfPasswordPrompts=1")
            .unwrap();
        options[at] = "NumberOfPasswordPrompts=5".into();
        let out: Output = Command::new("sftp")
            .args(batch_args(&options))
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        // Three passwords were checked; the fourth was not, the connection
        // was closed instead.
        let asked = std::fs::read_to_string(&count).unwrap().lines().count();
        assert_eq!(
            asked,
            4,
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let logged = || {
            std::fs::read_to_string(&log)
                .unwrap()
                .matches("login refused")
                .count()
        };
        assert_eq!(logged(), 3, "{kind:?}");
        // Seven more failures from this address reach the limit of ten...
        for _ in 0..7 {
            assert!(!sftp(&server, "pat_wrong", "ls /\n").ok);
        }
        assert_eq!(logged(), 10, "{kind:?}");
        // ... and then even the right token is refused from here.
        let run = sftp(&server, &share.admin, "ls /\n");
        assert!(!run.ok, "{kind:?}: logged in past the limit");
        assert!(server.stop());
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(
            log.contains("too many failed logins from this address"),
            "{kind:?}: {log}"
        );
        assert!(!log.contains("pat_wrong"), "the log shows a password");
    }
}

#[test]
fn a_host_key_others_could_read_or_plant_is_refused_at_start() {
    let share = Share::new();
    let key = share.work.path().join("host_key");
    let args = |key: &Path| {
        vec![
            "--dav-root".to_owned(),
            share.root.display().to_string(),
            "--sftp-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--sftp-host-key".to_owned(),
            key.display().to_string(),
        ]
    };
    for kind in ServerKind::ALL {
        // Created 0600 on first start, and used again after.
        let extra = args(&key);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let server = Server::start(kind, &share.work.db(), &extra);
        assert!(server.stop());
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let meta = std::fs::metadata(&key).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let first = std::fs::read(&key).unwrap();
        let server = Server::start(kind, &share.work.db(), &extra);
        assert!(server.stop());
        assert_eq!(std::fs::read(&key).unwrap(), first, "the same key");

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (code, err) = Server::start_failing_with(kind, &share.work.db(), &extra);
        assert_eq!(code, Some(1), "{kind:?}: {err}");
        assert!(
            err.contains("host key") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

        // Another user's key (planted): refused.
        let planted = share.work.path().join("planted_key");
        std::fs::copy(&key, &planted).unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        let extra = args(&planted);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (code, err) = Server::start_failing_with(kind, &share.work.db(), &extra);
        assert_eq!(code, Some(1), "{kind:?}: {err}");
        assert!(err.contains("belongs to uid 65534"), "{err}");

        // A link: not followed.
        let link = share.work.path().join("link_key");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&key, &link).unwrap();
        let extra = args(&link);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let (code, err) = Server::start_failing_with(kind, &share.work.db(), &extra);
        assert_eq!(code, Some(1), "{kind:?}: {err}");
        assert!(err.contains("symbolic link"), "{err}");

        // On PostgreSQL there is no store folder: the flag is required
        // (refused before any connection is tried).
        let (code, err) = Server::start_failing_with(
            kind,
            Path::new("postgres://127.0.0.1:1/none"),
            &["--sftp-addr", "127.0.0.1:0"],
        );
        assert_eq!(code, Some(1), "{kind:?}: {err}");
        assert!(err.contains("--sftp-host-key PATH is required"), "{err}");
        std::fs::remove_file(&planted).unwrap();
    }
}

#[test]
fn rclone_over_sftp_reads_writes_and_keeps_to_the_scopes() {
    if !have("rclone") {
        return;
    }
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let a = node(&server, &share.admin, "/projects/a");
        let r = share.token(&["-u", "alice", "-e", "1h", "-s", &format!("node:{a}:r")]);
        let (host, port) = server.sftp_addr().rsplit_once(':').unwrap();
        let rclone = |token: &str, args: &[&str]| {
            let obscured = Command::new("rclone")
                .args(["obscure", token])
                .output()
                .unwrap();
            let pass = String::from_utf8(obscured.stdout)
                .unwrap()
                .trim()
                .to_owned();
            Command::new("rclone")
                .args(args)
                .env("RCLONE_CONFIG", "/dev/null")
                .env("RCLONE_CONFIG_PAT_TYPE", "sftp")
                .env("RCLONE_CONFIG_PAT_HOST", host)
                .env("RCLONE_CONFIG_PAT_PORT", port)
                .env("RCLONE_CONFIG_PAT_USER", "alice")
                .env("RCLONE_CONFIG_PAT_PASS", pass)
                // No shell on the server: no remote hashing commands.
                .env("RCLONE_CONFIG_PAT_SHELL_TYPE", "none")
                .env("RCLONE_CONFIG_PAT_DISABLE_HASHCHECK", "true")
                .env("RCLONE_CONFIG_PAT_KEY_USE_AGENT", "false")
                .env("RCLONE_RETRIES", "1")
                .env("RCLONE_LOW_LEVEL_RETRIES", "1")
                .output()
                .unwrap()
        };
        let out = rclone(&share.admin, &["lsf", "-R", "pat:"]);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(listed.contains("projects/b/secret.txt") && listed.contains("other.txt"));
        let up = share.local(&format!("rclone-{kind:?}.txt"), "via rclone");
        let out = rclone(
            &share.admin,
            &["copyto", up.to_str().unwrap(), "pat:projects/b/up.txt"],
        );
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(share.root.join("projects/b/up.txt")).unwrap(),
            "via rclone"
        );
        let out = rclone(&share.admin, &["deletefile", "pat:projects/b/up.txt"]);
        assert!(out.status.success());
        assert!(!share.root.join("projects/b/up.txt").exists());

        // A read-only token scoped to projects/a.
        let out = rclone(&r, &["lsf", "-R", "pat:"]);
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            listed.contains("projects/a/sub/deep.txt"),
            "{kind:?}: {listed}"
        );
        assert!(
            !listed.contains("other.txt") && !listed.contains("projects/b"),
            "{listed}"
        );
        let out = rclone(&r, &["cat", "pat:projects/a/readme.txt"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "read me");
        let out = rclone(&r, &["cat", "pat:other.txt"]);
        assert!(!out.status.success());
        let out = rclone(
            &r,
            &["copyto", up.to_str().unwrap(), "pat:projects/a/up.txt"],
        );
        assert!(
            !out.status.success(),
            "{kind:?}: a read-only upload succeeded"
        );
        assert!(!share.root.join("projects/a/up.txt").exists());
        assert!(server.stop());
    }
}

// From the attack review of issue 26: the SFTP logins had a gate of their
// own, so a token's rate limit counted twice over, once for HTTP and once
// for SFTP. One gate now counts both.
#[test]
fn http_and_sftp_count_one_rate_limit() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let token = share.token(&["-u", "alice", "-e", "1h", "--rate", "3/h"]);
        for _ in 0..3 {
            let r = client()
                .get(server.url("/whoami"))
                .bearer_auth(&token)
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{kind:?}");
        }
        let run = sftp(&server, &token, "pwd\n");
        assert!(!run.ok, "{kind:?}: a login past the limit: {}", run.out);
    }
}

// Issue 26: a login is one use of a token's quota, however many requests
// its session makes; a second login is refused once none is left.
#[test]
fn a_login_is_one_use_of_a_quota() {
    if !have_openssh() {
        return;
    }
    let share = Share::new();
    for kind in ServerKind::ALL {
        let server = share.start(kind);
        let token = share.token(&["-u", "alice", "-e", "1h", "--max-uses", "1"]);
        let run = sftp(&server, &token, "pwd\nls\nls projects\npwd\n");
        assert!(run.ok, "{kind:?}: the one login: {}{}", run.out, run.err);
        assert!(run.out.contains("projects"), "{kind:?}: {}", run.out);
        let again = sftp(&server, &token, "pwd\n");
        assert!(!again.ok, "{kind:?}: a second login: {}", again.out);
        let r = client()
            .get(server.url("/whoami"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{kind:?}");
    }
}
