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
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
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
