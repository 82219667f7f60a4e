//! Linux: `SO_PEERCRED` and `/proc/locks`.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::Process;

/// The effective uid of the process at the other end of `stream`, as the
/// kernel recorded it when the connection was made.
pub(crate) fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(stream)?.uid.as_raw())
}

/// The process (other than this one) holding a whole-file lock on `path`, from
/// `/proc/locks`; `None` when it cannot be told.
pub(crate) fn lock_holder(path: &Path) -> Option<Process> {
    let meta = std::fs::metadata(path).ok()?;
    let dev = meta.dev();
    let want = (rustix::fs::major(dev), rustix::fs::minor(dev), meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|line| {
        // "3: FLOCK  ADVISORY  WRITE 5046 fe:00:10010948 0 EOF"
        let mut fields = line.split_whitespace().skip(4);
        let pid: u32 = fields.next()?.parse().ok()?;
        let mut id = fields.next()?.split(':');
        let major = u32::from_str_radix(id.next()?, 16).ok()?;
        let minor = u32::from_str_radix(id.next()?, 16).ok()?;
        let ino: u64 = id.next()?.parse().ok()?;
        ((major, minor, ino) == want && pid != std::process::id()).then_some(pid)
    })?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|n| n.trim_end().to_owned());
    Some(Process { pid, name })
}
