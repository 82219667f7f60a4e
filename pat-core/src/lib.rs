//! Personal access tokens: the logic behind `pat-tower`, `pat-actix` and
//! `pat-cli`.
//!
//! A token looks like `pat_` + 32 random letters and digits + a 6-character
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
//! - [`TokenSecret`], [`TokenDigest`], [`TokenId`]: the token format.
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
//!   challenges) that `pat-tower` and `pat-actix` share.
//! - Routes' decisions, answered alike by both adapters: [`selfservice`] (a
//!   token looks up, revokes or rotates itself), [`introspection`] (RFC
//!   7662), [`leaks`] (public leak reports), [`management`] (an app's users
//!   list, create and revoke their tokens) and [`panel`] (the settings page
//!   that drives it).
//!
//! # Features
//! - `http`: `Rejection::to_response` builds an `http::Response`.
//! - `axum`: [`Identity`] is an axum extractor (with `Option<Identity>`).
//! - `actix`: [`Identity`] is an actix-web extractor; `Rejection::actix_response`.
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

mod admin;
mod audit;
pub mod authority;
mod backend;
mod block_on;
#[cfg(any(unix, feature = "postgres"))]
mod cache;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod credentials;
pub mod csrf;
mod error;
mod expiry;
#[cfg(any(unix, feature = "postgres"))]
#[doc(hidden)]
pub mod failpoints;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod gate;
pub mod hygiene;
mod integrations;
pub mod introspection;
pub mod leaks;
pub mod management;
mod memory;
pub mod panel;
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
mod proxy;
mod record;
#[cfg(feature = "remote")]
pub mod remote;
mod scope;
pub mod selfservice;
#[cfg(unix)]
mod socket;
#[cfg(unix)]
mod store;
mod sys;
mod text;
mod time;
mod token;
#[cfg(unix)]
mod trust;
mod webdav;

pub use admin::Admin;
pub use audit::{AuditAction, AuditEntry, DEFAULT_ACTOR, DEFAULT_AUDIT_RETENTION};
pub use backend::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_FLUSH_INTERVAL, IntoVerifier, Lookup, Verification, Verifier,
    VerifyFuture, retired_secret,
};
pub use credentials::{BasicCredentials, Credentials, CredentialsError, MAX_AUTHORIZATION_LEN};
pub use error::{
    AuthError, BackendError, Error, NewTokenError, OpenError, ParseDurationError, ParseScopeError,
    ParseTokenError, ParseTokenIdError, StoreError, Untrusted, error_chain,
};
pub use expiry::{Expiry, ExpiryPolicy};
pub use gate::{
    Checking, DEFAULT_REALM, Gate, Mode, Outcome, RejectReason, Rejection, TokenProblem,
};
#[cfg(any(feature = "axum", feature = "actix"))]
pub use integrations::MissingIdentity;
pub use memory::MemoryStore;
pub use policy::{OnReuse, Policy, PolicyViolation};
#[cfg(feature = "postgres")]
pub use postgres::{PgStore, PgStoreBuilder, SCHEMA_VERSION};
pub use proxy::{Cidr, ParseCidrError, TrustedProxies};
pub use record::{
    CreatedToken, DEFAULT_LABEL, Identity, MAX_NAME_LEN, MAX_SCOPES, NewToken, Rotation, TokenInfo,
};
pub use scope::{NodeId, Perm, Scope, Scopes};
#[cfg(unix)]
pub use socket::{AdminClient, admin_socket_path};
#[cfg(unix)]
pub use store::{FORMAT_VERSION, Store, StoreBuilder};
pub use sys::Process;
pub use text::{printable, redacted};
pub use time::{Timestamp, format_duration, parse_duration};
pub use token::{TOKEN_LEN, TOKEN_PREFIX, TokenDigest, TokenId, TokenSecret};
pub use webdav::{DavAccess, dav_chain};

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
