//! Harness for the cross-crate tests: the real `pat-cli` binary, the
//! reference servers as real processes on 127.0.0.1, and a real HTTP client.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;

pub mod contract;
pub mod inproc;
pub mod postgres;
pub mod sftp;

/// One of the reference servers, which share one HTTP contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `pat-tower/examples/axum_server.rs`.
    Axum,
    /// `pat-actix/examples/actix_server.rs`.
    Actix,
}

impl ServerKind {
    /// Every reference server, for tests that run against each.
    pub const ALL: [ServerKind; 2] = [ServerKind::Axum, ServerKind::Actix];

    fn example(self) -> &'static str {
        match self {
            ServerKind::Axum => "axum_server",
            ServerKind::Actix => "actix_server",
        }
    }
}

/// Builds the binaries the tests run (a no-op after `cargo test --workspace`,
/// which has built them already) and returns the target directory.
fn target_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--workspace", "--bins", "--examples", "--quiet"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the binaries under test failed");
        // target/<profile>/deps/<this test> -> target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        exe.parent()
            .and_then(Path::parent)
            .expect("test executable in target/<profile>/deps")
            .to_path_buf()
    })
}

/// Whether `program` runs; under `CI=true` a missing one fails the test.
pub fn have(program: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    required(program, found)
}

/// `found`, for a tool a test drives; under `CI=true` a missing one fails
/// the test (`.ci/run` installs it), elsewhere the test says it skipped.
pub fn required(what: &str, found: bool) -> bool {
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is required under CI=true (.ci/run installs it)"
        );
        eprintln!("skipped: {what} is not installed");
    }
    found
}

/// `pat-cli --db DB ARGS`, on a store named by its path or a PostgreSQL
/// URL, whatever `PAT_DB` says.
pub fn cli_on(db: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    Command::new(pat_cli())
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("PAT_DB")
        .output()
        .expect("running pat-cli")
}

/// [`cli_on`], which must succeed: its standard output.
pub fn cli_ok_on(db: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    let out = cli_on(db, args);
    assert!(
        out.status.success(),
        "pat-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The `pat-cli` binary.
pub fn pat_cli() -> PathBuf {
    target_dir().join("pat-cli")
}

/// A temporary directory holding a store file.
#[derive(Debug)]
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Default for Workdir {
    fn default() -> Self {
        Self::new()
    }
}

impl Workdir {
    /// A fresh, empty directory.
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The store file in it.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("pat.redb")
    }

    /// Runs `pat-cli --db <db> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(pat_cli())
            .arg("--db")
            .arg(self.db())
            .args(args)
            .env_remove("PAT_DB")
            .output()
            .expect("running pat-cli")
    }

    /// Runs `pat-cli` and returns its stdout, failing the test on error.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "pat-cli {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Creates a token with `pat-cli token -q ARGS` and returns it.
    pub fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["token", "-q"];
        all.extend_from_slice(args);
        self.cli_ok(&all).trim_end().to_owned()
    }

    /// Creates a token with `pat-cli token --json ARGS` and returns it and
    /// its id.
    pub fn create(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["token", "--json"];
        all.extend_from_slice(args);
        let v: serde_json::Value =
            serde_json::from_str(&self.cli_ok(&all)).expect("pat-cli's JSON");
        let field = |name: &str| v[name].as_str().expect(name).to_owned();
        (field("token"), field("id"))
    }

    /// Starts a reference server on this directory's store.
    pub fn start(&self, kind: ServerKind) -> Server {
        Server::start(kind, &self.db(), &[])
    }
}

/// A reference server running as a child process on 127.0.0.1.
#[derive(Debug)]
pub struct Server {
    child: Child,
    base: String,
    sftp: Option<String>,
}

impl Server {
    /// Starts `kind` with `--db db --addr 127.0.0.1:0 EXTRA` and waits for its
    /// `listening on http://ADDR` line.
    pub fn start(kind: ServerKind, db: &Path, extra: &[&str]) -> Server {
        Server::start_on(kind, db, "127.0.0.1:0", extra)
    }

