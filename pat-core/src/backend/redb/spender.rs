//! Spending uses of quotas off the request's thread: one writer thread per
//! store, which commits every spend waiting for it in one transaction.
//!
//! A spend must be durable before the use is accepted (no crash gives a
//! use back), and a durable redb commit syncs the file: milliseconds on a
//! disk, which an async worker must not spend waiting, nor hold redb's
//! one write lock for while other spends queue behind it. So
//! [`Verifier::spend`](crate::Verifier::spend) hands the use to this
//! thread and answers a future; the thread takes every spend queued by
//! then (at most [`BATCH`]) and commits them together: one sync for all
//! (group commit), each use still checked and counted on its own against
//! the record as the transaction sees it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::task::{Context, Poll, Waker};
use std::thread;

use super::Inner;
use super::tx::RedbTx;
use crate::backend::block_on::run_ready;
use crate::backend::engine;
use crate::error::{AuthError, BackendError, StoreError};
use crate::model::record::{Identity, TokenInfo};
use crate::model::time::Timestamp;

/// The most spends one transaction commits.
pub(super) const BATCH: usize = 256;

/// The store's writer thread, started by its first spend (a store whose
/// tokens have no quota never starts it), and started again should it
/// ever be gone. It holds the store weakly; the store's drop stops it once
/// what it was given is written.
#[derive(Default)]
pub(super) struct Spender {
    /// Taken for each spend (one durable write each: this lock is never
    /// what a use waits on) and to stop the thread.
    writer: Mutex<Option<Writer>>,
}

/// A running writer thread and its queue.
struct Writer {
    queue: mpsc::Sender<Job>,
    thread: thread::JoinHandle<()>,
}

/// One use to spend, and where its answer goes.
struct Job {
    identity: Identity,
    now: Timestamp,
    answer: Answer,
}

/// What a spend said, once the writer committed it: the slot a [`Spent`]
/// future waits on. Dropped unanswered (the thread stopped), it answers
/// that the store is unavailable, never leaving the request waiting.
struct Answer(Arc<Slot>);

#[derive(Default)]
struct Slot(Mutex<SlotState>);

/// The answer once given (until the future takes it), and the waker of
/// the future waiting for it.
#[derive(Default)]
struct SlotState {
    given: bool,
    answer: Option<Result<Identity, AuthError>>,
    waker: Option<Waker>,
}

impl Answer {
    fn send(self, result: Result<Identity, AuthError>) {
        self.0.put(result);
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.0.put_if_empty(|| Err(stopped()));
    }
}

impl Slot {
    fn put(&self, result: Result<Identity, AuthError>) {
        self.put_if_empty(|| result);
    }

    fn put_if_empty(&self, result: impl FnOnce() -> Result<Identity, AuthError>) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.given {
                return;
            }
            slot.given = true;
            slot.answer = Some(result());
            slot.waker.take()
        };
        // Woken with the lock let go: a waker may poll at once.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The answer to one spend, as a future any executor can poll.
pub(super) struct Spent(Arc<Slot>);

impl Future for Spent {
    type Output = Result<Identity, AuthError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.answer.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

fn stopped() -> AuthError {
    AuthError::Store(StoreError::Storage(BackendError::new(
        std::io::Error::other("the store's writer thread stopped"),
    )))
}

impl Spender {
    /// Queues a spend of `identity`'s use at `now` for `inner`'s writer
    /// thread, starting it if need be.
    pub(super) fn spend(&self, inner: &Arc<Inner>, identity: Identity, now: Timestamp) -> Spent {
        let slot = Arc::new(Slot::default());
        let job = Job {
            identity,
            now,
            answer: Answer(slot.clone()),
        };
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // A send fails only once the thread is gone: the job comes back,
        // and a new thread takes it.
        let job = match writer.as_ref() {
            Some(w) => match w.queue.send(job) {
                Ok(()) => return Spent(slot),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        match start(Arc::downgrade(inner)) {
            Ok(started) => {
                // Refused only if the new thread died at once: the job's
                // drop then answers.
                drop(started.queue.send(job));
                *writer = Some(started);
            }
            Err(why) => {
                let why =
                    std::io::Error::other(format!("could not start the store's writer: {why}"));
                job.answer.send(Err(AuthError::Store(StoreError::Storage(
                    BackendError::new(why),
                ))));
            }
        }
        Spent(slot)
    }

    /// Stops the writer thread once the spends it was given are written
    /// (the store's drop), so that the file is closed when the drop
    /// returns.
    pub(super) fn stop(&self) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Writer { queue, thread }) = writer {
            drop(queue);
            let _ = thread.join();
        }
    }
}

fn start(inner: Weak<Inner>) -> std::io::Result<Writer> {
    let (queue, jobs) = mpsc::channel::<Job>();
    let thread = thread::Builder::new()
        .name("pat-store-spend".into())
        .spawn(move || write_spends(&inner, &jobs))?;
    Ok(Writer { queue, thread })
}

/// The writer thread: waits for a spend, takes those queued behind it and
/// commits them. Ends once the store is gone (its queue closes with it).
fn write_spends(inner: &Weak<Inner>, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter().take(BATCH - 1));
        let Some(store) = inner.upgrade() else { break };
        // A panic fails this batch only (its answers say unavailable), not
        // every later spend.
        let answers =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.spend_all(&batch)));
        let Ok(answers) = answers else {
            drop(store);
            continue;
        };
        // The store is let go before any answer: a caller that drops it
        // once answered finds it closed, not kept open by this thread.
        drop(store);
        for (job, said) in batch.into_iter().zip(answers) {
            let Job {
                identity, answer, ..
            } = job;
            answer.send(crate::backend::spent(identity, said));
        }
    }
}

/// What one spend said: the record after it, or why it was refused.
type Said = Result<Result<TokenInfo, AuthError>, StoreError>;

impl Inner {
    /// Spends each job's use ([`engine::spend`]), all in one write
    /// transaction. Should it fail, each is tried again in its own, so
    /// that one unreadable record fails its own spend only.
    fn spend_all(&self, batch: &[Job]) -> Vec<Said> {
        let together = self.delete(|txn, changes| {
            let mut out = Vec::with_capacity(batch.len());
            for job in batch {
                let mut tx = RedbTx::new(self, txn, changes);
                let (id, client) = (job.identity.token_id(), job.identity.client());
                out.push(run_ready(engine::spend(&mut tx, id, client, job.now))?);
            }
            Ok(out)
        });
        match together {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(_) if batch.len() > 1 => batch
                .iter()
                .map(|job| self.spend_one(&job.identity, job.now))
                .collect(),
            Err(e) => vec![Err(e)],
        }
    }

    /// One spend in its own write transaction.
    pub(super) fn spend_one(&self, identity: &Identity, now: Timestamp) -> Said {
        let (id, client) = (identity.token_id(), identity.client());
        self.delete(|txn, changes| {
            let mut tx = RedbTx::new(self, txn, changes);
            run_ready(engine::spend(&mut tx, id, client, now))
        })
    }
}
