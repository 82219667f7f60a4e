//! The cache's own tests, at the level of its protocol; the interleavings
//! through a real backend are in `store/races.rs`.

use std::time::Duration;

use super::*;
use crate::model::expiry::ExpiryPolicy;
use crate::model::token::{TokenId, TokenSecret};

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).unwrap()
}

fn sliding_record() -> TokenInfo {
    crate::NewToken::new(
        "alice",
        ExpiryPolicy::sliding(Duration::from_secs(60), None),
    )
    .to_info(TokenId::from_u64(1), at(0))
    .unwrap()
}

/// Caches `info` under `digest` and uses it at `now`.
fn cached(cache: &Cache, digest: TokenDigest, info: &TokenInfo, now: u64) -> Identity {
    let Err(miss) = cache.hit(&digest, None, Origin::UNKNOWN, at(now)) else {
        panic!("already cached");
    };
    cache
        .miss(
            miss,
            digest,
            info.clone(),
            None,
            Origin::UNKNOWN,
            at(now),
            false,
        )
        .expect("no write meanwhile")
        .expect("alive")
}

// Found in review: a lookup's last attempt judged the token by the record it
// had read and the buffer alone, though an entry cached meanwhile held a
// newer use; a live sliding token was refused as expired.
#[test]
fn a_last_attempt_is_answered_by_an_entry_cached_meanwhile() {
    let cache = Cache::new(4, None);
    let digest = TokenSecret::generate().digest();
    let info = sliding_record();
    // This lookup began before the entry existed, and reads the file's
    // record (deadline 60) on its last attempt.
    let Err(late) = cache.hit(&digest, None, Origin::UNKNOWN, at(70)) else {
        panic!("not cached yet");
    };
    cached(&cache, digest, &info, 0);
    cache
        .hit(&digest, None, Origin::UNKNOWN, at(50))
        .ok()
        .unwrap()
        .expect("alive until 60");
    let answered = cache
        .miss(late, digest, info, None, Origin::UNKNOWN, at(70), true)
        .expect("a last attempt answers");
    assert_eq!(
        answered.expect("used at 50, alive until 110").expires_at(),
        at(130)
    );
}

#[test]
fn a_condemned_token_is_spared_when_its_prune_lets_go() {
    let cache = Cache::new(4, None);
    let digest = TokenSecret::generate().digest();
    cached(&cache, digest, &sliding_record(), 0);
    let condemned = cache.doom(&[digest], at(60));
    assert_eq!(condemned.digests(), [digest]);
    assert!(matches!(
        cache.hit(&digest, None, Origin::UNKNOWN, at(59)),
        Ok(Err(AuthError::Unknown))
    ));
    // The prune failed, panicked or was cancelled: the token lives on.
    drop(condemned);
    cache
        .hit(&digest, None, Origin::UNKNOWN, at(59))
        .ok()
        .unwrap()
        .expect("spared");
    // One deleted meanwhile is not brought back.
    let other = TokenSecret::generate().digest();
    cached(&cache, other, &sliding_record(), 0);
    let condemned = cache.doom(&[other], at(60));
    cache.deleted(condemned.digests());
    drop(condemned);
    assert!(
        cache.hit(&other, None, Origin::UNKNOWN, at(59)).is_err(),
        "forgotten"
    );
}
