//! What differs between operating systems, one small module per platform:
//! who is at the other end of a Unix socket, and which process holds a lock.
//! Everything else in the crate is portable Rust or portable Unix.

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "linux.rs"]
mod imp;

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
#[path = "bsd.rs"]
mod imp;

#[cfg(all(
    unix,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))
))]
#[path = "other.rs"]
mod imp;

#[cfg(unix)]
pub(crate) use imp::{lock_holder, peer_uid};

/// A process, as the system names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its process id.
    pub pid: u32,
    /// Its command name, when the system tells.
    pub name: Option<String>,
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "pid {}, {}", self.pid, crate::printable(name)),
            None => write!(f, "pid {}", self.pid),
        }
    }
}
