//! [`App`]: several named consumers in one process, under one shutdown, with one
//! summary and one catalog.

use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use serde::Serialize;
use tower::Service;

use crate::adapter::{Description, Subscriber};
use crate::consumer::{Consumer, Summary};
use crate::error::{BoxError, Error};
use crate::message::Message;
use crate::outcome::Outcome;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type Start = Box<dyn FnOnce(BoxFuture<()>) -> BoxFuture<Result<Summary, Error>> + Send>;

/// What operators need to know about one consumer: who owns it, what it reads, where its
/// dead letters go, how it retries. [`App::catalog`] lists one per consumer, and the app
/// logs each at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CatalogEntry {
    /// The consumer's name (`Consumer::new`).
    pub name: String,
    /// Who owns it ([`Consumer::owner`]), if said.
    pub owner: Option<String>,
    /// What it does ([`Consumer::description`]), if said.
    pub description: Option<String>,
    /// The broker URL without credentials or query ([`Consumer::broker_url`]), if said.
    pub broker_url: Option<String>,
    /// The broker, source, group and dead-letter destination, as the subscriber
    /// describes them ([`Subscriber::describe`]).
    #[serde(flatten)]
    pub source: Description,
    /// The retry policy, as [`Consumer::describe_retry`] put it; otherwise the runtime's
    /// own fallback (transient errors retried after `retry_delay`, dead-lettered from
    /// attempt `max_attempts`).
    pub retry: String,
    /// The middleware stack ([`Consumer::describe_stack`]: deduplication, idempotency
    /// keys, timeouts), if said.
    pub stack: Option<String>,
    /// Deliveries held unsettled at most.
    pub max_in_flight: usize,
    /// `per-key`, `unordered` or `sequential`.
    pub ordering: String,
}

/// Runs several consumers, possibly on different brokers, under one shutdown signal.
///
/// - Every consumer runs on a task of its own.
/// - When the shutdown future resolves, every consumer drains and stops (each within its
///   own `shutdown_timeout`).
/// - A consumer that fails (an error at start-up, a lost subscription) stops the others
///   too, gracefully: a process whose consumers run half is harder to operate than one
///   that stops and is restarted. A consumer that ends without an error
///   ([`stop_when_idle`](Consumer::stop_when_idle), a source that ended) leaves the
///   others running.
/// - Names must be unique; the catalog is logged at start-up.
///
/// ```
/// use std::time::Duration;
/// use wharf::{App, Consumer, Handler, HandlerError, Message};
/// use wharf_memory::MemoryBroker;
///
/// async fn bill(_: Message) -> Result<(), HandlerError> { Ok(()) }
/// async fn ship(_: Message) -> Result<(), HandlerError> { Ok(()) }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wharf::Error> {
/// let broker = MemoryBroker::new();
/// broker.publish("orders", Message::new("o-1")).unwrap();
/// let idle = Duration::from_millis(100);
/// let app = App::new()
///     .consumer(Consumer::new("billing", broker.subscribe("orders", "billing"), bill.into_service()).owner("team-billing").stop_when_idle(idle))
///     .consumer(Consumer::new("shipping", broker.subscribe("orders", "shipping"), ship.into_service()).owner("team-logistics").stop_when_idle(idle));
/// for entry in app.catalog() {
///     println!("{} owned by {:?} reads {} (dead letters: {:?})", entry.name, entry.owner, entry.source.source, entry.source.dead_letters);
/// }
/// let report = app.run(wharf::shutdown::signal()).await?;
/// assert_eq!(report.summary("billing").unwrap().acked, 1);
/// assert_eq!(report.summary("shipping").unwrap().acked, 1);
/// # Ok(()) }
/// ```
///
/// `wharf::adapter` is what the consumers are built from; `App` needs nothing of the
/// broker.
#[derive(Default)]
pub struct App {
    consumers: Vec<(CatalogEntry, Start)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("consumers", &self.catalog())
            .finish()
    }
}

impl App {
    /// An app with no consumers yet.
    pub fn new() -> Self {
        App::default()
    }

    /// Adds a consumer.
    pub fn consumer<S, Svc>(mut self, consumer: Consumer<S, Svc>) -> Self
    where
        S: Subscriber,
        Svc: Service<Message, Response = Outcome> + Send + 'static,
        Svc::Error: Into<BoxError>,
        Svc::Future: Send + 'static,
    {
        let entry = consumer.catalog_entry();
        let start: Start = Box::new(move |shutdown| Box::pin(consumer.run(shutdown)));
        self.consumers.push((entry, start));
        self
    }

    /// One entry per consumer, in the order they were added.
    pub fn catalog(&self) -> Vec<CatalogEntry> {
        self.consumers.iter().map(|(e, _)| e.clone()).collect()
    }

