//! Whether a file holding a secret may be trusted. Another local user who
//! can plant a store file (or its socket, or a server's host key) where a
//! service will open it, or replace or read one, can make the service accept
//! their tokens or pass for it; so the store, its directory and the admin
//! socket must belong to this process's user (or root, for directories and
//! sockets), and must not be open to others. The rules are here once, for
//! the stores and for whatever else an application keeps a secret in
//! ([`check_private_file`]). With the `redb` feature (Unix only).

use std::fs::Metadata;
use std::os::unix::fs::FileTypeExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use crate::error::Untrusted;

/// This process's effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Group and other permission bits.
const OPEN_TO_OTHERS: u32 = 0o077;
/// Group and other write bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// A file holding a secret (the redb store, a server's private key), from
/// `fstat` of the opened file (opened with `O_NOFOLLOW`, so that a link is
/// not followed): a regular file of this process's user, mode 0600 or
/// narrower. The error says what is wrong and the fix.
///
/// ```
/// use std::os::unix::fs::PermissionsExt as _;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("host_key");
/// std::fs::write(&path, "secret").unwrap();
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
/// let meta = std::fs::File::open(&path).unwrap().metadata().unwrap();
/// let refused = pat_core::trust::check_private_file(&meta).unwrap_err();
/// assert!(refused.to_string().contains("chmod 600"));
/// ```
pub fn check_private_file(meta: &Metadata) -> Result<(), Untrusted> {
    if !meta.file_type().is_file() {
        return Err(Untrusted::Kind {
            expected: "regular file",
        });
    }
    check_owner(meta.uid(), false)?;
    let mode = meta.mode() & 0o7777;
    if mode & OPEN_TO_OTHERS != 0 {
        return Err(Untrusted::Mode { mode });
    }
    Ok(())
}

/// A socket at the admin socket path, from `lstat`: a socket (not a link) of
/// ours or root's, that others cannot write to.
pub(crate) fn check_socket_file(meta: &Metadata) -> Result<(), Untrusted> {
    if meta.file_type().is_symlink() {
        return Err(Untrusted::Symlink);
    }
    if !meta.file_type().is_socket() {
        return Err(Untrusted::Kind { expected: "socket" });
    }
    check_owner(meta.uid(), true)?;
    let mode = meta.mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 {
        return Err(Untrusted::Mode { mode });
    }
    Ok(())
}

/// The directory holding the store (`dir`, with its `meta`): ours or root's,
/// and if others may write to it, sticky (so they cannot rename or remove our
/// files).
pub(crate) fn check_directory(dir: &Path, meta: &Metadata) -> Result<(), Untrusted> {
    let (owner, euid) = (meta.uid(), euid());
    if owner != euid && owner != 0 {
        return Err(Untrusted::DirectoryOwner {
            dir: dir.to_path_buf(),
            owner,
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & WRITABLE_BY_OTHERS != 0 && mode & STICKY == 0 {
        return Err(Untrusted::DirectoryWritable {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// Files must be ours; with `root_ok`, root's too (a socket served by a
/// root service).
fn check_owner(owner: u32, root_ok: bool) -> Result<(), Untrusted> {
    let euid = euid();
    if owner == euid || (root_ok && owner == 0) {
        Ok(())
    } else {
        Err(Untrusted::Owner { owner, euid })
    }
}
