//! The admin operations, behind one trait so that the CLI does not care
//! whether it holds the store file itself or asks the process that does.

use crate::error::StoreError;
use crate::policy::Policy;
use crate::record::{CreatedToken, NewToken, Rotation, TokenInfo};
use crate::time::Timestamp;
use crate::token::TokenId;

/// Managing tokens: what `pat-cli token ...` does.
///
/// Implemented by every backend ([`Store`](crate::Store),
/// [`MemoryStore`](crate::MemoryStore)) and by [`AdminClient`](crate::AdminClient).
/// Creation and revocation are durable when they return (see the
/// [backend contract](crate::Verifier#the-contract-a-backend-keeps)). `now` is the caller's clock, so tests
/// can move time without sleeping.
pub trait Admin {
    /// Creates a token and returns its plaintext, which exists nowhere else.
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError>;

    /// Lists tokens, oldest first, of one user or of all; expired ones only
    /// with `include_expired`.
    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError>;

    /// One token by id, expired or not; [`StoreError::NotFound`] if absent.
    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError>;

    /// Gives token `id` a new secret, returned like [`create`](Admin::create)
    /// returns one; the record is [`TokenInfo::rotated`]. The old secret
    /// works until [`Rotation::retires_at`] (at once by default); presented
    /// after that it is refused like an unknown token, and the backend logs
    /// it (a `warn` event with the token id) as a possible theft.
    /// [`StoreError::NotFound`] if absent. A token is rotated even when
    /// expired: its expiry restarts.
    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError>;

    /// Deletes a token and returns what it was; [`StoreError::NotFound`] if
    /// absent.
    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError>;

    /// Deletes every token of `user` and returns how many there were.
    fn revoke_user(&self, user: &str) -> Result<usize, StoreError>;

    /// Deletes every token expired at `now` and returns how many there were.
    fn prune(&self, now: Timestamp) -> Result<usize, StoreError>;

    /// The store-wide policy ([`Policy::NONE`] until one is set).
    fn policy(&self) -> Result<Policy, StoreError>;

    /// Replaces the store-wide policy. [`create`](Admin::create) and
    /// [`rotate`](Admin::rotate) refuse what breaks it
    /// ([`StoreError::Policy`], naming the limit); existing tokens are left
    /// alone.
    fn set_policy(&self, policy: Policy) -> Result<(), StoreError>;
}
