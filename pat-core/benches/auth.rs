//! Request-path costs: token validation and a full `Store::authenticate`.
//!
//! Run with `cargo bench -p pat-core`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp, TokenDigest, TokenSecret};

fn bench(c: &mut Criterion) {
    let token = TokenSecret::generate();
    c.bench_function("token/validate_and_digest", |b| {
        b.iter(|| TokenDigest::from_token(black_box(token.expose_secret())))
    });
    c.bench_function("token/reject_bad_checksum", |b| {
        let mut bad = token.expose_secret().to_owned();
        bad.replace_range(10..11, if &bad[10..11] == "A" { "B" } else { "A" });
        b.iter(|| TokenDigest::from_token(black_box(&bad)))
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("bench.redb")).expect("store");
    let now = Timestamp::now();
    let day = Duration::from_secs(86_400);
    // A store with some other tokens in it, as in real use.
    for i in 0..1_000 {
        let new = NewToken::new(format!("user{i}"), ExpiryPolicy::hard(day));
        store.create(&new, now).expect("create");
    }
    let hard = store
        .create(&NewToken::new("alice", ExpiryPolicy::hard(day)), now)
        .expect("create");
    let sliding = store
        .create(&NewToken::new("bob", ExpiryPolicy::sliding(day, None)), now)
        .expect("create");
    c.bench_function("store/authenticate_hard", |b| {
        b.iter(|| store.authenticate(black_box(hard.secret.expose_secret()), now))
    });
    c.bench_function("store/authenticate_sliding", |b| {
        b.iter(|| store.authenticate(black_box(sliding.secret.expose_secret()), now))
    });
    let uncached_dir = tempfile::tempdir().expect("temp dir");
    let uncached = Store::builder()
        .cache(false)
        .open(uncached_dir.path().join("bench.redb"))
        .expect("store");
    let token = uncached
        .create(&NewToken::new("carol", ExpiryPolicy::hard(day)), now)
        .expect("create");
    c.bench_function("store/authenticate_hard_uncached", |b| {
        b.iter(|| uncached.authenticate(black_box(token.secret.expose_secret()), now))
    });
    let unknown = TokenSecret::generate();
    c.bench_function("store/authenticate_unknown", |b| {
        b.iter(|| store.authenticate(black_box(unknown.expose_secret()), now))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
