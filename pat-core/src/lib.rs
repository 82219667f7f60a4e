//! Personal access tokens: the logic behind `pat-tower`, `pat-actix` and
//! `pat-cli`.
//!
//! A token looks like `pat_` (the store's prefix, `pat` unless it was given
//! its own, and `_`) + 32 random letters and digits + a 6-character
//! checksum. It belongs to one user, expires either at a fixed time or after a
//! sliding idle window, and may be restricted to some nodes with scopes
//! (`node:<uuid>:r|w|rw`). The [`Store`] keeps only SHA-256 digests of tokens,
//! in one redb file.
//!
//! ```
//! use std::time::Duration;
//! use pat_core::{Admin, ExpiryPolicy, NewToken, Store, Timestamp};
//!
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("pat.redb");
//! let store = Store::open(&path)?;
//! let now = Timestamp::now();
//!
//! // An admin creates a token for alice; the plaintext is shown once.
//! let created = store.create(
//!     &NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(24 * 3600))),
//!     now,
//! )?;
//! let token = created.secret.expose_secret();
//!
//! // Alice presents it; the service learns who she is.
//! let identity = store.authenticate(token, now)?;
//! assert_eq!(identity.user(), "alice");
//!
//! // Revoked, it no longer works.
//! store.revoke(identity.token_id())?;
//! assert!(store.authenticate(token, now).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The pieces
//! - [`TokenSecret`], [`TokenDigest`], [`TokenId`]: the token format;
//!   [`Prefix`], [`Prefixes`]: a store's token prefixes, current and
//!   former, as the gate checks them.
//! - [`Scopes`], [`Perm`], [`NodeId`]: `node:<uuid>:<perm>` restrictions;
//!   [`Identity::permits`] checks them; [`DavAccess`], [`Scopes::allow_dav`]
//!   and [`Scopes::reveals`] apply them to a WebDAV share.
//! - Backends: [`Store`] (redb, opened with [`StoreBuilder`]), with buffered
//!   uses, an exact record cache and the admin socket (Unix only);
//!   [`MemoryStore`], for tests and examples. Each implements [`Admin`] (the
//!   management API, also implemented by [`AdminClient`]) and [`Verifier`]
//!   (what the request path needs: a [`Lookup`] by digest answered with a
//!   [`Verification`], at once or as a future). [`Verifier`] documents the
//!   contract, so other crates can write backends.
//! - [`Gate`]: the request decision ([`Credentials`] parsing, token
//!   validation, the lookup, [`Rejection`] with RFC 6750 / RFC 7617
//!   challenges) that `pat-tower` and `pat-actix` share, and [`adapter`],
//!   the rest of what an adapter for any framework needs.
//! - More backends: `PgStore` (feature `postgres`), for a fleet of
//!   replicas, and `remote::RemoteVerifier` (feature `remote`), which asks
//!   a pat introspection endpoint. `Store`, `MemoryStore` and `PgStore`
//!   run one engine: creation, rotation, revocation and the lookup are
//!   written once, and each backend only stores.
//! - [`Logins`]: the same decision for another protocol's login (SSH, FTP,
//!   IMAP...): a user name and a token as the password.
//! - Routes' decisions, answered alike by both adapters: [`self_service`] (a
//!   token looks up, revokes or rotates itself), [`introspection`] (RFC
//!   7662), [`leaks`] (public leak reports), [`management`] (an app's users
//!   list, create and revoke their tokens) and [`panel`] (the settings page
//!   that drives it).
//!
//! # Features
//! - `redb` (default): `Store`, the token store in one redb file, and
//!   `AdminClient`, which reaches it through its admin socket (Unix only).
//!   Turn default features off for a service on PostgreSQL alone.
//! - `http`: `Rejection::to_response` builds an `http::Response`.
//! - `axum`: [`Identity`] is an axum extractor (with `Option<Identity>`).
//! - `actix`: [`Identity`] is an actix-web extractor; `Rejection::actix_response`.
//! - `serde` (on by default in the adapters): [`Identity`], [`Scopes`],
//!   [`Scope`], [`NodeId`], [`Perm`], [`TokenId`] and [`Timestamp`] are
//!   `Serialize`, each as the string pat prints; an `Identity` is
//!   `{"user", "token_id", "scopes", "expires_at"}`, the reference servers'
//!   `/whoami` (so `json!({ "me": identity })` works in a handler).
//! - `postgres`: `PgStore`, the PostgreSQL backend, for a fleet of replicas.
//! - `remote`: `remote::RemoteVerifier`, which checks tokens by asking a pat
//!   introspection endpoint, for services with no database access.
//! - `testing`: the `conformance` module, the model test and contract cases
//!   every backend passes, to run against your own.
//!
//! # Platforms
//! Everything builds on Linux, macOS and the BSDs. On Windows the portable
//! part builds (tokens, scopes, expiry, credentials, the gate, the traits and
//! [`MemoryStore`]); the redb store and its admin socket are Unix only.
//!
//! The extractor impls live here rather than in the adapters because Rust's
//! orphan rule puts them beside the type.
// docs.rs (`--cfg docsrs`, nightly) shows which feature each item needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod error;
mod gate;
pub mod metrics;
mod model;
mod routes;
mod testing;
#[cfg(feature = "webhooks")]
pub mod webhook;

