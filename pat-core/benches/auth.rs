//! The request path against its floor, in one run (the machine is shared and
//! noisy, so ratios within a run are what count; see BENCHMARKS.md):
//!
//! - `floor`: SHA-256 of the token and one hash-map lookup among 100,000;
//! - `jwt/hs256`: decoding and verifying an HS256 JWT (`jsonwebtoken`);
//! - `token/*`: validation alone;
//! - `store/*`: `Store::authenticate`, cached, in stores of 1,000, 100,000
//!   and 1,000,000 tokens; sliding, Basic, uncached, unknown (the same one
//!   again, and a new one each time), and a flood of distinct unknown tokens
//!   (1 valid in 10);
//! - `threads/*`: 1, 2 and all cores checking the same token or each its own;
//! - `spend/clients/*`: uses of quotas (durable commits), by 1 and 8
//!   clients at once, per use.
//!
//! Run with `cargo bench -p pat-core`.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pat_core::{ExpiryPolicy, NewToken, Store, Timestamp, TokenDigest, TokenSecret};
use sha2::{Digest as _, Sha256};

const DAY: Duration = Duration::from_secs(86_400);

/// A store and, created in it, a hard and a sliding token.
type Sized = (Arc<Store>, String, String);

/// A store of `size` tokens plus one hard and one sliding token, returned.
fn store_of(dir: &tempfile::TempDir, size: usize, cache: bool) -> Sized {
    let store = Store::builder()
        .admin_socket(false)
        .manual_flush()
        .cache(cache)
        .cache_capacity(if cache { 2_000_000 } else { 0 })
        .open(dir.path().join(format!("{size}-{cache}.redb")))
        .expect("store");
    let now = Timestamp::now();
    for start in (0..size).step_by(100_000) {
        let news: Vec<NewToken> = (start..size.min(start + 100_000))
            .map(|i| NewToken::new(format!("user{i}"), ExpiryPolicy::hard(DAY)))
            .collect();
        store.create_many(&news, now).expect("create");
    }
    let hard = NewToken::new("alice", ExpiryPolicy::hard(DAY));
    let sliding = NewToken::new("bob", ExpiryPolicy::sliding(DAY, None));
    let made = store.create_many(&[hard, sliding], now).expect("create");
    let hard = made[0].secret.expose_secret().to_owned();
    let sliding = made[1].secret.expose_secret().to_owned();
    // Warm: the measured tokens are cached (when caching is on).
    store.authenticate(&hard, now).expect("valid");
    store.authenticate(&sliding, now).expect("valid");
    (Arc::new(store), hard, sliding)
}

#[derive(Clone, Copy, Default)]
struct FirstBytes;
struct FirstBytesHasher(u64);
impl BuildHasher for FirstBytes {
    type Hasher = FirstBytesHasher;
    fn build_hasher(&self) -> FirstBytesHasher {
        FirstBytesHasher(0)
    }
}
impl Hasher for FirstBytesHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[..8]);
        self.0 = u64::from_le_bytes(w);
    }
}

fn floor_and_jwt(c: &mut Criterion, token: &str) {
    // The floor: what any digest-keyed store must do per request.
    let mut map: HashMap<[u8; 32], u64, FirstBytes> = HashMap::with_hasher(FirstBytes);
    for i in 0..100_000u64 {
        map.insert(Sha256::digest(i.to_le_bytes()).into(), i);
    }
    map.insert(Sha256::digest(token.as_bytes()).into(), 7);
    c.bench_function("floor/sha256_and_lookup_100k", |b| {
        b.iter(|| {
            let d: [u8; 32] = Sha256::digest(black_box(token).as_bytes()).into();
            black_box(map.get(&d).copied())
        })
    });
    // The same floor with 10,000 tokens in use at once, each lookup the
    // next of them: what the memory hierarchy alone costs any digest-keyed
    // store at that scale (compare `store/hard_10k_in_use/1000000` with
    // `store/hard/1000000` by this ratio).
    let in_use: Vec<String> = (0..10_000)
        .map(|_| TokenSecret::generate().expose_secret().to_owned())
        .collect();
    for (i, t) in in_use.iter().enumerate() {
        map.insert(Sha256::digest(t.as_bytes()).into(), i as u64);
    }
    let mut turn = 0;
    c.bench_function("floor/sha256_and_lookup_10k_in_use", |b| {
        b.iter(|| {
            turn = (turn + 1) % in_use.len();
            let d: [u8; 32] = Sha256::digest(black_box(&in_use[turn]).as_bytes()).into();
            black_box(map.get(&d).copied())
        })
    });

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }
    let key = b"a secret key of thirty-two bytes";
    let claims = Claims {
        sub: "alice".into(),
        exp: Timestamp::now().as_unix_secs() + 86_400,
    };
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .expect("jwt");
    let decoding = jsonwebtoken::DecodingKey::from_secret(key);
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    c.bench_function("jwt/hs256_decode_and_verify", |b| {
        b.iter(|| {
            black_box(jsonwebtoken::decode::<Claims>(
                black_box(&jwt),
                &decoding,
                &validation,
            ))
            .is_ok()
        })
    });
}

