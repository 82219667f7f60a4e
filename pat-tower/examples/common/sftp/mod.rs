//! The reference servers' SFTP share (`--sftp-addr`): the WebDAV share's
//! files over SSH, for a user logging in with their name and a token as the
//! password. Included by both servers with `#[path]`.
//!
//! - The login is pat-core's [`Logins`]: the Basic decision, and a limit on
//!   failed logins per address (past it, refused unchecked). A connection
//!   may fail three times, each refusal answered after half a second, and
//!   is then dropped. The log says why a login failed, never the password.
//! - Every SFTP request checks the token again ([`Logins::recheck`], a cache
//!   hit): once it is revoked, expired or rotated away, the request is
//!   refused and the connection closed.
//! - Scopes are the WebDAV share's rules ([`Share::allows`], pat-core's
//!   `Scopes::allow_dav`) on the same node ids: a read is `GET`, a write,
//!   `mkdir`, `remove` or `rmdir` is `PUT`/`MKCOL`/`DELETE`, a listing or a
//!   `stat` is `PROPFIND` (the way to a scoped folder is shown, nothing
//!   else), a rename is `MOVE` (`rw` on the source, `w` on the
//!   destination's folder). Node ids live in the files' extended
//!   attributes, so a file renamed here keeps its id for WebDAV.
//! - Symbolic links are neither listed nor followed; `SYMLINK`,
//!   `READLINK`, `hardlink@openssh.com` and a `SETSTAT` of mode or owner
//!   are refused (modes asked for by `OPEN` and `MKDIR` are ignored). Only
//!   the `sftp` subsystem is served: no shell, no commands, no forwarding.
//!
//! - Bounds, so that no client takes the process's file descriptors (its
//!   HTTP side needs them too): 128 connections, of which 32 may be
//!   logging in, each given 30 s to do it (OpenSSH's `MaxStartups` and
//!   `LoginGraceTime`); 4 SFTP sessions per connection, 64 open files per
//!   session and 2,048 in the server. Past a bound, a new connection is
//!   closed at once and a new session or file refused.
//! - A token learns nothing outside its scopes: the scope check comes
//!   before any look at the path (so not even that a link is there), and
//!   a handle opened for writing does not tell a write-only token the
//!   file's size or times.
//!
//! File operations are plain blocking calls on the runtime's threads: a
//! reference server, not a file server.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pat_core::{Identity, Logins};
use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};

use super::dav::Share;

mod session;
use session::SftpSession;

/// Failed logins one connection may make before it is dropped.
const ATTEMPTS_PER_CONNECTION: usize = 3;
/// How long a refused login takes to answer.
const REJECTION_TIME: Duration = Duration::from_millis(500);
/// SFTP sessions (channels) per connection, open or starting.
const MAX_SESSIONS: usize = 4;
/// Open files and folders in the whole server: whatever the connections
/// do, the process keeps file descriptors for its HTTP side.
const MAX_SERVER_HANDLES: usize = 2048;
/// SSH connections in the whole server; past it a new one is closed at once.
const MAX_CONNECTIONS: usize = 128;
/// Connections still logging in; past it a new one is closed at once
/// (OpenSSH's `MaxStartups`).
const MAX_LOGGING_IN: usize = 32;
/// How long a connection may take to log in (OpenSSH's `LoginGraceTime`).
const LOGIN_GRACE: Duration = Duration::from_secs(30);

/// The SFTP server: a bound socket, its SSH configuration, and the share.
pub(crate) struct SftpServer {
    listener: tokio::net::TcpListener,
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
}

/// What every connection of the server uses.
struct Shared {
    share: Share,
    logins: Logins,
    /// Open connections, connections logging in, open handles.
    connections: Arc<Counter>,
    logging_in: Arc<Counter>,
    handles: Arc<Counter>,
}

/// A count with a limit, taken by [`Slot`]s.
struct Counter {
    taken: AtomicUsize,
    limit: usize,
}

