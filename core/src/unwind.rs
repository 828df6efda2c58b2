//! User code that panics becomes an error of the component that ran it, never
//! an unwind through factum's tasks: a panicking handler or fold is reported
//! (with its message) and retried like any other failure.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`; a panic becomes `Err` with the panic's message. The caller must
/// not trust state `f` mutated when it panicked (factum reloads or refolds it).
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a payload that is not a string".to_owned())
    })
}

/// A future that turns a panic while polling `F` into `Err(message)`.
pub(crate) struct Guarded<F> {
    inner: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> Guarded<F> {
    pub(crate) fn new(inner: F) -> Self {
        Guarded {
            inner: Box::pin(inner),
        }
    }
}

impl<F: std::future::Future> std::future::Future for Guarded<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match guard(|| inner.poll(cx)) {
            Ok(std::task::Poll::Ready(out)) => std::task::Poll::Ready(Ok(out)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(message) => std::task::Poll::Ready(Err(message)),
        }
    }
}
