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

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pat_core::{DavAccess, Identity, LoginRefused, Logins};
use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use russh_sftp::protocol::{
    Attrs, Data, File as Entry, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode,
    Version,
};
use russh_sftp::server::StatusReply;

use super::dav::Share;

/// Failed logins one connection may make before it is dropped.
const ATTEMPTS_PER_CONNECTION: usize = 3;
/// How long a refused login takes to answer.
const REJECTION_TIME: Duration = Duration::from_millis(500);
/// Open files and folders per SFTP session.
const MAX_HANDLES: usize = 64;
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
/// The most bytes one `READ` answers.
const MAX_READ: u32 = 64 * 1024;
/// Entries per `READDIR` answer.
const DIR_BATCH: usize = 100;

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
                let sftp = SftpSession {
                    shared: self.shared.clone(),
                    identity: identity.clone(),
                    session: session.handle(),
                    handles: HashMap::new(),
                    next_handle: 0,
                    _slot: slot,
                };
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

/// An open file or folder of an SFTP session, with its place among the
/// server's handles.
enum Open {
    File {
        file: File,
        write: bool,
        rel: PathBuf,
        _slot: Slot,
    },
    Dir {
        entries: VecDeque<Entry>,
        _slot: Slot,
    },
}

/// One SFTP session: who logged in, and what they have open.
struct SftpSession {
    shared: Arc<Shared>,
    identity: Identity,
    session: russh::server::Handle,
    handles: HashMap<String, Open>,
    next_handle: u64,
    /// Its place among the connection's sessions.
    _slot: Slot,
}

fn refuse(code: StatusCode, why: &str) -> StatusReply {
    StatusReply::new(code).with_message(why)
}

fn denied() -> StatusReply {
    refuse(
        StatusCode::PermissionDenied,
        "the token's scopes do not allow it",
    )
}

fn no_links() -> StatusReply {
    refuse(
        StatusCode::PermissionDenied,
        "symbolic links are not followed",
    )
}

