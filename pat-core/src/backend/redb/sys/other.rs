//! Other Unix systems (illumos, Solaris, Haiku...): no peer-credential call
//! this crate knows, so the admin socket refuses every peer (it fails
//! closed), and the process holding a store is not named.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::Process;

/// Always an error: the peer cannot be told, so it is not trusted.
pub(crate) fn peer_uid(_stream: &UnixStream) -> io::Result<u32> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials are not supported on this system",
    ))
}

/// Not available on these systems.
pub(crate) fn lock_holder(_path: &Path) -> Option<Process> {
    None
}
