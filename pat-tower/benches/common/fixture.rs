//! The store both adapters' benches measure against (included by
//! `pat-tower/benches/layer.rs` and `pat-actix/benches/middleware.rs`, so the
//! two overheads are measured on the same thing): 100,000 tokens plus
//! Alice's, and the `Authorization` headers to present.

use std::sync::Arc;
use std::time::Duration;

use pat_core::{ExpiryPolicy, NewToken, Store, Timestamp, TokenSecret};

pub(crate) struct Fixture {
    /// Keeps the store's directory alive.
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) store: Arc<Store>,
    /// `Bearer` with Alice's hard-expiry token.
    pub(crate) hard: String,
    /// `Bearer` with Alice's sliding token.
    pub(crate) sliding: String,
    /// `Basic alice:<hard token>`.
    pub(crate) basic: String,
    /// `Bearer` with a well-formed token nobody issued.
    pub(crate) unknown: String,
    /// `Bearer` with Alice's hard token allowed from 127.0.0.0/8 and
    /// limited to 1,000,000 uses a second (never reached), to be presented
    /// from 127.0.0.1.
    pub(crate) limited: String,
}

pub(crate) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .open(dir.path().join("bench.redb"))
            .expect("store"),
    );
    let day = Duration::from_secs(86_400);
    let now = Timestamp::now();
    let others: Vec<NewToken> = (0..100_000)
        .map(|i| NewToken::new(format!("user{i}"), ExpiryPolicy::hard(day)))
        .collect();
    store.create_many(&others, now).expect("create");
    let made = store
        .create_many(
            &[
                NewToken::new("alice", ExpiryPolicy::hard(day)),
                NewToken::new("alice", ExpiryPolicy::sliding(day, None)),
                {
                    let mut limited = NewToken::new("alice", ExpiryPolicy::hard(day))
                        .allow_from(["127.0.0.0/8".parse().expect("a network")]);
                    limited.rate = Some("1000000/s".parse().expect("a rate"));
                    limited
                },
            ],
            now,
        )
        .expect("create");
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("alice:{}", made[0].secret.expose_secret()),
    );
    Fixture {
        _dir: dir,
        store,
        hard: format!("Bearer {}", made[0].secret.expose_secret()),
        sliding: format!("Bearer {}", made[1].secret.expose_secret()),
        basic: format!("Basic {basic}"),
        unknown: format!("Bearer {}", TokenSecret::generate().expose_secret()),
        limited: format!("Bearer {}", made[2].secret.expose_secret()),
    }
}
