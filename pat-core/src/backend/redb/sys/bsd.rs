//! macOS and the BSDs: `getpeereid`. They have no `/proc/locks`, so the
//! process holding a store is not named.
//!
//! Type-checked here with `cargo check --target x86_64-apple-darwin` and
//! `--target x86_64-unknown-freebsd`; not run.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::Process;

/// The effective uid of the process at the other end of `stream`, as the
/// kernel recorded it when the connection was made (`getpeereid`).
pub(crate) fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let (uid, _gid) = nix::unistd::getpeereid(stream).map_err(io::Error::from)?;
    Ok(uid.as_raw())
}

/// Not available on these systems.
pub(crate) fn lock_holder(_path: &Path) -> Option<Process> {
    None
}