// The public modules, at the root as they always were.
pub use backend::authority;
#[cfg(feature = "remote")]
pub use backend::remote;
#[cfg(all(unix, feature = "redb"))]
pub use backend::trust;
pub use routes::{
    answer, calendar, csrf, gitlab_revocation, hygiene, introspection, leaks, management, panel,
    secret_scanning, self_service,
};
#[cfg(any(test, feature = "testing"))]
pub use testing::conformance;
#[cfg(any(all(unix, feature = "redb"), feature = "postgres"))]
#[doc(hidden)]
pub use testing::failpoints;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub use testing::fuzzing;

/// The self-service decisions, under their old name.
#[deprecated(
    since = "0.1.0",
    note = "renamed `self_service`, as the adapters name it"
)]
pub mod selfservice {
    pub use crate::routes::self_service::*;
}

pub use backend::admin::Admin;
pub use backend::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use backend::postgres::{PgStore, PgStoreBuilder, SCHEMA_VERSION};
#[cfg(all(unix, feature = "redb"))]
pub use backend::redb::socket::{AdminClient, admin_socket_path};
#[cfg(all(unix, feature = "redb"))]
pub use backend::redb::{FORMAT_VERSION, Store, StoreBuilder};
pub use backend::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_FLUSH_INTERVAL, IntoVerifier, Lookup, Verification, Verifier,
    VerifyFuture, retired_secret,
};
pub use error::{
    AuthError, BackendError, Error, NewTokenError, OpenError, ParseDurationError, ParseScopeError,
    ParseTokenError, ParseTokenIdError, Process, StoreError, SuspensionError, Untrusted,
    error_chain,
};
pub use gate::adapter;
pub use gate::credentials::{
    BasicCredentials, Credentials, CredentialsError, MAX_AUTHORIZATION_LEN,
};
#[cfg(any(feature = "axum", feature = "actix"))]
pub use gate::extractors::MissingIdentity;
pub use gate::login::{DEFAULT_LOGIN_FAILURES, DEFAULT_LOGIN_WINDOW, LoginRefused, Logins};
pub use gate::scopes::{InsufficientScope, ScopeGuard, ScopeGuardError};
pub use gate::{
    Checking, DEFAULT_REALM, Gate, Mode, Outcome, RejectReason, Rejection, Throttled, TokenProblem,
};
pub use model::audit::{AuditAction, AuditEntry, DEFAULT_ACTOR, DEFAULT_AUDIT_RETENTION};
pub use model::delivery::{
    AfterFailure, Delivery, FailedEvent, Lease, MAX_FAILED, MAX_SINK_LEN, MIN_RETRY_WAIT,
    REFUSED_ATTEMPTS, Retry, RetryPolicy, refuses_event,
};
pub use model::event::{Event, EventKind, RevokeCause};
pub use model::expiry::{Expiry, ExpiryPolicy};
pub use model::metadata::{
    MAX_META_ENTRIES, MAX_META_KEY_LEN, MAX_META_LEN, MAX_META_VALUE_LEN, MetaEntry, Metadata,
    MetadataError,
};
pub use model::notice::{DEFAULT_NOTICE_DAYS, EXPIRED_NOTICE_WINDOW, Notice};
pub use model::permission::{
    Catalog, CatalogError, MAX_CATALOG_LEN, MAX_DESCRIPTION_LEN, MAX_IMPLIES, MAX_PERMISSION_LEN,
    ParsePermissionError, Permission, PermissionDef, PermissionRemoval,
};
pub use model::policy::{OnReuse, Policy, PolicyViolation};
pub use model::prefix::{
    MAX_PREFIX_LEN, MAX_PREFIXES, MIN_PREFIX_LEN, ParsePrefixError, Prefix, PrefixError, Prefixes,
};
pub use model::rate::{MAX_RATE_USES, ParseRateError, Per, RateLimit};
pub use model::record::{
    CreatedToken, DEFAULT_LABEL, Identity, LAST_ADDRESSES, LastAddresses, MAX_NAME_LEN,
    MAX_NETWORKS, MAX_SCOPES, MAX_USES, NewToken, Rotation, SeenFrom, TokenInfo, use_quota,
};
pub use model::scanning;
pub use model::scope::{NodeId, Perm, Scope, Scopes, TokenScope};
pub use model::text::{json_safe, printable, redacted};
pub use model::time::{Timestamp, format_duration, parse_duration};
pub use model::token::{TOKEN_LEN, TOKEN_PREFIX, TokenDigest, TokenId, TokenSecret};
pub use routes::proxy::{Cidr, ParseCidrError, ProxyHeader, TrustedProxies};
pub use routes::webdav::{DavAccess, dav_chain};

/// Logs written while a test runs a closure.
#[cfg(test)]
mod test_logs {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Everything logged (at any level, without colours) on this thread
    /// while `f` runs.
    pub(crate) fn capture(f: impl FnOnce()) -> String {
        let logs = Buffer::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(logs.0.lock().unwrap().clone()).unwrap()
    }
}
