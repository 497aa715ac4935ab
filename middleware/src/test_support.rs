//! Test doubles shared by the layers' unit tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tower::{service_fn, Service, ServiceExt};
use wharf::{BoxError, HandlerError, Message, Outcome};

/// A service answering each call with the next scripted result (an `Err` is a transient
/// handler error), counting calls.
pub(crate) fn scripted(
    results: Vec<Result<Outcome, &'static str>>,
) -> (
    impl Service<Message, Response = Outcome, Error = BoxError, Future: Send> + Clone,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(results);
    let counter = calls.clone();
    let svc = service_fn(move |_msg: Message| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let result = results[n]
            .clone()
            .map_err(|e| BoxError::from(HandlerError::transient(e)));
        async move { result }
    });
    (svc, calls)
}

/// Readies `svc` and calls it with a clone of `msg`.
pub(crate) async fn run<S>(svc: &mut S, msg: &Message) -> Result<Outcome, BoxError>
where
    S: Service<Message, Response = Outcome, Error = BoxError>,
{
    svc.ready().await?.call(msg.clone()).await
}
