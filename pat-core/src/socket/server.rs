//! The admin socket's server side: a thread in the process that holds the
//! store, answering admin operations for `pat-cli`.

use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use super::protocol::{self, Failure, Reply, Request};
use crate::admin::Admin as _;
use crate::error::StoreError;
use crate::store::Inner;

/// How long a connection may take to send a request or read a reply.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are turned away.
const MAX_CONNECTIONS: usize = 16;
/// Upper bound on how long stopping waits for the accept loop to notice.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Whether a peer may use the socket: the same user as the service, or root.
pub(crate) fn peer_allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == own_uid || peer_uid == 0
}

/// A running admin socket. Dropping it stops the thread and removes the file.
#[derive(Debug)]
pub(crate) struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `path` (mode 0600) and serves `inner` from a background thread.
    ///
    /// An existing socket file is replaced only if nothing answers on it (a
    /// crashed process left it); a live socket or a file of another kind is
    /// never touched.
    pub(crate) fn start(path: &Path, inner: Weak<Inner>) -> io::Result<AdminServer> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("`{}` exists and is not a socket", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another process serves the admin socket `{}`",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("pat-admin-socket".into())
                .spawn(move || accept_loop(&listener, &inner, &stop))?
        };
        Ok(AdminServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop now rather than at its next poll timeout.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, inner: &Weak<Inner>, stop: &AtomicBool) {
    let own_uid = rustix::process::geteuid().as_raw();
    let active = Arc::new(AtomicUsize::new(0));
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
        match crate::sys::peer_uid(&stream) {
            Ok(uid) if peer_allowed(uid, own_uid) => {}
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
        }
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            refuse(
                &stream,
                "busy: too many admin connections; retry".to_owned(),
            );
            continue;
        }
        let inner = inner.clone();
        let active_for_thread = active.clone();
        let spawned = thread::Builder::new()
            .name("pat-admin-conn".into())
            .spawn(move || {
                serve(&stream, &inner);
                active_for_thread.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(error = %e, "admin socket: cannot spawn a connection thread");
        }
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
fn serve(stream: &UnixStream, inner: &Weak<Inner>) {
    if stream.set_read_timeout(Some(IO_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IO_TIMEOUT)).is_err()
    {
        return;
    }
    let mut io = stream;
    loop {
        let body = match protocol::read_frame(&mut io, protocol::MAX_REQUEST) {
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
        let (reply, keep_going) = match Request::decode(&body) {
            Err(msg) => (Err(Failure::Message(format!("bad request: {msg}"))), false),
            Ok(req) => match inner.upgrade() {
                Some(inner) => (dispatch(&inner, req), true),
                None => (
                    Err(Failure::Message("the store is closing".to_owned())),
                    false,
                ),
            },
        };
        if protocol::write_frame(&mut io, &protocol::encode_reply(&reply)).is_err() || !keep_going {
            return;
        }
    }
}

fn dispatch(inner: &Inner, req: Request) -> Result<Reply, Failure> {
    let result = match req {
        Request::Hello => Ok(Reply::Hello {
            pid: std::process::id(),
        }),
        Request::Create { new, now } => inner.create(&new, now).map(Reply::Created),
        Request::List {
            user,
            include_expired,
            now,
        } => inner
            .list(user.as_deref(), include_expired, now)
            .map(Reply::Tokens),
        Request::Get(id) => inner.get(id).map(Reply::Token),
        Request::Revoke(id) => inner.revoke(id).map(Reply::Token),
        Request::RevokeUser(user) => inner.revoke_user(&user).map(|n| Reply::Count(n as u64)),
        Request::Prune(now) => inner.prune(now).map(|n| Reply::Count(n as u64)),
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