    /// [`Server::start`] on `addr` (a server coming back on its old port).
    pub fn start_on(kind: ServerKind, db: &Path, addr: &str, extra: &[&str]) -> Server {
        Server::spawn(kind, db, addr, extra, Stdio::inherit(), None)
    }

    /// [`Server::start`] with the server's standard error (its log) written
    /// to `log`.
    pub fn start_logging(kind: ServerKind, db: &Path, extra: &[&str], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("the log file");
        Server::spawn(kind, db, "127.0.0.1:0", extra, Stdio::from(file), None)
    }

    /// [`Server::start_logging`] with `RUST_LOG=rust_log`.
    pub fn start_logging_at(
        kind: ServerKind,
        db: &Path,
        extra: &[&str],
        log: &Path,
        rust_log: &str,
    ) -> Server {
        let file = std::fs::File::create(log).expect("the log file");
        Server::spawn(
            kind,
            db,
            "127.0.0.1:0",
            extra,
            Stdio::from(file),
            Some(rust_log),
        )
    }

    fn spawn(
        kind: ServerKind,
        db: &Path,
        addr: &str,
        extra: &[&str],
        stderr: Stdio,
        rust_log: Option<&str>,
    ) -> Server {
        let exe = target_dir().join("examples").join(kind.example());
        let mut command = Command::new(&exe);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .arg("--db")
            .arg(db)
            .args(["--addr", addr, "--workers", "2"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // `listening on http://ADDR`, then `sftp listening on ADDR`
                // with --sftp-addr.
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                } else if let Some(addr) = line.strip_prefix("sftp listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let wait = Duration::from_secs(60);
        let base = rx.recv_timeout(wait);
        let sftp = extra
            .contains(&"--sftp-addr")
            .then(|| rx.recv_timeout(wait));
        match (base, sftp) {
            (Ok(base), None) => Server {
                child,
                base,
                sftp: None,
            },
            (Ok(base), Some(Ok(sftp))) => Server {
                child,
                base,
                sftp: Some(sftp),
            },
            _ => {
                let _ = child.kill();
                let status = child.wait();
                panic!("{kind:?} server did not print its addresses (exit: {status:?})");
            }
        }
    }

    /// The `HOST:PORT` of its SFTP server (started with `--sftp-addr`).
    pub fn sftp_addr(&self) -> &str {
        self.sftp.as_deref().expect("started without --sftp-addr")
    }

    /// Runs `kind` on `db` expecting it to fail at start-up; returns its exit
    /// code and stderr. Fails the test if it is still running after 60 s.
    pub fn start_failing(kind: ServerKind, db: &Path) -> (Option<i32>, String) {
        Server::start_failing_with(kind, db, &[])
    }

    /// [`Server::start_failing`] with `EXTRA` flags.
    pub fn start_failing_with(
        kind: ServerKind,
        db: &Path,
        extra: &[&str],
    ) -> (Option<i32>, String) {
        let exe = target_dir().join("examples").join(kind.example());
        let mut child = Command::new(&exe)
            .arg("--db")
            .arg(db)
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", exe.display()));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("waiting for the server").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{kind:?} kept running where it should have refused to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("server output");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for a graceful exit; returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        signal(self.child.id(), "TERM");
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself and returns its output code.
    pub fn wait(mut self) -> Option<i32> {
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The reference servers' test share, under `root`:
/// projects/a/{readme.txt, sub/deep.txt}, projects/b/secret.txt, other.txt.
pub fn make_share_tree(root: &Path) {
    std::fs::create_dir_all(root.join("projects/a/sub")).unwrap();
    std::fs::create_dir_all(root.join("projects/b")).unwrap();
    std::fs::write(root.join("projects/a/readme.txt"), "read me").unwrap();
    std::fs::write(root.join("projects/a/sub/deep.txt"), "deep").unwrap();
    std::fs::write(root.join("projects/b/secret.txt"), "secret").unwrap();
    std::fs::write(root.join("other.txt"), "other").unwrap();
}

/// A blocking HTTP client with a generous timeout (a stuck server fails the
/// test instead of hanging it).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Both reference servers on the PostgreSQL database `db` (replicas of one
/// store), each with its WebDAV share in `dir` and the flags `extra`.
pub fn replicas(db: &str, dir: &Path, extra: &[&str]) -> [Server; 2] {
    ServerKind::ALL.map(|kind| {
        let share = dir.join(format!("dav-{kind:?}"));
        std::fs::create_dir_all(&share).expect("share");
        let mut flags = vec!["--dav-root", share.to_str().expect("path")];
        flags.extend_from_slice(extra);
        Server::start(kind, Path::new(db), &flags)
    })
}

/// The status of `GET /hello` with `token` as a Bearer token: 200 while
/// it is accepted.
pub fn hello(server: &Server, token: &str) -> u16 {
    client()
        .get(server.url("/hello"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .expect("request")
        .status()
        .as_u16()
}

/// The status line of `server`'s answer to a `POST` to `path` with
/// `headers` that announces a body of `len` bytes and sends none of it: a
/// route that refuses it by its length answers at once (sending a body
/// that large races the server's close, and the client's write fails).
pub fn post_announcing(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> String {
    use std::io::{Read as _, Write as _};
    let addr = server.base().trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: x\r\ncontent-length: {len}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The `Authorization` value for HTTP Basic.
pub fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The README's Rust examples, compiled and run as doctests here, where every
/// crate of the workspace is a dependency.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// Another local user (uid 65534, `nobody`) to attack with, when the tests
/// run as root and `setpriv` exists; `None` (after printing why) otherwise.
#[derive(Debug)]
pub struct Attacker {
    /// A directory like `/tmp` (mode 1777) where both users may create
    /// files, holding copies of the binaries the attacker runs.
    shared: tempfile::TempDir,
}

/// The attacker's uid.
pub const ATTACKER_UID: u32 = 65534;

impl Attacker {
    /// The attacker, or `None` with a printed reason to skip.
    pub fn get() -> Option<Attacker> {
        use std::os::unix::fs::PermissionsExt as _;
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout == b"0\n");
        let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
        if !root || !setpriv {
            eprintln!("skipped: needs root and setpriv to act as another user");
            return None;
        }
        let shared = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod 1777");
        let attacker = Attacker { shared };
        for (name, from) in [
            ("pat-cli", pat_cli()),
            ("axum_server", target_dir().join("examples/axum_server")),
        ] {
            let to = attacker.bin(name);
            std::fs::copy(&from, &to).expect("copy a binary for the attacker");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        Some(attacker)
    }

    /// The shared directory (mode 1777).
    pub fn shared(&self) -> &Path {
        self.shared.path()
    }

    /// A copy of a binary both users can run (`pat-cli`, `axum_server`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.shared.path().join(format!(".bin-{name}"))
    }

    /// A command that runs `program` as the attacker.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={ATTACKER_UID}"),
            &format!("--regid={ATTACKER_UID}"),
            "--clear-groups",
        ])
        .arg(program)
        .env_remove("PAT_DB")
        .current_dir(self.shared.path());
        cmd
    }

    /// A command running `name`, an `#[ignore]`d helper test of the calling
    /// test binary, as the attacker: a copy of the binary is made where the
    /// attacker can run it, so no other program (such as Python) is needed.
    pub fn helper(&self, name: &str) -> Command {
        use std::os::unix::fs::PermissionsExt as _;
        let exe = std::env::current_exe().expect("test binary");
        let copy = self.bin(&exe.file_name().expect("file name").to_string_lossy());
        if !copy.exists() {
            std::fs::copy(&exe, &copy).expect("copy the test binary");
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let mut cmd = self.command(copy);
        cmd.args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        cmd
    }

    /// Runs `pat-cli ARGS` as the attacker, failing the test if it fails.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self
            .command(self.bin("pat-cli"))
            .args(args)
            .output()
            .expect("running pat-cli as the attacker");
        assert!(
            out.status.success(),
            "attacker's pat-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }
}
