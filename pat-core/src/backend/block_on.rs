//! Waiting for a future on the calling thread, without a runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Runs `future` to completion on the calling thread, parking it while the
/// future waits. For a backend's lookup future, which by the
/// [`Verifier`](crate::Verifier) contract does not need an ambient runtime;
/// only ever called off the async workers (on a blocking pool).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    wait(future.as_mut())
}

/// Runs one of the engine's futures over a store that never waits (redb,
/// memory): one poll, no waker made, no allocation. Should such a future
/// ever wait, it is polled again with a waker that wakes this thread, and
/// waited for like [`block_on`] waits.
pub(crate) fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    if let Poll::Ready(out) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return out;
    }
    // Its wake-up, if any, went to the no-op waker: poll again, with a
    // real one, before parking.
    wait(future)
}

/// Polls `future` with a waker that unparks this thread, parking between
/// polls, until it is ready.
fn wait<F: Future + ?Sized>(mut future: std::pin::Pin<&mut F>) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => thread::park(),
        }
    }
}

/// A backend's own runtime, shut down in the background when dropped: a
/// plain drop blocks, and panics inside an async context (a server dropping
/// the backend, or failing to open it, from within its own runtime).
#[cfg(any(feature = "postgres", feature = "remote"))]
pub(crate) struct OwnedRuntime(Option<tokio::runtime::Runtime>);

#[cfg(any(feature = "postgres", feature = "remote"))]
impl OwnedRuntime {
    pub(crate) fn new(rt: tokio::runtime::Runtime) -> OwnedRuntime {
        OwnedRuntime(Some(rt))
    }
}

#[cfg(any(feature = "postgres", feature = "remote"))]
impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// Pending until another thread sets `done`, which it does a moment
    /// after being handed the waker of a poll.
    struct Later {
        polls: u32,
        done: Arc<AtomicBool>,
    }

    impl Future for Later {
        type Output = u32;

        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            self.polls += 1;
            if self.done.load(Ordering::Acquire) {
                return Poll::Ready(self.polls);
            }
            let (waker, done) = (cx.waker().clone(), self.done.clone());
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                done.store(true, Ordering::Release);
                waker.wake();
            });
            Poll::Pending
        }
    }

    #[test]
    fn a_ready_future_is_answered_at_once() {
        assert_eq!(run_ready(std::future::ready(7)), 7);
        assert_eq!(block_on(std::future::ready(7)), 7);
    }

    #[test]
    fn a_future_that_waits_after_the_first_poll_is_woken_through_a_later_one() {
        // The first poll sees the no-op waker: its wake-up is lost, and the
        // second poll's waker must be the one that ends the wait.
        let polls = run_ready(Later {
            polls: 0,
            done: Arc::new(AtomicBool::new(false)),
        });
        assert!(polls >= 2, "polled {polls} times");
    }

    #[test]
    fn block_on_waits_for_a_future_woken_from_another_thread() {
        let polls = block_on(Later {
            polls: 0,
            done: Arc::new(AtomicBool::new(false)),
        });
        assert_eq!(polls, 2);
    }
}