    /// The catalog as a JSON array (what `wharf catalog` merges across services): one
    /// object per consumer with `name`, `owner`, `description`, `broker_url`, `broker`,
    /// `source`, `group`, `dead_letters`, `retry`, `stack`, `max_in_flight`, `ordering`.
    pub fn catalog_json(&self) -> String {
        // A `CatalogEntry` holds only strings and numbers: serializing cannot fail.
        serde_json::to_string_pretty(&self.catalog()).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Runs every consumer until `shutdown` resolves (or one fails, or all end), then
    /// returns each one's result. Fails before starting anything when two consumers
    /// share a name or there are none. Needs a tokio runtime (consumers are spawned).
    ///
    /// Dropping the returned future instead aborts the consumers without draining them:
    /// what they held unsettled is redelivered by the broker (never lost), but to stop
    /// gracefully, resolve `shutdown`.
    pub async fn run<F>(self, shutdown: F) -> Result<AppReport, Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.consumers.is_empty() {
            return Err(Error::config(
                "consumers",
                "an app needs at least one consumer",
            ));
        }
        for (i, (entry, _)) in self.consumers.iter().enumerate() {
            if self.consumers[..i]
                .iter()
                .any(|(e, _)| e.name == entry.name)
            {
                return Err(Error::config(
                    "name",
                    format!("two consumers are named `{}`", entry.name),
                ));
            }
        }
        for entry in self.catalog() {
            tracing::info!(
                consumer = %entry.name,
                owner = entry.owner.as_deref().unwrap_or("unowned"),
                broker = entry.source.broker,
                source = %entry.source.source,
                group = entry.source.group.as_deref().unwrap_or("-"),
                dead_letters = entry.source.dead_letters.as_deref().unwrap_or("-"),
                retry = %entry.retry,
                "catalog"
            );
        }

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let mut names = Vec::new();
        let mut task_of = std::collections::HashMap::new();
        for (i, (entry, start)) in self.consumers.into_iter().enumerate() {
            let mut stopped = stopped.clone();
            let signal: BoxFuture<()> = Box::pin(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            });
            let task = tasks.spawn(async move { (i, start(signal).await) });
            task_of.insert(task.id(), i);
            names.push(entry.name);
        }
        // Aborted however `run` ends (done, or dropped by its caller), so the caller's
        // shutdown future does not outlive it.
        let _external = AbortOnDrop({
            let stop = stop.clone();
            tokio::spawn(async move {
                // A shutdown future that panics stops the consumers too: they are never
                // left running with nothing that can stop them.
                let ended = std::panic::AssertUnwindSafe(shutdown).catch_unwind().await;
                match ended {
                    Ok(()) => tracing::info!("shutdown requested: stopping every consumer"),
                    Err(_) => {
                        tracing::error!("the shutdown future panicked: stopping every consumer")
                    }
                }
                let _ = stop.send(true);
            })
        });

        let mut results: Vec<Option<Result<Summary, Error>>> = names.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    // A panic in the runtime itself (handler panics are caught per
                    // message): reported as that consumer's error, which stops the rest.
                    let i = task_of[&e.id()];
                    (i, Err(Error::Service(Box::new(e))))
                }
            };
            if let Err(e) = &result {
                tracing::error!(consumer = %names[i], error = %e, "consumer failed: stopping the app");
                let _ = stop.send(true);
            }
            results[i] = Some(result);
        }
        Ok(AppReport {
            consumers: names
                .into_iter()
                .zip(results)
                .map(|(name, result)| {
                    let result = result.unwrap_or_else(|| {
                        Err(Error::Service(
                            "the consumer task ended without a result".into(),
                        ))
                    });
                    (name, result)
                })
                .collect(),
        })
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What each consumer of an [`App`] did.
#[derive(Debug)]
pub struct AppReport {
    consumers: Vec<(String, Result<Summary, Error>)>,
}

impl AppReport {
    /// Each consumer's name and result, in the order they were added.
    pub fn consumers(&self) -> impl Iterator<Item = (&str, &Result<Summary, Error>)> {
        self.consumers.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// The summary of consumer `name`, if it ended without an error.
    pub fn summary(&self, name: &str) -> Option<&Summary> {
        self.consumers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.as_ref().ok())
    }

    /// Whether every consumer ended without an error.
    pub fn is_ok(&self) -> bool {
        self.consumers.iter().all(|(_, r)| r.is_ok())
    }

    /// The first error, with the consumer's name, if any consumer failed.
    pub fn first_error(&self) -> Option<(&str, &Error)> {
        self.consumers
            .iter()
            .find_map(|(n, r)| r.as_ref().err().map(|e| (n.as_str(), e)))
    }
}
