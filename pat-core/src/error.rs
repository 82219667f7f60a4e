//! Errors, one enum per operation, all convertible into [`Error`].

use std::fmt;
use std::path::PathBuf;

use crate::model::text::{Echo, Shown};
use crate::{Timestamp, TokenId};

/// A presented token is not well formed.
///
/// Messages never repeat the token: it may be a real secret with a typo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseTokenError {
    /// The value does not start with one of the store's prefixes and `_`
    /// (`pat_` unless the store was given another): it is some other kind
    /// of secret (another auth layer's, another store's) and not ours to
    /// judge.
    #[error("not a personal access token: it does not start with this service's token prefix")]
    Foreign,
    /// Right prefix, wrong length: truncated or run into other text.
    #[error("token has {found} characters after its prefix, expected {expected}")]
    Length {
        /// Characters after the prefix.
        found: usize,
        /// Characters a token has after the prefix.
        expected: usize,
    },
    /// A character outside `[A-Za-z0-9]` after the prefix.
    #[error("token contains a character that is not an ASCII letter or digit")]
    Charset,
    /// The checksum does not match the body: mistyped or altered.
    #[error("token checksum does not match: the token was mistyped or altered")]
    Checksum,
}

impl ParseTokenError {
    /// Whether the value is not ours at all (no `pat_` prefix), as opposed to
    /// a damaged token.
    pub fn is_foreign(&self) -> bool {
        matches!(self, ParseTokenError::Foreign)
    }
}

/// A token id is not 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is not a token id: ids are 16 hex digits, as `pat-cli token list` shows",
    if crate::model::text::holds_token(input) { format!("a token (`{}`)", Echo(input)) } else { format!("`{}`", Echo(input)) }
)]
#[non_exhaustive]
pub struct ParseTokenIdError {
    /// What was given.
    pub input: String,
}

/// A scope is not `node:<uuid>:<perm>` (or, where named permissions are
/// taken too, a [`Permission`](crate::Permission)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseScopeError {
    /// Fewer than three `:`-separated parts.
    #[error("scope `{}` is not of the form node:<uuid>:<perm>", Echo(scope))]
    Shape {
        /// The whole scope as given.
        scope: String,
    },
    /// The first part is not `node`.
    #[error(
        "scope `{}`: `{}` is not a scope kind (only `node` is)",
        Echo(scope),
        Echo(kind)
    )]
    Kind {
        /// The whole scope as given.
        scope: String,
        /// The unknown kind.
        kind: String,
    },
    /// The node is not a hyphenated UUID.
    #[error(
        "scope `{}`: `{}` is not a UUID (expected 8-4-4-4-12 hex digits)",
        Echo(scope),
        Echo(uuid)
    )]
    Uuid {
        /// The whole scope as given.
        scope: String,
        /// The part that should be a UUID.
        uuid: String,
    },
    /// The permission is not `r`, `w`, `rw` or `wr`.
    #[error(
        "scope `{}`: `{}` is not a permission (expected r, w or rw)",
        Echo(scope),
        Echo(perm)
    )]
    Perm {
        /// The whole scope as given.
        scope: String,
        /// The part that should be a permission.
        perm: String,
    },
    /// Not a node scope, and not a permission name either.
    #[error("scope {0}")]
    Permission(crate::model::permission::ParsePermissionError),
}

