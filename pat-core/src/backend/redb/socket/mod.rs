//! The admin socket: how `pat-cli` manages a store while a service holds it.
//!
//! redb lets one process open a store file. That process serves a Unix
//! socket next to the file (`<db>.sock`, mode 0600, peers checked to be the
//! same user or root) and carries out every admin operation itself, so its
//! in-memory state stays exact and revocation is immediate.

mod client;
pub(crate) mod protocol;
mod server;

use std::path::{Path, PathBuf};

pub use client::AdminClient;
pub(crate) use server::{AdminServer, StartError};

/// The admin socket of the store at `db`: the file name with `.sock` added
/// (`pat.redb` -> `pat.redb.sock`).
pub fn admin_socket_path(db: impl AsRef<Path>) -> PathBuf {
    let mut name = db.as_ref().as_os_str().to_owned();
    name.push(".sock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests;
