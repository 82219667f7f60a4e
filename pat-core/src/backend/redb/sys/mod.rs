//! What differs between Unix systems, one small module per platform, for
//! the redb store: who is at the other end of its admin socket, and which
//! process holds its lock. Everything else in the crate is portable Rust or
//! portable Unix.

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

pub(crate) use imp::{lock_holder, peer_uid};