/// An I/O error as the client sees it.
fn failed(e: &io::Error) -> StatusReply {
    match e.kind() {
        io::ErrorKind::NotFound => StatusCode::NoSuchFile.into(),
        io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied.into(),
        _ => refuse(StatusCode::Failure, &e.to_string()),
    }
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

/// `path` as a path relative to the share's root: the session starts at
/// `/`, the root, and `..` never leaves it. `None` for a NUL.
fn share_path(path: &str) -> Option<PathBuf> {
    if path.contains('\0') {
        return None;
    }
    let mut rel = PathBuf::new();
    for part in Path::new(path).components() {
        match part {
            Component::Normal(p) => rel.push(p),
            Component::ParentDir => {
                rel.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(rel)
}

/// How the client names `rel`.
fn shown(rel: &Path) -> String {
    format!("/{}", rel.to_string_lossy())
}

/// The attributes of a file, built here: russh-sftp's own conversion
/// panics on a time its calendar cannot show (a host can set one). Times
/// are clamped to the protocol's `u32` seconds.
fn attributes(meta: &std::fs::Metadata) -> FileAttributes {
    use std::os::unix::fs::MetadataExt as _;
    let secs = |t: i64| u32::try_from(t.max(0)).unwrap_or(u32::MAX);
    FileAttributes {
        size: Some(meta.size()),
        uid: Some(meta.uid()),
        user: None,
        gid: Some(meta.gid()),
        group: None,
        permissions: Some(meta.mode()),
        atime: Some(secs(meta.atime())),
        mtime: Some(secs(meta.mtime())),
    }
}

impl SftpSession {
    /// Every request first: the token is checked again, and once refused
    /// the connection is closed.
    async fn authorize(&mut self) -> Result<(), StatusReply> {
        match self.shared.logins.recheck(&self.identity).await {
            Ok(identity) => {
                self.identity = identity;
                Ok(())
            }
            Err(refused) => {
                let handle = self.session.clone();
                tokio::spawn(async move {
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "the token was refused".into(),
                            "en".into(),
                        )
                        .await;
                });
                let code = match refused {
                    LoginRefused::Unavailable => StatusCode::Failure,
                    _ => StatusCode::PermissionDenied,
                };
                Err(refuse(code, "the token was refused"))
            }
        }
    }

    /// The share path of `path`, after the token's check. Nothing is
    /// looked up yet: [`allow`](Self::allow) comes first, so that a token
    /// learns nothing (not even that a link is there) outside its scopes.
    async fn path(&mut self, path: &str) -> Result<PathBuf, StatusReply> {
        self.authorize().await?;
        share_path(path).ok_or_else(|| refuse(StatusCode::BadMessage, "invalid path"))
    }

    /// [`path`](Self::path), but not the root (which is not removed,
    /// renamed or opened as a file).
    async fn below_root(&mut self, path: &str) -> Result<PathBuf, StatusReply> {
        let rel = self.path(path).await?;
        if rel.as_os_str().is_empty() {
            return Err(refuse(StatusCode::PermissionDenied, "the share's root"));
        }
        Ok(rel)
    }

    /// Whether the token may do `access` to `rel` (see `Share::allows`),
    /// then whether `rel` is free of links: every operation on a path asks
    /// this before it touches the path.
    fn allow(&self, access: DavAccess, rel: &Path, to: Option<&Path>) -> Result<(), StatusReply> {
        if !self.shared.share.allows(&self.identity, access, rel, to) {
            return Err(denied());
        }
        if self.shared.share.has_link(rel) {
            return Err(no_links());
        }
        Ok(())
    }

    fn full(&self, rel: &Path) -> PathBuf {
        self.shared.share.root().join(rel)
    }

    /// A place for one more open file or folder.
    fn slot(&self) -> Result<Slot, StatusReply> {
        let too_many = || refuse(StatusCode::Failure, "too many open files");
        if self.handles.len() >= MAX_HANDLES {
            return Err(too_many());
        }
        self.shared.handles.take().ok_or_else(too_many)
    }

    fn add(&mut self, open: Open) -> String {
        self.next_handle += 1;
        let handle = self.next_handle.to_string();
        self.handles.insert(handle.clone(), open);
        handle
    }

    fn stat(&self, rel: &Path) -> Result<FileAttributes, StatusReply> {
        self.allow(DavAccess::List, rel, None)?;
        let meta = std::fs::symlink_metadata(self.full(rel)).map_err(|e| failed(&e))?;
        Ok(attributes(&meta))
    }

    /// Sets what `attrs` asks of the file at `full`, or of the open `file`.
    fn set(
        &self,
        full: &Path,
        file: Option<&File>,
        attrs: &FileAttributes,
    ) -> Result<(), StatusReply> {
        if attrs.permissions.is_some() || attrs.uid.is_some() || attrs.gid.is_some() {
            return Err(refuse(
                StatusCode::PermissionDenied,
                "changing a file's mode or owner is refused",
            ));
        }
        let opened;
        let file = match file {
            Some(file) => file,
            None => {
                let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
                let write = attrs.size.is_some();
                opened = OpenOptions::new()
                    .read(!write)
                    .write(write)
                    .custom_flags(nofollow)
                    .open(full)
                    .map_err(|e| failed(&e))?;
                &opened
            }
        };
        if let Some(size) = attrs.size {
            file.set_len(size).map_err(|e| failed(&e))?;
        }
        let mut times = std::fs::FileTimes::new();
        let at = |secs: u32| std::time::UNIX_EPOCH + Duration::from_secs(secs.into());
        if let Some(atime) = attrs.atime {
            times = times.set_accessed(at(atime));
        }
        if let Some(mtime) = attrs.mtime {
            times = times.set_modified(at(mtime));
        }
        if attrs.atime.is_some() || attrs.mtime.is_some() {
            file.set_times(times).map_err(|e| failed(&e))?;
        }
        Ok(())
    }

    /// The visible entries of the folder `rel`.
    fn list(&self, rel: &Path) -> Result<VecDeque<Entry>, StatusReply> {
        let mut entries = VecDeque::new();
        for entry in std::fs::read_dir(self.full(rel)).map_err(|e| failed(&e))? {
            let entry = entry.map_err(|e| failed(&e))?;
            // A name the protocol's strings cannot carry could not be
            // named back: left out.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let child = rel.join(&name);
            if !self.shared.share.shows(&self.identity, &child) {
                continue;
            }
            if let Ok(meta) = std::fs::symlink_metadata(entry.path()) {
                entries.push_back(Entry::new(name, attributes(&meta)));
            }
        }
        Ok(entries)
    }
}

impl russh_sftp::server::Handler for SftpSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> StatusReply {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, StatusReply> {
        self.authorize().await?;
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, StatusReply> {
        let rel = self.path(&path).await?;
        Ok(Name {
            id,
            files: vec![Entry::dummy(shown(&rel))],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let rel = self.path(&path).await?;
        Ok(Attrs {
            id,
            attrs: SftpSession::stat(self, &rel)?,
        })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, StatusReply> {
        let rel = self.path(&path).await?;
        Ok(Attrs {
            id,
            attrs: SftpSession::stat(self, &rel)?,
        })
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, StatusReply> {
        self.authorize().await?;
        match self.handles.get(&handle) {
            Some(Open::File { file, rel, .. }) => {
                // As `stat` would: a write-only token does not learn a
                // file's size or times from a handle it writes with.
                self.allow(DavAccess::List, rel, None)?;
                let meta = file.metadata().map_err(|e| failed(&e))?;
                Ok(Attrs {
                    id,
                    attrs: attributes(&meta),
                })
            }
            _ => Err(refuse(StatusCode::Failure, "no such handle")),
        }
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, StatusReply> {
        let rel = self.below_root(&filename).await?;
        let changes =
            OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let write = pflags.intersects(changes);
        let read = pflags.contains(OpenFlags::READ) || !write;
        if read {
            self.allow(DavAccess::Read, &rel, None)?;
        }
        if write {
            self.allow(DavAccess::Write, &rel, None)?;
        }
        // Before the file is opened: a descriptor is not taken past the
        // limits.
        let slot = self.slot()?;
        let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        let file = OpenOptions::new()
            .read(read)
            .write(pflags.contains(OpenFlags::WRITE))
            .append(pflags.contains(OpenFlags::APPEND))
            .create(pflags.contains(OpenFlags::CREATE) && !pflags.contains(OpenFlags::EXCLUDE))
            .create_new(pflags.contains(OpenFlags::CREATE) && pflags.contains(OpenFlags::EXCLUDE))
            .truncate(pflags.contains(OpenFlags::TRUNCATE))
            .custom_flags(nofollow)
            .open(self.full(&rel))
            .map_err(|e| failed(&e))?;
        if file.metadata().is_ok_and(|m| !m.is_file()) {
            return Err(refuse(StatusCode::Failure, "not a regular file"));
        }
        let handle = self.add(Open::File {
            file,
            write,
            rel,
            _slot: slot,
        });
        Ok(Handle { id, handle })
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, StatusReply> {
        self.authorize().await?;
        let Some(Open::File { file, .. }) = self.handles.get(&handle) else {
            return Err(refuse(StatusCode::Failure, "no such handle"));
        };
        let mut data = vec![0; len.min(MAX_READ) as usize];
        let n = file.read_at(&mut data, offset).map_err(|e| failed(&e))?;
        if n == 0 && !data.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        data.truncate(n);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, StatusReply> {
        self.authorize().await?;
        match self.handles.get(&handle) {
            Some(Open::File {
                file, write: true, ..
            }) => {
                file.write_all_at(&data, offset).map_err(|e| failed(&e))?;
                Ok(ok(id))
            }
            Some(Open::File { .. }) => Err(refuse(
                StatusCode::PermissionDenied,
                "the file was not opened for writing",
            )),
            _ => Err(refuse(StatusCode::Failure, "no such handle")),
        }
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, StatusReply> {
        // Released whatever the token's fate.
        let closed = self.handles.remove(&handle);
        self.authorize().await?;
        match closed {
            Some(_) => Ok(ok(id)),
            None => Err(refuse(StatusCode::Failure, "no such handle")),
        }
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, StatusReply> {
        let rel = self.path(&path).await?;
        self.allow(DavAccess::List, &rel, None)?;
        let slot = self.slot()?;
        let entries = self.list(&rel)?;
        let handle = self.add(Open::Dir {
            entries,
            _slot: slot,
        });
        Ok(Handle { id, handle })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, StatusReply> {
        self.authorize().await?;
        let Some(Open::Dir { entries, .. }) = self.handles.get_mut(&handle) else {
            return Err(refuse(StatusCode::Failure, "no such handle"));
        };
        if entries.is_empty() {
            return Err(StatusCode::Eof.into());
        }
        let n = entries.len().min(DIR_BATCH);
        Ok(Name {
            id,
            files: entries.drain(..n).collect(),
        })
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        let rel = self.below_root(&path).await?;
        self.allow(DavAccess::Write, &rel, None)?;
        std::fs::create_dir(self.full(&rel)).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn rmdir(&mut self, id: u32, path: String) -> Result<Status, StatusReply> {
        let rel = self.below_root(&path).await?;
        self.allow(DavAccess::Write, &rel, None)?;
        std::fs::remove_dir(self.full(&rel)).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, StatusReply> {
        let rel = self.below_root(&filename).await?;
        self.allow(DavAccess::Write, &rel, None)?;
        let full = self.full(&rel);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| failed(&e))?;
        if meta.is_dir() {
            return Err(refuse(StatusCode::Failure, "a folder: use rmdir"));
        }
        std::fs::remove_file(full).map_err(|e| failed(&e))?;
        Ok(ok(id))
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, StatusReply> {
        let from = self.below_root(&oldpath).await?;
        let to = self.below_root(&newpath).await?;
        let parent = to.parent().unwrap_or(Path::new(""));
        self.allow(DavAccess::Move, &from, Some(parent))?;
        if self.shared.share.has_link(&to) {
            return Err(no_links());
        }
        let (from_full, to_full) = (self.full(&from), self.full(&to));
        std::fs::symlink_metadata(&from_full).map_err(|e| failed(&e))?;
        // SFTP's rename does not replace (OpenSSH's server alike).
        if std::fs::symlink_metadata(&to_full).is_ok() {
            return Err(refuse(StatusCode::Failure, "the destination exists"));
        }
        std::fs::rename(&from_full, &to_full).map_err(|e| failed(&e))?;
        self.shared.share.moved(&from, &to);
        Ok(ok(id))
    }

    async fn setstat(
        &mut self,
        id: u32,
        path: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        let rel = self.below_root(&path).await?;
        self.allow(DavAccess::Write, &rel, None)?;
        self.set(&self.full(&rel), None, &attrs)?;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        attrs: FileAttributes,
    ) -> Result<Status, StatusReply> {
        self.authorize().await?;
        match self.handles.get(&handle) {
            Some(Open::File {
                file, write: true, ..
            }) => {
                self.set(Path::new(""), Some(file), &attrs)?;
                Ok(ok(id))
            }
            Some(_) => Err(refuse(
                StatusCode::PermissionDenied,
                "the file was not opened for writing",
            )),
            None => Err(refuse(StatusCode::Failure, "no such handle")),
        }
    }

    async fn readlink(&mut self, _id: u32, _path: String) -> Result<Name, StatusReply> {
        self.authorize().await?;
        Err(no_links())
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, StatusReply> {
        self.authorize().await?;
        Err(refuse(
            StatusCode::PermissionDenied,
            "symbolic links are not part of the share",
        ))
    }

    async fn extended(
        &mut self,
        _id: u32,
        request: String,
        _data: Vec<u8>,
    ) -> Result<russh_sftp::protocol::Packet, StatusReply> {
        self.authorize().await?;
        if request == "hardlink@openssh.com" {
            return Err(refuse(
                StatusCode::PermissionDenied,
                "hard links are refused",
            ));
        }
        Err(StatusCode::OpUnsupported.into())
    }
}
