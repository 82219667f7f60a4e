//! Creates many tokens at once, for benchmarks: `bulk STORE N TOKENS_FILE`
//! creates N hard-limit tokens (users `user0`…) in the redb store STORE, in
//! batches of 100,000 (one durable commit each), and writes their secrets to
//! TOKENS_FILE (mode 0600), one per line, for a load generator.
//! A benchmark tool: real tokens belong to nobody's file.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::Duration;

use pat_core::{ExpiryPolicy, NewToken, Store, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(store), Some(n), Some(out)) = (args.next(), args.next(), args.next()) else {
        return Err("usage: bulk STORE N TOKENS_FILE".into());
    };
    let n: usize = n.parse()?;
    let store = Store::builder().admin_socket(false).open(store)?;
    let mut file = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)?,
    );
    let now = Timestamp::now();
    for start in (0..n).step_by(100_000) {
        let news: Vec<NewToken> = (start..n.min(start + 100_000))
            .map(|i| {
                NewToken::new(
                    format!("user{i}"),
                    ExpiryPolicy::hard(Duration::from_secs(86_400)),
                )
            })
            .collect();
        for created in store.create_many(&news, now)? {
            writeln!(file, "{}", created.secret.expose_secret())?;
        }
    }
    file.flush()?;
    Ok(())
}