/// A duration is not a positive number of seconds with a unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{}`: {reason} (expected numbers with units s, m, h or d, \
     largest first, such as 30s, 10m, 24h, 7d or 1h30m)",
    Echo(input)
)]
#[non_exhaustive]
pub struct ParseDurationError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A token could not be created from the request as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NewTokenError {
    /// The user name is unusable.
    #[error("invalid user `{}`: {reason}", Echo(user))]
    User {
        /// The user name as given.
        user: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The label is unusable.
    #[error("invalid label: {reason}")]
    Label {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The created_by name is unusable.
    #[error("invalid creator name: {reason}")]
    CreatedBy {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A duration is zero or not a whole number of seconds.
    #[error("invalid {what}: it must be a positive whole number of seconds")]
    Duration {
        /// Which duration (`expiry`, `auto-refresh window`, `max lifetime`).
        what: &'static str,
    },
    /// The token would expire after the end of year 9999.
    #[error("the token would expire after 9999-12-31T23:59:59Z")]
    TooLate,
    /// The maximum lifetime of a sliding token is shorter than its window.
    #[error("max lifetime ({max_lifetime}) is shorter than the auto-refresh window ({window})")]
    CapBelowWindow {
        /// The window, formatted.
        window: String,
        /// The cap, formatted.
        max_lifetime: String,
    },
    /// More scopes than a token may carry
    /// ([`MAX_SCOPES`](crate::MAX_SCOPES)).
    #[error("{count} scopes: a token carries at most {max}")]
    TooManyScopes {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More address networks than [`MAX_NETWORKS`](crate::MAX_NETWORKS).
    #[error("at most {max} networks may be given with allow-from, got {count}")]
    TooManyNetworks {
        /// How many were given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A use quota of 0 or over [`MAX_USES`](crate::MAX_USES).
    #[error("a use quota of {given}: give 1 to {max} uses")]
    MaxUses {
        /// What was given.
        given: u64,
        /// The limit.
        max: u32,
    },
}

/// Why a store file, its directory or its admin socket is not trusted: another
/// user could have planted it or could replace it. Each message says the fix,
/// and `Debug` shows the message (modes in octal), so an error returned from
/// `main` says what to do too.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Untrusted {
    /// The path is a symbolic link; links are not followed.
    #[error("it is a symbolic link, which is not followed: point at the real file")]
    Symlink,
    /// Not a regular file (or, for the admin socket, not a socket).
    #[error("it is not a {expected}")]
    Kind {
        /// What was expected: `regular file` or `socket`.
        expected: &'static str,
    },
    /// Owned by another user, who may have planted it.
    #[error(
        "it belongs to uid {owner}, not to uid {euid} running this process; if it is really \
         yours, `chown {euid}` it, otherwise remove it"
    )]
    Owner {
        /// The owner's uid.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// Other users may read or write it.
    #[error("its mode is {mode:04o}, open to other users: run `chmod 600` on it")]
    Mode {
        /// The permission bits found.
        mode: u32,
    },
    /// The directory belongs to another user, who could replace the file.
    #[error(
        "its directory `{}` belongs to uid {owner}, who could replace it: use a directory \
         owned by uid {euid} or root",
        Shown(dir)
    )]
    DirectoryOwner {
        /// The directory.
        dir: PathBuf,
        /// The directory's owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// The process serving the admin socket runs as another user.
    #[error(
        "the process serving it runs as uid {peer}, neither uid {euid} nor root: it may be \
         impersonating the service, so nothing was sent to it"
    )]
    Peer {
        /// The serving process's uid.
        peer: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// The directory is writable by others without the sticky bit, so they
    /// could replace the file.
    #[error(
        "its directory `{}` (mode {mode:04o}) is writable by other users without the sticky \
         bit, so they could replace it: use a private directory, or `chmod +t` this one",
        Shown(dir)
    )]
    DirectoryWritable {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Untrusted").field(&self.to_string()).finish()
    }
}

