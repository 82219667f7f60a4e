//! Waiting for a future on the calling thread, without a runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Runs `future` to completion on the calling thread, parking it while the
/// future waits. For a backend's lookup future, which by the
/// [`Verifier`](crate::Verifier) contract does not need an ambient runtime,
/// and for the engine's operations over a store that never waits (redb,
/// memory), which then cost one poll and no allocation.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut future = pin!(future);
    // Most futures here are ready at once: no waker is made for them.
    if let Poll::Ready(out) = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        return out;
    }
    // A future that waits registers the waker it was polled with, so it
    // is polled again, with one that wakes this thread, before parking.
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
