//! The admin socket's server side: a thread in the process that holds the
//! store, answering admin operations for `pat-cli`.

use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::protocol::{self, Failure, Reply, Request};
use crate::backend::admin::Admin as _;
use crate::backend::redb::{Inner, Store};
use crate::backend::trust;
use crate::error::{StoreError, Untrusted};

/// How long a connection may take to send one whole request, or to read a
/// reply; also how long it may sit idle between requests.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once. When all are taken, a new one takes the slot
/// of the connection that has waited longest for its request, so clients that
/// trickle bytes cannot lock an operator out.
const MAX_CONNECTIONS: usize = 16;
/// Upper bound on how long stopping waits for the accept loop to notice.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The longest socket path the system takes (`sun_path`, with its NUL).
const SUN_PATH: usize = if cfg!(any(target_os = "linux", target_os = "android")) {
    108
} else {
    104
};

/// Whether a peer may use the socket: the same user as the service, or root.
pub(crate) fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid || peer_uid == 0
}

/// Why the socket could not be served.
#[derive(Debug)]
pub(crate) enum StartError {
    /// Something is at the path that this process must not trust or remove.
    Untrusted(Untrusted),
    /// Anything else, with a message that says what to do.
    Io(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> StartError {
        StartError::Io(e)
    }
}

/// A running admin socket. Dropping it stops the thread and removes the file.
#[derive(Debug)]
pub(crate) struct AdminServer {
    path: PathBuf,
    /// The socket file's identity, so that drop removes only our own.
    inode: (u64, u64),
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `path` (mode 0600) and serves `inner` from a background thread.
    ///
    /// An existing socket file is replaced only if it is ours and nothing
    /// answers on it (a crashed process left it); a live socket, a link, a
    /// file of another kind or another user's socket is never touched.
    pub(crate) fn start(path: &Path, inner: Weak<Inner>) -> Result<AdminServer, StartError> {
        let len = path.as_os_str().len();
        if len >= SUN_PATH {
            return Err(StartError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the path is {len} bytes long and Unix sockets take at most {}: keep the \
                     store in a shorter path, or turn the admin socket off",
                    SUN_PATH - 1
                ),
            )));
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) => {
                trust::check_socket_file(&meta).map_err(StartError::Untrusted)?;
                if UnixStream::connect(path).is_ok() {
                    return Err(StartError::Io(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another process serves it: is a second service running on this store?",
                    )));
                }
                std::fs::remove_file(path)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let listener = bind_private(path)?;
        let meta = std::fs::symlink_metadata(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("pat-admin-socket".into())
                .spawn(move || accept_loop(&listener, &inner, &stop))?
        };
        Ok(AdminServer {
            path: path.to_path_buf(),
            inode: (meta.dev(), meta.ino()),
            stop,
            thread: Some(thread),
        })
    }
}

/// Binds a listener at `path` without a moment at a wider mode: bound in a
/// fresh private directory beside it (mode 0700, so nobody else can reach or
/// swap the socket), made 0600 there, then renamed into place.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = loop {
        let candidate = dir.join(format!(
            ".pat{:04x}",
            rand::Rng::random::<u16>(&mut crate::model::token::os_rng())
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    };
    let staged = private.join("s");
    let bound = UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    bound
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop now rather than at its next poll timeout.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Remove the socket only if it is still ours.
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.inode
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The connections being served, so that a new one can take the slot of the
/// one that has waited longest for its request.
#[derive(Default)]
struct Slots {
    next: u64,
    open: Vec<Slot>,
}

struct Slot {
    id: u64,
    /// A handle to shut the connection down from the accept loop.
    stream: UnixStream,
    /// Since when it has been waiting for (or reading) a request; `None`
    /// while a request is being carried out.
    waiting_since: Option<Instant>,
}

type SharedSlots = Arc<Mutex<Slots>>;

fn lock(shared: &SharedSlots) -> std::sync::MutexGuard<'_, Slots> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slots {
    /// Takes a slot for `stream`, evicting the longest-waiting connection
    /// when all are taken; `None` when every connection is busy with a
    /// request.
    fn admit(&mut self, stream: &UnixStream) -> Option<u64> {
        if self.open.len() >= MAX_CONNECTIONS {
            let victim = self
                .open
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.waiting_since.map(|t| (t, i)))
                .min()?
                .1;
            let evicted = self.open.swap_remove(victim);
            let _ = evicted.stream.shutdown(std::net::Shutdown::Both);
            tracing::debug!("admin socket: dropped the connection that waited longest");
        }
        let id = self.next;
        self.next += 1;
        self.open.push(Slot {
            id,
            stream: stream.try_clone().ok()?,
            waiting_since: Some(Instant::now()),
        });
        Some(id)
    }

    fn set_waiting(&mut self, id: u64, waiting: bool) {
        if let Some(slot) = self.open.iter_mut().find(|s| s.id == id) {
            slot.waiting_since = waiting.then(Instant::now);
        }
    }

    fn release(&mut self, id: u64) {
        self.open.retain(|s| s.id != id);
    }
}