fn tokens(c: &mut Criterion) {
    let token = TokenSecret::generate();
    c.bench_function("token/validate_and_digest", |b| {
        b.iter(|| TokenDigest::from_token(black_box(token.expose_secret())))
    });
    c.bench_function("token/reject_bad_checksum", |b| {
        let mut bad = token.expose_secret().to_owned();
        bad.replace_range(10..11, if &bad[10..11] == "A" { "B" } else { "A" });
        b.iter(|| TokenDigest::from_token(black_box(&bad)))
    });
}

fn stores(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = Timestamp::now();
    let sized: Vec<(usize, Sized)> = [1_000, 100_000, 1_000_000]
        .into_iter()
        .map(|size| (size, store_of(&dir, size, true)))
        .collect();
    let (store, hard, sliding) = &sized[1].1;
    floor_and_jwt(c, hard);
    let mut group = c.benchmark_group("store");
    for (size, (store, hard, _)) in &sized {
        group.bench_with_input(BenchmarkId::new("hard", size), hard, |b, hard| {
            b.iter(|| store.authenticate(black_box(hard), now).is_ok())
        });
    }
    // Scale: a million tokens, 10,000 of them in use at once, each request
    // the next of them (so the cache's entries, the map's buckets and the
    // secrets no longer stay in the CPU's nearest caches), against the
    // single hot token of `hard/1000000` above.
    let (million, _, _) = &sized[2].1;
    let in_use: Vec<String> = million
        .create_many(
            &(0..10_000)
                .map(|i| NewToken::new(format!("in-use{i}"), ExpiryPolicy::hard(DAY)))
                .collect::<Vec<_>>(),
            now,
        )
        .expect("create")
        .into_iter()
        .map(|made| made.secret.expose_secret().to_owned())
        .collect();
    for t in &in_use {
        million.authenticate(t, now).expect("valid");
    }
    let mut turn = 0;
    group.bench_function("hard_10k_in_use/1000000", |b| {
        b.iter(|| {
            turn = (turn + 1) % in_use.len();
            million.authenticate(black_box(&in_use[turn]), now).is_ok()
        })
    });
    group.bench_function("sliding_100k", |b| {
        b.iter(|| store.authenticate(black_box(sliding), now).is_ok())
    });
    group.bench_function("basic_100k", |b| {
        b.iter(|| store.authenticate_as("alice", black_box(hard), now).is_ok())
    });
    let unknown = TokenSecret::generate();
    // The same unknown token again and again (a revoked token left in a
    // client's configuration): answered from the memory of unknown digests.
    group.bench_function("unknown_100k", |b| {
        b.iter(|| {
            store
                .authenticate(black_box(unknown.expose_secret()), now)
                .is_err()
        })
    });
    // An attacker's flood: each unknown token a new one (more distinct
    // tokens than the memory of unknown digests holds, so nearly every one
    // is a read), 9 for each valid one; the time is per request.
    let forged: Vec<String> = (0..300_000)
        .map(|_| TokenSecret::generate().expose_secret().to_owned())
        .collect();
    let mut next = 0;
    let mut distinct = || {
        next = (next + 1) % forged.len();
        forged[next].as_str()
    };
    group.bench_function("unknown_distinct_100k", |b| {
        b.iter(|| store.authenticate(black_box(distinct()), now).is_err())
    });
    group.bench_function("flood_1_valid_in_10_100k", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for i in 0..iters {
                let t = if i % 10 == 0 {
                    hard.as_str()
                } else {
                    distinct()
                };
                black_box(store.authenticate(t, now).is_ok());
            }
            started.elapsed()
        })
    });
    assert!(store.cached_records() <= 3, "unknown tokens were cached");
    let (uncached, uncached_hard, _) = store_of(&dir, 100_000, false);
    group.bench_function("hard_uncached_100k", |b| {
        b.iter(|| {
            uncached
                .authenticate(black_box(&uncached_hard), now)
                .is_ok()
        })
    });
    group.finish();
    threads(c, store, 100_000);
}

