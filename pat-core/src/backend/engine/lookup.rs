//! The lookup rule, once for every backend: what a presented digest stands
//! for, read from storage when no cached record answered; a retired secret
//! followed to its token within its grace and refused (audited, and its
//! family refused when the policy revokes reuse) after it; the record
//! checked and its use recorded by [`Uses::miss`] (for the cached backends
//! [`Cache::miss`](crate::backend::cache::Cache::miss), which asks for
//! another read when a write raced this one).
//!
//! A backend supplies [`Reads`] (its storage) and [`Uses`] (where uses and
//! refusals are kept: the shared cache, or the in-memory store itself).

use std::future::Future;
use std::sync::Arc;

use crate::error::{AuthError, StoreError};
use crate::model::permission::Catalog;
use crate::model::record::{Identity, Origin, TokenInfo};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

/// How many reads a lookup makes when writes keep racing it; the last one
/// answers without caching its record.
const ATTEMPTS: u32 = 4;

/// What a presented digest stands for in storage.
// Made once per cache miss and moved straight into the cache entry: boxing
// the record would add an allocation to every miss to save a move.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Found {
    /// A token's current secret.
    Token(TokenInfo),
    /// A secret a rotation retired: its token, when it stops working, and
    /// the token's current digest (`None` once the token is gone).
    Retired {
        id: TokenId,
        retires_at: Timestamp,
        current: Option<TokenDigest>,
        /// The token's user, for the audit log, when the read found it at
        /// once (`None`: [`Reads::owner`] is asked if it is needed).
        user: Option<String>,
    },
    /// Nothing: never issued, revoked or pruned.
    Nothing,
}

/// The reads a lookup makes, outside any write transaction.
pub(crate) trait Reads: Sync {
    /// The catalog a record read is resolved with ([`resolved`]).
    fn catalog(&self) -> Arc<Catalog>;

    /// What `digest` stands for.
    fn read(&self, digest: &TokenDigest) -> impl Future<Output = Result<Found, StoreError>> + Send;

    /// The user of the token whose current secret is `current`, for the
    /// audit entry of a replayed old secret (empty when it cannot be read:
    /// the replay is refused and audited all the same).
    fn owner(&self, current: &TokenDigest) -> impl Future<Output = String> + Send;

    /// When the store's policy revokes the families of reused secrets, the
    /// current digests of token `id`'s descendants; `None` when it does
    /// not.
    fn reuse_family(
        &self,
        id: TokenId,
    ) -> impl Future<Output = Result<Option<Vec<TokenDigest>>, StoreError>> + Send;
}

/// Where a lookup keeps what it learns: uses, unknown digests, replays and
/// reuse refusals (the shared cache's protocol for redb and PostgreSQL).
pub(crate) trait Uses: Sync {
    /// What a read must be handed back with, once it missed.
    type Miss: Send;

    /// A use of `digest` if a cached record answers, else what
    /// [`Uses::miss`] needs.
    fn hit(
        &self,
        digest: &TokenDigest,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
    ) -> Result<Result<Identity, AuthError>, Self::Miss>;

    /// A use of `digest`, whose record `info` was just read after `miss`;
    /// `None` to read again (a write raced the read), never with
    /// `last_try`.
    // The lookup's own inputs, passed through as they are (issue 26
    // added the client's origin); a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn miss(
        &self,
        miss: Self::Miss,
        digest: TokenDigest,
        info: TokenInfo,
        user: Option<&str>,
        origin: Origin<'_>,
        now: Timestamp,
        last_try: bool,
    ) -> Option<Result<Identity, AuthError>>;

    /// `digest` stands for no token.
    fn unknown(&self, digest: TokenDigest);

    /// Token `id`'s (of `user`) replaced secret `digest` came back after
    /// its grace: noted for the audit log, and the refusal to answer.
    fn replayed(&self, digest: TokenDigest, id: TokenId, user: &str, now: Timestamp) -> AuthError;

    /// Reuse detection refuses `digests` (token `root`'s family) from now
    /// on, and revokes the family at the next flush.
    fn reused(&self, root: TokenId, digests: &[TokenDigest]);

    /// A use of `digest` not written yet, merged into a record just read.
    fn overlay(&self, digest: &TokenDigest, info: &mut TokenInfo);

    /// A read of storage has returned (the race tests pause here).
    fn read_done(&self) {}
}