fn accept_loop(listener: &UnixListener, inner: &Weak<Inner>, stop: &AtomicBool) {
    let own_uid = trust::euid();
    let slots = SharedSlots::default();
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: POLL_INTERVAL.as_nanos() as _,
    };
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [rustix::event::PollFd::new(
            listener,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "admin socket: poll failed; stopping");
                return;
            }
        }
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed");
                continue;
            }
        };
        let peer = match crate::backend::redb::sys::peer_uid(&stream) {
            Ok(uid) if peer_allowed(uid, own_uid) => uid,
            Ok(uid) => {
                tracing::warn!(
                    peer_uid = uid,
                    "admin socket: refused a connection from another user"
                );
                refuse(
                    &stream,
                    format!("permission denied: this admin socket serves uid {own_uid} and root"),
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: no peer credentials; refused");
                continue;
            }
        };
        let Some(id) = lock(&slots).admit(&stream) else {
            refuse(
                &stream,
                "busy: every admin connection is carrying out a request; retry".to_owned(),
            );
            continue;
        };
        let (inner, for_thread) = (inner.clone(), slots.clone());
        let spawned = thread::Builder::new()
            .name("pat-admin-conn".into())
            .spawn(move || {
                serve(&stream, &inner, id, &for_thread, peer);
                lock(&for_thread).release(id);
            });
        if let Err(e) = spawned {
            lock(&slots).release(id);
            tracing::warn!(error = %e, "admin socket: cannot spawn a connection thread");
        }
    }
}

/// Reads from a stream until a deadline, however the bytes trickle in.
struct Deadline<'a> {
    stream: &'a UnixStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no whole request within {} s", IO_TIMEOUT.as_secs()),
            ));
        }
        self.stream.set_read_timeout(Some(left))?;
        (&mut &*self.stream).read(buf)
    }
}

fn refuse(mut stream: &UnixStream, message: String) {
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let _ = protocol::write_frame(
        &mut stream,
        &protocol::encode_reply(&Err(Failure::Message(message))),
    );
}

/// Answers requests on one connection until it closes, misbehaves or idles.
/// Each request must arrive whole within [`IO_TIMEOUT`] of the previous
/// answer (or of the connection).
fn serve(stream: &UnixStream, inner: &Weak<Inner>, id: u64, shared: &SharedSlots, peer: u32) {
    if stream.set_write_timeout(Some(IO_TIMEOUT)).is_err() {
        return;
    }
    loop {
        let mut reader = Deadline {
            stream,
            until: Instant::now() + IO_TIMEOUT,
        };
        let body = match protocol::read_frame(&mut reader, protocol::MAX_REQUEST) {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "admin socket: dropped a connection");
                if e.kind() == io::ErrorKind::InvalidData {
                    refuse(stream, format!("bad request: {e}"));
                }
                return;
            }
        };
        lock(shared).set_waiting(id, false);
        let (reply, keep_going) = match Request::decode(&body) {
            Err(msg) => (Err(Failure::Message(format!("bad request: {msg}"))), false),
            Ok(req) => match inner.upgrade() {
                Some(inner) => (dispatch(&inner, req, peer), true),
                None => (
                    Err(Failure::Message("the store is closing".to_owned())),
                    false,
                ),
            },
        };
        let mut io = stream;
        if protocol::write_frame(&mut io, &protocol::encode_reply(&reply)).is_err() || !keep_going {
            return;
        }
        lock(shared).set_waiting(id, true);
    }
}

/// Carries out one request for the peer with uid `peer`, recorded in the
/// audit log as `uid N`: the kernel's word, not a name the client claims.
fn dispatch(inner: &Arc<Inner>, req: Request, peer: u32) -> Result<Reply, Failure> {
    let store = Store::acting_on(inner.clone(), &format!("uid {peer}"));
    let result = match req {
        Request::Hello => Ok(Reply::Hello {
            pid: std::process::id(),
        }),
        Request::Create { new, now } => store.create(&new, now).map(Reply::Created),
        Request::List {
            user,
            include_expired,
            now,
        } => store
            .list(user.as_deref(), include_expired, now)
            .map(Reply::Tokens),
        Request::Get(id) => store.get(id).map(Reply::Token),
        Request::Descendants(id) => store.descendants(id).map(Reply::Tokens),
        Request::Find { digest, now } => store.find(&digest, now).map(Reply::Found),
        Request::Revoke(id) => store.revoke(id).map(Reply::Token),
        Request::RevokeUser(user) => store.revoke_user(&user).map(|n| Reply::Count(n as u64)),
        Request::Prune(now) => store.prune(now).map(|n| Reply::Count(n as u64)),
        Request::Rotate { id, rotation, now } => {
            store.rotate(id, &rotation, now).map(Reply::Created)
        }
        Request::GetPrefixes => store.token_prefixes().map(Reply::Prefixes),
        Request::SetPrefix(prefix) => store
            .set_prefix(prefix)
            .and_then(|()| store.token_prefixes())
            .map(Reply::Prefixes),
        Request::GetPermissions => store
            .permissions()
            .map(|c| Reply::Permissions(c.iter().cloned().collect())),
        Request::DefinePermissions(defs) => store
            .define_permissions(&defs)
            .map(|changed| Reply::Count(u64::from(changed))),
        Request::RemovePermission { name, force } => {
            store.remove_permission(&name, force).map(Reply::Removal)
        }
        Request::Disable(id) => store.disable(id).map(|n| Reply::Count(n as u64)),
        Request::Enable(id) => store.enable(id).map(|n| Reply::Count(n as u64)),
        Request::GetPolicy => store.policy().map(Reply::Policy),
        Request::SetPolicy(policy) => store
            .set_policy(policy)
            .and_then(|()| store.policy())
            .map(Reply::Policy),
        Request::Audit { since, user } => store.audit(since, user.as_deref()).map(Reply::Audit),
        Request::Deliveries => store.deliveries().map(Reply::Deliveries),
        Request::Resend { sink, seq } => store
            .resend_event(&sink, seq)
            .map(|found| Reply::Count(u64::from(found))),
    };
    result.map_err(|e| match e {
        StoreError::NotFound(id) => Failure::NotFound(id),
        e => Failure::Message(crate::error::chain(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_user_or_root_may_connect() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(1000, 0));
    }
}