/// `threads/{same,distinct}/N`: N threads authenticating, the time per
/// request over all of them (so 2 threads at double throughput show half
/// the time of 1).
fn threads(c: &mut Criterion, store: &Arc<Store>, size: usize) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let now = Timestamp::now();
    let own: Vec<String> = (0..cores)
        .map(|i| {
            let new = NewToken::new(format!("t{i}"), ExpiryPolicy::hard(DAY));
            store.create_many(&[new], now).expect("create")[0]
                .secret
                .expose_secret()
                .to_owned()
        })
        .collect();
    for t in &own {
        store.authenticate(t, now).expect("valid");
    }
    let mut group = c.benchmark_group(format!("threads_{}k", size / 1_000));
    let mut counts = vec![1, 2];
    if cores > 2 {
        counts.push(cores);
    }
    for distinct in [false, true] {
        for &n in &counts {
            let name = if distinct { "distinct" } else { "same" };
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let per_thread = iters.div_ceil(n as u64);
                    let started = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..n {
                            let token = if distinct {
                                &own[t % own.len()]
                            } else {
                                &own[0]
                            };
                            s.spawn(move || {
                                for _ in 0..per_thread {
                                    black_box(store.authenticate(black_box(token), now).is_ok());
                                }
                            });
                        }
                    });
                    started.elapsed()
                })
            });
        }
    }
    group.finish();
}

/// Waits for `future` on this thread (the bench has no runtime).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => return out,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

/// Uses of a quota through the gate: each is a durable commit by the
/// store's writer thread, which commits the spends of concurrent clients
/// together. `spend/clients/N` is the time per use with N clients at once:
/// with group commit, 8 clients' time per use is a fraction of one's.
fn spends(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(
        Store::builder()
            .admin_socket(false)
            .manual_flush()
            .open(dir.path().join("spend.redb"))
            .expect("store"),
    );
    let now = Timestamp::now();
    let news: Vec<NewToken> = (0..8)
        .map(|i| {
            NewToken::new(format!("q{i}"), ExpiryPolicy::hard(DAY)).max_uses(pat_core::MAX_USES)
        })
        .collect();
    let bearers: Vec<String> = store
        .create_many(&news, now)
        .expect("create")
        .iter()
        .map(|t| format!("Bearer {}", t.secret.expose_secret()))
        .collect();
    let gate = pat_core::Gate::new(store.clone());
    let mut group = c.benchmark_group("spend");
    group.sample_size(20);
    for n in [1usize, 8] {
        group.bench_with_input(BenchmarkId::new("clients", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let per_thread = iters.div_ceil(n as u64);
                let started = Instant::now();
                std::thread::scope(|s| {
                    for bearer in &bearers[..n] {
                        let gate = &gate;
                        s.spawn(move || {
                            for _ in 0..per_thread {
                                let checking = gate.check([bearer.as_bytes()], false);
                                let outcome = match checking.into_ready() {
                                    Ok(outcome) => outcome,
                                    Err(pending) => block_on(pending),
                                };
                                let pat_core::Outcome::Authenticated(identity) = outcome else {
                                    panic!("refused: {outcome:?}");
                                };
                                assert!(identity.uses_left().is_some(), "a quota's use");
                            }
                        });
                    }
                });
                // `iters` uses in all, shared by the clients.
                started.elapsed()
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    tokens(c);
    stores(c);
    spends(c);
}

criterion_group!(auth, benches);
criterion_main!(auth);