impl Counter {
    fn new(limit: usize) -> Counter {
        Counter {
            taken: AtomicUsize::new(0),
            limit,
        }
    }

    /// One of it, or `None` at the limit.
    fn take(self: &Arc<Counter>) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

/// One taken from a [`Counter`], given back when dropped.
struct Slot(Arc<Counter>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SftpServer {
    /// Binds `addr`, serving `share` to logins checked by `logins`, as the
    /// host `key`.
    pub(crate) async fn bind(
        addr: SocketAddr,
        key: PrivateKey,
        share: Share,
        logins: Logins,
    ) -> io::Result<SftpServer> {
        let config = russh::server::Config {
            methods: methods(),
            auth_rejection_time: REJECTION_TIME,
            // OpenSSH first asks with "none" to learn the methods.
            auth_rejection_time_initial: Some(Duration::ZERO),
            // russh counts the "none" probe among the attempts.
            max_auth_attempts: ATTEMPTS_PER_CONNECTION + 1,
            inactivity_timeout: Some(Duration::from_secs(600)),
            keys: vec![key],
            ..Default::default()
        };
        Ok(SftpServer {
            listener: tokio::net::TcpListener::bind(addr).await?,
            config: Arc::new(config),
            shared: Arc::new(Shared {
                share,
                logins,
                connections: Arc::new(Counter::new(MAX_CONNECTIONS)),
                logging_in: Arc::new(Counter::new(MAX_LOGGING_IN)),
                handles: Arc::new(Counter::new(MAX_SERVER_HANDLES)),
            }),
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until the process ends.
    pub(crate) async fn run(self) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "sftp: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Past either limit the socket is closed at once: a flood of
            // idle connections cannot take the process's descriptors.
            let (Some(open), Some(logging_in)) = (
                self.shared.connections.take(),
                self.shared.logging_in.take(),
            ) else {
                tracing::debug!(%peer, "sftp: too many connections; closed");
                continue;
            };
            let logged_in = Arc::new(tokio::sync::Notify::new());
            let connection = Connection {
                shared: self.shared.clone(),
                peer,
                identity: None,
                channels: HashMap::new(),
                sessions: Arc::new(Counter::new(MAX_SESSIONS)),
                logging_in: Some(logging_in),
                logged_in: logged_in.clone(),
            };
            let config = self.config.clone();
            tokio::spawn(async move {
                let _open = open;
                serve_connection(config, socket, connection, peer, logged_in).await;
            });
        }
    }
}

/// One connection: the handshake and the login within [`LOGIN_GRACE`],
/// then the session until either side ends it.
async fn serve_connection(
    config: Arc<russh::server::Config>,
    socket: tokio::net::TcpStream,
    connection: Connection,
    peer: SocketAddr,
    logged_in: Arc<tokio::sync::Notify>,
) {
    let grace = tokio::time::sleep(LOGIN_GRACE);
    tokio::pin!(grace);
    let started = tokio::select! {
        started = russh::server::run_stream(config, socket, connection) => started,
        () = &mut grace => {
            tracing::debug!(%peer, "sftp: no handshake within the login grace time; closed");
            return;
        }
    };
    let mut session = match started {
        Ok(session) => session,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "sftp: handshake failed");
            return;
        }
    };
    let ended = tokio::select! {
        ended = &mut session => Some(ended),
        () = logged_in.notified() => None,
        () = &mut grace => {
            tracing::debug!(%peer, "sftp: no login within the login grace time; closed");
            let _ = session
                .handle()
                .disconnect(
                    russh::Disconnect::ByApplication,
                    "login grace time is over".into(),
                    "en".into(),
                )
                .await;
            return;
        }
    };
    let ended = match ended {
        Some(ended) => ended,
        None => session.await,
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "sftp: connection ended with an error");
    }
}

