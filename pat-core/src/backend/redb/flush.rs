//! Writing buffered uses: the background thread and the flush itself.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use redb::ReadableTable;

use super::tx::RedbTx;
use super::{Changes, Inner, TOKENS, audit_in, codec, corrupt, storage};
use crate::backend::block_on::run_ready;
use crate::backend::engine;
use crate::error::{BackendError, StoreError};
use crate::model::time::Timestamp;
use crate::testing::failpoints::Point;

/// The thread that writes buffered uses every flush interval.
pub(super) struct Flusher {
    stop: mpsc::Sender<()>,
    thread: thread::JoinHandle<()>,
}

impl Flusher {
    /// Starts the thread; it holds the state weakly, so the store's drop
    /// is not kept waiting.
    pub(super) fn spawn(inner: &Arc<Inner>, every: Duration) -> std::io::Result<Flusher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let weak = Arc::downgrade(inner);
        let thread = thread::Builder::new()
            .name("pat-store-flush".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Some(inner) = weak.upgrade() else { break };
                    if let Err(e) = inner.flush() {
                        tracing::warn!(error = %e, "could not write buffered token uses");
                    }
                }
            })?;
        Ok(Flusher { stop, thread })
    }

    /// Stops the thread, waiting for a flush under way to finish.
    pub(super) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

impl Inner {
    /// Writes the buffered uses and the audit entries the request path
    /// noted; see [`Store::flush`].
    pub(super) fn flush(&self) -> Result<usize, StoreError> {
        let started = std::time::Instant::now();
        let written = self.write_buffered();
        crate::metrics::flushed("redb", started, &written);
        written
    }

    /// The flush itself.
    fn write_buffered(&self) -> Result<usize, StoreError> {
        let events = self.cache.take_audit();
        let revocations = self.cache.take_revocations();
        let batch = self.cache.take_uses();
        if batch.is_empty() && events.is_empty() && revocations.is_empty() {
            self.cache.flushed(batch);
            return Ok(0);
        }
        let mut changes = Changes::default();
        let written = self
            .cache
            .hooks
            .at(Point::FlushWrite)
            .map_err(|e| StoreError::Storage(BackendError::new(e)))
            .and_then(|()| {
                self.write(|txn| {
                    for e in &events {
                        audit_in(txn, e)?;
                    }
                    let mut tokens = txn.open_table(TOKENS).map_err(storage)?;
                    let mut written = 0;
                    for (digest, touch) in batch.sorted() {
                        let current = tokens
                            .get(digest.as_bytes())
                            .map_err(storage)?
                            .map(|v| codec::decode(v.value()));
                        // A token revoked since its use stays revoked.
                        let Some(info) = current else { continue };
                        let mut info = info.map_err(corrupt)?;
                        touch.apply(&mut info);
                        tokens
                            .insert(digest.as_bytes(), codec::encode(&info).as_slice())
                            .map_err(storage)?;
                        written += 1;
                    }
                    drop(tokens);
                    // Reuse detection's revocations, each family audited.
                    let mut tx = RedbTx::new(self, txn, &mut changes);
                    run_ready(engine::revoke_reused(
                        &mut tx,
                        &revocations,
                        Timestamp::now(),
                    ))?;
                    Ok(written)
                })
            });
        match written {
            Ok(n) => {
                let _ = self.cache.hooks.at(Point::FlushCommitted);
                self.cache.deleted(&changes.deleted);
                self.cache.flushed(batch);
                Ok(n)
            }
            Err(e) => {
                self.cache.unflushed(batch);
                self.cache.unwritten_audit(events);
                self.cache.unrevoked(revocations);
                Err(e)
            }
        }
    }
}
