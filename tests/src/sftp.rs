//! OpenSSH's `sftp` driven in batch mode against a reference server's
//! `--sftp-addr`, the token typed by `sshpass`.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::Server;

pub use crate::have;

/// Whether OpenSSH's `sftp` and `sshpass` are there (see [`have`]).
pub fn have_openssh() -> bool {
    have("sftp") && have("sshpass")
}

/// What one `sftp -b` run did.
#[derive(Debug)]
pub struct Run {
    /// Whether sftp exited 0 (every command succeeded).
    pub ok: bool,
    /// Its standard output: the commands echoed, and what they printed.
    pub out: String,
    /// Its standard error.
    pub err: String,
}

/// The OpenSSH client's options: password logins only, any host key (a
/// fresh one per test), nothing read from or written to `~/.ssh`.
pub fn ssh_options(server: &Server, method: &str) -> Vec<String> {
    let (host, port) = server.sftp_addr().rsplit_once(':').unwrap();
    let mut args: Vec<String> = [
        // `-b` turns on BatchMode, which turns off password logins.
        "BatchMode=no",
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "PubkeyAuthentication=no",
        "NumberOfPasswordPrompts=1",
        "ConnectTimeout=20",
        "LogLevel=ERROR",
    ]
    .iter()
    .flat_map(|o| ["-o".to_owned(), (*o).to_owned()])
    .collect();
    args.extend(["-o".into(), format!("PreferredAuthentications={method}")]);
    args.extend(["-F".into(), "/dev/null".into(), "-P".into(), port.into()]);
    args.push(format!("{}@{host}", server_user()));
    args
}

/// `options` (ending with the destination) with `-b -` before the
/// destination and after the options: `-b` adds `-oBatchMode=yes` where
/// it stands, and ssh keeps the first value it is given.
pub fn batch_args(options: &[String]) -> Vec<String> {
    let (destination, options) = options.split_last().unwrap();
    let mut args = options.to_vec();
    args.extend(["-b".into(), "-".into(), destination.clone()]);
    args
}

/// Every login here is alice's unless a test says otherwise.
pub fn server_user() -> &'static str {
    "alice"
}

/// `sftp -b` of `batch` as `user` with `token` (`sshpass` types it at the
/// password prompt).
pub fn sftp_as(server: &Server, user: &str, token: &str, batch: &str) -> Run {
    let mut options = ssh_options(server, "password");
    let last = options.pop().unwrap();
    options.push(last.replacen(server_user(), user, 1));
    run_sftp(&["-e"], token, &options, batch)
}

/// [`sftp_as`] alice.
pub fn sftp(server: &Server, token: &str, batch: &str) -> Run {
    sftp_as(server, "alice", token, batch)
}

/// `sshpass SSHPASS_ARGS sftp OPTIONS -b - DESTINATION` with `token` in
/// `SSHPASS` and `batch` on standard input.
pub fn run_sftp(sshpass: &[&str], token: &str, options: &[String], batch: &str) -> Run {
    let mut child = Command::new("sshpass")
        .args(sshpass)
        .arg("sftp")
        .args(batch_args(options))
        .env("SSHPASS", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running sshpass sftp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        ok: out.status.success(),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