/// A store file could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The directory that should hold the store does not exist.
    #[error("store directory `{}` does not exist (create it first)", Shown(&.0))]
    MissingDirectory(PathBuf),
    /// Another process has the store open.
    #[error("store `{}` is in use by another process{}", Shown(path), holder_text(holder.as_ref()))]
    Locked {
        /// The store file.
        path: PathBuf,
        /// The process holding it, when the system says (Linux `/proc/locks`).
        holder: Option<Process>,
    },
    /// The admin socket could not be served (see
    /// [`StoreBuilder::admin_socket`](crate::StoreBuilder::admin_socket),
    /// which turns it off).
    #[error("cannot serve the admin socket `{}`", Shown(path))]
    AdminSocket {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer pat.
    #[error(
        "store `{}` has format version {found}, newer than this build reads (up to {supported}): upgrade pat",
        Shown(path)
    )]
    NewerFormat {
        /// The store file.
        path: PathBuf,
        /// The version found in the file.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// The file, its directory or its admin socket could be another user's:
    /// refused rather than trusted.
    #[error("refusing `{}`: {reason}", Shown(path))]
    Untrusted {
        /// The store file (or its admin socket).
        path: PathBuf,
        /// What is wrong, and the fix.
        reason: Untrusted,
    },
    /// The file exists but is empty: truncated, or never a store.
    #[error(
        "store `{}` is an empty file: it was truncated or is not a store; restore it from a \
         backup, or remove it to start an empty store",
        Shown(path)
    )]
    Empty {
        /// The store file.
        path: PathBuf,
    },
    /// The file is not a token store, or is damaged.
    #[error(
        "store `{}` is not a pat token store or is damaged: {detail}",
        Shown(path)
    )]
    NotAStore {
        /// The store file.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The database could not be reached or set up (feature `postgres`).
    #[error("cannot use the token database {database}")]
    Database {
        /// The database, as it may be shown (no password).
        database: String,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// The database holds a newer pat schema than this build reads.
    #[error(
        "the token database {database} has schema version {found}, newer than this build \
         reads (up to {supported}): upgrade pat"
    )]
    NewerSchema {
        /// The database, as it may be shown (no password).
        database: String,
        /// The version found.
        found: i64,
        /// The newest version this build reads.
        supported: i64,
    },
    /// The permissions the builder declared could not be written into the
    /// store's catalog (see `StoreBuilder::permissions`).
    #[error("cannot declare the service's permissions in the store's catalog")]
    Permissions(#[source] Box<StoreError>),
    /// The file could not be read or created.
    #[error("cannot open store `{}`", Shown(path))]
    Io {
        /// The store file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

fn holder_text(holder: Option<&Process>) -> String {
    holder.map_or_else(String::new, |p| format!(" ({p})"))
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No token has this id (never existed, revoked or pruned).
    #[error("no token with id {0}")]
    NotFound(TokenId),
    /// The request to create a token was invalid.
    #[error(transparent)]
    NewToken(#[from] NewTokenError),
    /// The store's policy refused the token (see [`Policy`](crate::Policy)).
    #[error(transparent)]
    Policy(#[from] crate::model::policy::PolicyViolation),
    /// The token would outgrow what made it (see [`crate::backend::authority`]).
    #[error(transparent)]
    Authority(#[from] crate::backend::authority::AuthorityViolation),
    /// The store cannot take that token prefix.
    #[error(transparent)]
    Prefix(#[from] crate::model::prefix::PrefixError),
    /// The catalog cannot take that change, or a token names a permission
    /// it lacks.
    #[error(transparent)]
    Catalog(#[from] crate::model::permission::CatalogError),
    /// See [`SuspensionError`].
    #[error(transparent)]
    Suspension(#[from] SuspensionError),
    /// A stored record could not be decoded.
    #[error("store is damaged: {0}")]
    Corrupt(String),
    /// The storage engine failed (I/O, disk full, ...).
    #[error("store I/O failed")]
    Storage(#[source] BackendError),
    /// The admin socket could not be reached or broke off.
    #[error("admin socket `{}`", Shown(path))]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The admin socket, or the process serving it, could be another user's:
    /// nothing was sent.
    #[error("refusing admin socket `{}`: {reason}", Shown(path))]
    Untrusted {
        /// The socket path.
        path: PathBuf,
        /// What is wrong.
        reason: Untrusted,
    },
    /// The service behind the admin socket reported an error; the message
    /// is what the store there said.
    #[error("{0}")]
    Remote(String),
    /// The backend cannot spend a use of a token's quota (it does not
    /// implement [`Verifier::spend`](crate::Verifier::spend)): a token with
    /// a quota is refused rather than let through uncounted.
    #[error("this backend keeps no use quotas")]
    NoQuotas,
    /// The backend keeps no webhook delivery state or expiry notices (it
    /// does not implement [`Admin::swap_delivery`](crate::Admin::swap_delivery)
    /// or [`Admin::record_notices`](crate::Admin::record_notices)).
    #[error("this backend keeps no webhook delivery state or expiry notices")]
    NoEventState,
    /// The backend's audit log entries have no places
    /// ([`AuditEntry::seq`](crate::AuditEntry::seq) is 0), so it has no
    /// event stream: a backend written before places were.
    #[error("this backend does not number its audit log (AuditEntry::seq), so it has no events")]
    Unnumbered,
    /// A webhook's name is empty, too long or holds a control character.
    #[error("{0}")]
    BadWebhook(String),
}

/// An opaque error of the storage engine, kept as the `source()` of
/// [`StoreError::Storage`] so that the engine's types stay out of the API.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    /// Wraps a backend's own error, for [`StoreError::Storage`].
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> BackendError {
        BackendError(Box::new(e))
    }
}

/// A token cannot be disabled or enabled as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuspensionError {
    /// The token is disabled because an ancestor is: enabling it alone
    /// would let it act while the family that made it may not.
    #[error("token {token} is disabled with its ancestor {by}: enable {by} instead")]
    Inherited {
        /// The token asked for.
        token: TokenId,
        /// The ancestor whose disabling reached it.
        by: TokenId,
    },
    /// The backend keeps no suspension state.
    #[error("this backend cannot disable tokens")]
    Unsupported,
}

/// A presented token does not authenticate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not a well-formed token (see [`ParseTokenError::is_foreign`]).
    #[error(transparent)]
    Malformed(#[from] ParseTokenError),
    /// Well formed, but no such token: never issued, revoked or pruned.
    #[error("unknown token")]
    Unknown,
    /// HTTP Basic: the user name is not the token's user.
    #[error("the user name does not match the token")]
    WrongUser,
    /// The token may not be used from this client's address (see
    /// [`TokenInfo::allow_from`](crate::TokenInfo::allow_from)).
    #[error("the token may not be used from this address")]
    AddressNotAllowed,
    /// The token is disabled (suspended) until an admin enables it (see
    /// [`TokenInfo::disabled_by`](crate::TokenInfo::disabled_by)).
    #[error("the token is disabled")]
    Disabled,
    /// The token has been accepted as many times as its quota allows (see
    /// [`TokenInfo::max_uses`](crate::TokenInfo::max_uses)).
    #[error("the token has no uses left")]
    UsedUp,
    /// The token's [rate limit](crate::TokenInfo::rate) has no use left
    /// for now (the gate answers 429: see
    /// [`RejectReason::RateLimited`](crate::RejectReason::RateLimited)).
    #[error("the token's rate limit ({}) is used up; retry in {} s", .0.limit, .0.retry_after)]
    RateLimited(crate::model::rate::Throttled),
    /// The token has expired.
    #[error("token expired at {expires_at}")]
    Expired {
        /// When it expired.
        expires_at: Timestamp,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An error and its causes on one line, joined with `: `, as `pat-cli` and
/// the admin socket report them.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        line.push_str(": ");
        line.push_str(&s.to_string());
        source = s.source();
    }
    line
}

pub(crate) use error_chain as chain;

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`ParseTokenError`].
    #[error(transparent)]
    ParseToken(#[from] ParseTokenError),
    /// See [`ParseTokenIdError`].
    #[error(transparent)]
    ParseTokenId(#[from] ParseTokenIdError),
    /// See [`ParseScopeError`].
    #[error(transparent)]
    ParseScope(#[from] ParseScopeError),
    /// See [`ParseDurationError`].
    #[error(transparent)]
    ParseDuration(#[from] ParseDurationError),
    /// See [`NewTokenError`].
    #[error(transparent)]
    NewToken(#[from] NewTokenError),
    /// See [`OpenError`].
    #[error(transparent)]
    Open(#[from] OpenError),
    /// See [`StoreError`].
    #[error(transparent)]
    Store(#[from] StoreError),
    /// See [`AuthError`].
    #[error(transparent)]
    Auth(#[from] AuthError),
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrusted_store_returned_from_main_says_its_mode_in_octal_and_the_fix() {
        // What `fn main() -> Result<(), Box<dyn Error>>` prints: `Debug`.
        let e = OpenError::Untrusted {
            path: PathBuf::from("/srv/pat.redb"),
            reason: Untrusted::Mode { mode: 0o644 },
        };
        let shown = format!("{e:?}");
        assert!(shown.contains("0644"), "{shown}");
        assert!(shown.contains("chmod 600"), "{shown}");
        assert!(!shown.contains("420"), "a decimal mode: {shown}");
    }
}
