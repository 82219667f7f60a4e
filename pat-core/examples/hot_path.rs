//! A driver for instruction counts of the cached request path, for
//! `valgrind --tool=callgrind` (see `scripts/callgrind.sh`):
//! `hot_path KIND N` opens a store in a temporary directory, creates one
//! token, looks it up once (so it is cached), then `N` more times. Run it
//! with two values of `N` and subtract: what is left is the cost of `N`
//! cached lookups, without the setup. KIND is `hard`, `sliding` or `basic`,
//! or `in_use`: 10,000 hard tokens in use at once, each lookup the next of
//! them (for the cache simulator: `--tool=cachegrind --cache-sim=yes`).
//! The time is fixed, so every run does the same work.

use std::hint::black_box;
use std::time::Duration;

use pat_core::{Admin as _, ExpiryPolicy, NewToken, Store, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: hot_path hard|sliding|basic|in_use N".into());
    };
    let n: u64 = n.parse()?;
    let dir = tempfile::tempdir()?;
    let store = Store::builder()
        .admin_socket(false)
        .manual_flush()
        .open(dir.path().join("pat.redb"))?;
    let day = Duration::from_secs(86_400);
    let expiry = match kind.as_str() {
        "hard" | "basic" | "in_use" => ExpiryPolicy::hard(day),
        "sliding" => ExpiryPolicy::sliding(day, None),
        other => return Err(format!("unknown kind {other:?}").into()),
    };
    let now = Timestamp::from_unix_secs(1_800_000_000).ok_or("time")?;
    if kind == "in_use" {
        let new: Vec<NewToken> = (0..10_000)
            .map(|i| NewToken::new(format!("user{i}"), expiry))
            .collect();
        let secrets: Vec<String> = store
            .create_many(&new, now)?
            .into_iter()
            .map(|made| made.secret.expose_secret().to_owned())
            .collect();
        for secret in &secrets {
            store.authenticate(secret, now)?;
        }
        for i in 0..n {
            let secret = &secrets[(i % 10_000) as usize];
            black_box(store.authenticate(black_box(secret), now)?);
        }
        return Ok(());
    }
    let created = store.create(&NewToken::new("alice", expiry), now)?;
    let secret = created.secret.expose_secret().to_owned();
    let basic = kind == "basic";
    let once = |secret: &str| {
        if basic {
            store.authenticate_as("alice", secret, now)
        } else {
            store.authenticate(secret, now)
        }
    };
    once(&secret)?;
    for _ in 0..n {
        black_box(once(black_box(&secret))?);
    }
    Ok(())
}