/// The lookup of `digest` (for `user`, with HTTP Basic) after `uses`
/// missed it with `miss`.
pub(crate) async fn lookup<U: Uses>(
    store: &impl Reads,
    cache: &U,
    miss: U::Miss,
    digest: TokenDigest,
    user: Option<&str>,
    origin: Origin<'_>,
    now: Timestamp,
) -> Result<Identity, AuthError> {
    let mut miss = miss;
    let mut digest = digest;
    let mut followed = false;
    let mut attempt = 1;
    loop {
        let found = store.read(&digest).await?;
        cache.read_done();
        let info = match found {
            Found::Token(info) => resolved(store, info),
            Found::Nothing => {
                cache.unknown(digest);
                return Err(AuthError::Unknown);
            }
            Found::Retired {
                id,
                retires_at,
                current,
                user: owner,
            } => {
                // A retired secret leads to a current one, never to another
                // retired one.
                if followed {
                    return Err(AuthError::Unknown);
                }
                if !crate::backend::in_grace(retires_at, now) {
                    let owner = match (owner, current) {
                        (Some(owner), _) => owner,
                        (None, Some(current)) => store.owner(&current).await,
                        (None, None) => String::new(),
                    };
                    if let Some(current) = current
                        && let Some(mut family) = store.reuse_family(id).await?
                    {
                        // The token and its family are refused at once and
                        // revoked by the next flush.
                        family.push(current);
                        cache.reused(id, &family);
                    }
                    return Err(cache.replayed(digest, id, &owner, now));
                }
                // Within its grace: as the current secret, through its
                // cache entry, so that the use is recorded on the token.
                digest = current.ok_or(AuthError::Unknown)?;
                followed = true;
                miss = match cache.hit(&digest, user, origin, now) {
                    Ok(result) => return previous(result, followed),
                    Err(miss) => miss,
                };
                continue;
            }
        };
        match cache.miss(miss, digest, info, user, origin, now, attempt == ATTEMPTS) {
            Some(result) => return previous(result, followed),
            None => attempt += 1,
        }
        miss = match cache.hit(&digest, user, origin, now) {
            Ok(result) => return previous(result, followed),
            Err(miss) => miss,
        };
    }
}

/// A lookup's answer, marked as made with a replaced secret still in its
/// grace when it `followed` one to its token.
fn previous(result: Result<Identity, AuthError>, followed: bool) -> Result<Identity, AuthError> {
    if followed {
        result.map(Identity::by_previous_secret)
    } else {
        result
    }
}

/// The token `digest` stands for at `now`, without recording a use
/// ([`Admin::find`](crate::Admin::find)): the token whose current secret
/// it is, or whose replaced secret it is while its grace lasts; with
/// `cache`'s unwritten use merged in.
pub(crate) async fn find(
    store: &impl Reads,
    cache: &impl Uses,
    digest: &TokenDigest,
    now: Timestamp,
) -> Result<Option<TokenInfo>, StoreError> {
    let (digest, mut info) = match store.read(digest).await? {
        Found::Token(info) => (*digest, info),
        Found::Retired {
            retires_at,
            current: Some(current),
            ..
        } if crate::backend::in_grace(retires_at, now) => match store.read(&current).await? {
            Found::Token(info) => (current, info),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    cache.overlay(&digest, &mut info);
    Ok(Some(resolved(store, info)))
}

/// A record just read, holding what its named permissions come to in the
/// store's catalog now ([`Catalog::resolve`]): done once per read, so that
/// a check on the request path is a binary search. The backend forgets
/// its cached records when the catalog changes.
fn resolved(store: &impl Reads, mut info: TokenInfo) -> TokenInfo {
    if !info.scopes.named().is_empty() {
        info.scopes = store.catalog().resolve(&info.scopes);
    }
    info
}
