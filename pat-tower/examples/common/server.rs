//! What the two reference servers share as processes: their flags, logging,
//! signals and exit codes. Included by both with `#[path]` (it lives in
//! pat-tower so the workspace keeps its fixed layout); the decisions of the
//! HTTP contract are in `contract.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Reference server flags.
#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Token store file (created if missing).
    #[arg(long, default_value = "pat.redb", value_name = "PATH")]
    pub(crate) db: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub(crate) addr: SocketAddr,
    /// Folder shared over WebDAV at /dav/ [default: a private `dav` folder next to the store].
    #[arg(long, value_name = "DIR")]
    pub(crate) dav_root: Option<PathBuf>,
    /// Realm of the WWW-Authenticate challenges.
    #[arg(long, default_value = pat_core::DEFAULT_REALM, value_name = "NAME")]
    pub(crate) realm: String,
    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) workers: Option<u16>,
}

impl Args {
    /// The WebDAV share of `--dav-root`, or of a private `dav` folder next to
    /// the store, created if missing (see `Share::open` for what is refused).
    pub(crate) fn share(&self) -> std::io::Result<super::dav::Share> {
        match &self.dav_root {
            Some(dir) => super::dav::Share::open(dir, false),
            None => {
                let dir = self.db.parent().unwrap_or(std::path::Path::new("."));
                let dir = if dir.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    dir
                };
                super::dav::Share::open(&dir.join("dav"), true)
            }
        }
    }
}

/// The process exit code for how `serve` ended.
pub(crate) fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain: "cannot serve the admin socket" alone
            // does not say what to do.
            eprintln!("error: {}", pat_core::redacted(&pat_core::error_chain(&*e)));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Logs to stderr, filtered by `RUST_LOG`.
pub(crate) fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}