/// The SSH login methods: a password, or a keyboard-interactive prompt for
/// one.
fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::Password, MethodKind::KeyboardInteractive][..])
}

/// The host key at `path` (OpenSSH format), created (Ed25519, mode 0600) if
/// missing. Refused, with the fix, when it is a link, another user's, or
/// readable by others: whoever reads it can pass for this server.
pub(crate) fn host_key(path: &Path) -> Result<PrivateKey, String> {
    use std::io::{Read as _, Write as _};
    let shown = pat_core::printable(&path.to_string_lossy()).into_owned();
    let problem = |what: String| format!("the SFTP host key `{shown}` {what}");
    let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    match OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(path)
    {
        Ok(mut file) => {
            let meta = file
                .metadata()
                .map_err(|e| problem(format!("cannot be read: {e}")))?;
            pat_core::trust::check_private_file(&meta)
                .map_err(|e| problem(format!("is not trusted: {e}")))?;
            let mut text = zeroize::Zeroizing::new(String::new());
            file.read_to_string(&mut text)
                .map_err(|e| problem(format!("cannot be read: {e}")))?;
            PrivateKey::from_openssh(text.as_bytes())
                .map_err(|e| problem(format!("is not an OpenSSH private key: {e}")))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let seed = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
            let key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
                &seed,
            ));
            let text = key
                .to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .map_err(|e| problem(format!("cannot be encoded: {e}")))?;
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(nofollow)
                .open(path)
                .map_err(|e| problem(format!("cannot be created: {e}")))?;
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| problem(format!("cannot be written: {e}")))?;
            Ok(key)
        }
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => Err(problem(
            "is a symbolic link, which is not followed: point at the real file".into(),
        )),
        Err(e) => Err(problem(format!("cannot be opened: {e}"))),
    }
}

/// One SSH connection: its login, then its SFTP channels.
struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    identity: Option<Identity>,
    /// Session channels opened, waiting for their subsystem request.
    channels: HashMap<ChannelId, (Channel<Msg>, Slot)>,
    /// SFTP sessions of this connection, open or starting.
    sessions: Arc<Counter>,
    /// Held until the login succeeds.
    logging_in: Option<Slot>,
    logged_in: Arc<tokio::sync::Notify>,
}

impl Connection {
    async fn login(&mut self, user: &str, password: &str) -> Auth {
        let checked = self
            .shared
            .logins
            .check(user, password, Some(self.peer.ip()))
            .await;
        match checked {
            Ok(identity) => {
                self.identity = Some(identity);
                self.logging_in = None;
                self.logged_in.notify_one();
                Auth::Accept
            }
            // Logged by `Logins::check`; the client learns nothing more,
            // and may try again (until `max_auth_attempts`).
            Err(_) => Auth::Reject {
                proceed_with_methods: Some(methods()),
                partial_success: false,
            },
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login(user, password).await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(mut answers) = response else {
            return Ok(Auth::Partial {
                name: "".into(),
                instructions: "".into(),
                prompts: vec![("Token: ".into(), false)].into(),
            });
        };
        let answer = answers.next().unwrap_or_default();
        let password = String::from_utf8_lossy(&answer).into_owned();
        let password = zeroize::Zeroizing::new(password);
        Ok(self.login(user, &password).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Dropping `reply` refuses the channel.
        if let Some(slot) = self.sessions.take() {
            self.channels.insert(channel.id(), (channel, slot));
            reply.accept().await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let channel = self.channels.remove(&channel_id);
        match (name, channel, &self.identity) {
            ("sftp", Some((channel, slot)), Some(identity)) => {
                session.channel_success(channel_id)?;
                let sftp = SftpSession::new(
                    self.shared.clone(),
                    identity.clone(),
                    session.handle(),
                    slot,
                );
                russh_sftp::server::run(channel.into_stream(), sftp).await;
            }
            _ => session.channel_failure(channel_id)?,
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)
    }
}
