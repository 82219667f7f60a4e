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
//! assert_eq!(identity.user, "alice");
//!
//! // Revoked, it no longer works.
//! store.revoke(identity.token_id)?;
//! assert!(store.authenticate(token, now).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The pieces
//! - [`TokenSecret`], [`TokenDigest`], [`TokenId`]: the token format.
//! - [`Scopes`], [`Perm`], [`NodeId`]: `node:<uuid>:<perm>` restrictions;
//!   [`Identity::permits`] checks them.
//! - [`Store`] (opened with [`StoreBuilder`]): the redb store, with buffered
//!   uses, an exact record cache and the admin socket; [`Admin`] is the
//!   management API, implemented by the store and by [`AdminClient`];
//!   [`Verifier`] is what the request path needs, implemented by the store.
//! - [`Gate`]: the request decision ([`Credentials`] parsing, verification,
//!   [`Rejection`] with RFC 6750 / RFC 7617 challenges) that `pat-tower` and
//!   `pat-actix` share.
//!
//! # Features
//! - `http`: `Rejection::to_response` builds an `http::Response`.
//! - `axum`: [`Identity`] is an axum extractor (with `Option<Identity>`).
//! - `actix`: [`Identity`] is an actix-web extractor; `Rejection::actix_response`.
//!
//! The extractor impls live here rather than in the adapters because Rust's
//! orphan rule puts them beside the type.

mod admin;
mod credentials;
mod error;
mod expiry;
mod gate;
mod integrations;
mod record;
mod scope;
mod socket;
mod store;
mod time;
mod token;

pub use admin::{Admin, Verifier};
pub use credentials::{BasicCredentials, Credentials, CredentialsError, MAX_AUTHORIZATION_LEN};
pub use error::{
    AuthError, BackendError, Error, NewTokenError, OpenError, ParseDurationError, ParseScopeError,
    ParseTokenError, ParseTokenIdError, StoreError,
};
pub use expiry::{Expiry, ExpiryPolicy};
pub use gate::{DEFAULT_REALM, Gate, Mode, Outcome, RejectReason, Rejection, TokenProblem};
#[cfg(feature = "actix")]
pub use integrations::MissingIdentity;
pub use record::{CreatedToken, DEFAULT_LABEL, Identity, MAX_NAME_LEN, NewToken, TokenInfo};
pub use scope::{NodeId, Perm, Scope, Scopes};
pub use socket::{AdminClient, admin_socket_path};
pub use store::{DEFAULT_FLUSH_INTERVAL, FORMAT_VERSION, Store, StoreBuilder};
pub use time::{Timestamp, format_duration, parse_duration};
pub use token::{TOKEN_LEN, TOKEN_PREFIX, TokenDigest, TokenId, TokenSecret};
