//! Hearing other replicas: the notifications a write sends inside its
//! transaction, the listener that evicts what they name, and the periodic
//! flush.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Shared, schema};
use crate::model::token::TokenDigest;

/// The payload that tells replicas the store's token prefixes changed.
pub(super) const PREFIXES_CHANGED: &str = "prefixes";
/// The payload that tells replicas the catalog of permissions changed.
pub(super) const CATALOG_CHANGED: &str = "catalog";

/// Tells the other replicas that these tokens changed, inside `txn`. A
/// payload holds at most 8,000 bytes: past a hundred tokens, replicas drop
/// their whole cache instead.
pub(super) async fn notify(
    txn: &tokio_postgres::Transaction<'_>,
    digests: &[TokenDigest],
) -> Result<(), tokio_postgres::Error> {
    if digests.is_empty() {
        return Ok(());
    }
    let payload = if digests.len() > 100 {
        "*".to_owned()
    } else {
        // Then `@` and the sender's clock in milliseconds, from which each
        // replica measures how late it heard (`NOTIFICATION_LAG`); a
        // replica of an older build reads it as no digest.
        let mut payload = digests.iter().map(hex).collect::<Vec<_>>().join(",");
        payload.push_str(&format!(",@{}", unix_millis()));
        payload
    };
    txn.execute("SELECT pg_notify($1, $2)", &[&schema::CHANNEL, &payload])
        .await?;
    Ok(())
}

/// The clock in milliseconds since the epoch (0 before it).
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn hex(d: &TokenDigest) -> String {
    d.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<TokenDigest> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(TokenDigest::from_bytes(out))
}

/// The listener: evicts what other replicas change; on every (re)connect,
/// drops the whole cache, since notifications may have been missed.
pub(super) async fn listen(shared: std::sync::Weak<Shared>) {
    use futures_util::StreamExt as _;
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(s) = shared.upgrade() else { return };
        let connected = s.connect().await;
        drop(s);
        let (client, mut connection) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "database listener cannot connect; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        tokio::spawn(async move {
            let mut messages = std::pin::pin!(messages);
            while let Some(m) = messages.next().await {
                match m {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        if client
            .batch_execute(&format!("LISTEN {}", schema::CHANNEL))
            .await
            .is_err()
        {
            continue;
        }
        backoff = Duration::from_millis(100);
        {
            let Some(s) = shared.upgrade() else { return };
            s.cache.forget(None);
            // A change of prefix or of the catalog may have been missed too.
            hear_prefixes(&s).await;
            hear_catalog(&s).await;
            s.listening.store(true, Ordering::Release);
        }
        while let Some(payload) = rx.recv().await {
            let Some(s) = shared.upgrade() else { return };
            if payload == PREFIXES_CHANGED {
                hear_prefixes(&s).await;
            } else if payload == CATALOG_CHANGED {
                hear_catalog(&s).await;
            } else if payload == "*" {
                s.cache.forget(None);
            } else {
                let digests: Vec<TokenDigest> = payload.split(',').filter_map(unhex).collect();
                s.cache.forget(Some(&digests));
                if let Some(sent) = payload
                    .rsplit(',')
                    .next()
                    .and_then(|last| last.strip_prefix('@')?.parse::<u64>().ok())
                {
                    let lag = unix_millis().saturating_sub(sent);
                    crate::metrics::observe(
                        crate::metrics::NOTIFICATION_LAG,
                        ("", ""),
                        Duration::from_millis(lag),
                    );
                }
            }
        }
        // The connection is gone: until the next one listens, nothing cached
        // can be trusted beyond the staleness bound; drop it all now.
        let Some(s) = shared.upgrade() else { return };
        s.listening.store(false, Ordering::Release);
        s.cache.forget(None);
        crate::metrics::count(crate::metrics::LISTENER_RECONNECTS);
        tracing::warn!("database listener lost its connection; reconnecting");
    }
}

/// Takes in the store's prefixes as the database holds them, read on a
/// pooled connection (the listener's stays a listener: its last statement,
/// which operators see in `pg_stat_activity`, is its `LISTEN`).
async fn hear_prefixes(s: &Shared) {
    // Under the writer's lock, which a change of prefix here holds until
    // it is remembered: a list read before that change is not remembered
    // after it.
    let _order = s.writer.lock().await;
    let read = async {
        let client = s.client().await?;
        s.timed_pg(schema::stored_prefixes(&*client)).await
    };
    let result = match read.await {
        Ok(stored) => s.prefixes.remember_all(&stored).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not read the store's token prefixes");
    }
}

/// Takes in the catalog as the database holds it, read on a pooled
/// connection, if it differs from the one lookups resolve with.
async fn hear_catalog(s: &Shared) {
    // Under the writer's lock, which a change here holds until it is
    // published: a catalog read before it is not published after it.
    let _order = s.writer.lock().await;
    let read = async {
        let client = s.client().await?;
        s.timed_pg(schema::stored_catalog(&*client, "")).await
    };
    match read.await {
        Ok(stored) => {
            s.catalog_stale.store(false, Ordering::Release);
            if *s.catalog.get() != stored {
                s.publish(stored);
            }
        }
        Err(e) => {
            // Until it is read, cached records are read again (resolved with
            // what this replica has, at worst for one flush interval more).
            s.catalog_stale.store(true, Ordering::Release);
            s.cache.forget(None);
            tracing::warn!(
                error = %e,
                "could not read the store's catalog of permissions; reading it again at the next flush"
            );
        }
    }
}

pub(super) async fn flush_every(shared: std::sync::Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        {
            let Some(s) = shared.upgrade() else { return };
            tokio::select! {
                biased;
                // Stopped between two flushes, never inside one.
                () = s.stop_flushing.notified() => return,
                _ = ticks.tick() => {}
            }
        }
        let Some(s) = shared.upgrade() else { return };
        if let Err(e) = s.flush().await {
            tracing::warn!(error = %crate::error::chain(&e), "could not write buffered token uses");
        }
        if !s.listening.load(Ordering::Acquire) {
            // No notifications (LISTEN off, PgBouncer, the listener away):
            // a change of prefix or catalog elsewhere is read here instead.
            hear_prefixes(&s).await;
            hear_catalog(&s).await;
        } else if s.catalog_stale.load(Ordering::Acquire) {
            // A change heard but not read.
            hear_catalog(&s).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::token::TokenSecret;

    #[test]
    fn digests_travel_as_hex() {
        let d = TokenSecret::generate().digest();
        assert_eq!(unhex(&hex(&d)), Some(d));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }
}
