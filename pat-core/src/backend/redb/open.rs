//! Opening the store file: a new file is created exclusively (never through
//! a link, never over a file that appeared meanwhile); an existing one is
//! opened without following links and trusted only if it is a non-empty
//! regular file of ours, private, in a directory others cannot swap it in.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::backend::trust;
use crate::error::{OpenError, Untrusted};

/// An opened store file.
pub(super) struct Opened {
    pub(super) file: File,
    /// Whether this call created it (so it is ours to remove if opening
    /// fails further on).
    pub(super) created: bool,
}

/// The directory holding `path`.
pub(super) fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

pub(super) fn open_file(path: &Path) -> Result<Opened, OpenError> {
    let io = |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let untrusted = |reason| OpenError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let dir = directory(path);
    let dir_meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => return Err(OpenError::MissingDirectory(dir.to_path_buf())),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(OpenError::MissingDirectory(dir.to_path_buf()));
        }
        Err(e) => return Err(io(e)),
    };
    trust::check_directory(dir, &dir_meta).map_err(untrusted)?;
    let no_follow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(no_follow)
        .open(path);
    match created {
        Ok(file) => {
            return Ok(Opened {
                file,
                created: true,
            });
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(e)),
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(no_follow)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                untrusted(Untrusted::Symlink)
            } else {
                io(e)
            }
        })?;
    let meta = file.metadata().map_err(io)?;
    trust::check_private_file(&meta).map_err(untrusted)?;
    if meta.len() == 0 {
        return Err(OpenError::Empty {
            path: PathBuf::from(path),
        });
    }
    Ok(Opened {
        file,
        created: false,
    })
}
