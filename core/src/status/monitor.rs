//! [`StatusMonitor`]: samples a group's backlog on an interval, records the metrics and
//! keeps the verdict.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::adapter::{Backlog, Client};
use crate::error::Error;
use crate::metric_names;

use super::{evaluate, Evaluation, Observation, Progress, Verdict};

/// Samples a consumer group's backlog through its client, records `wharf_backlog`,
/// `wharf_oldest_unacked_age_seconds` and `wharf_status`, and evaluates the
/// [verdict](super) over a sliding window.
///
/// ```no_run
/// use std::time::Duration;
/// use wharf::status::StatusMonitor;
/// # async fn run(client: impl wharf::adapter::Client, progress: wharf::status::Progress) {
/// // `progress` is `consumer.progress()`, taken before `consumer.run(…)`.
/// let status = StatusMonitor::new(client, "orders", "billing")
///     .consumer("billing")
///     .progress(progress)
///     .interval(Duration::from_secs(10))
///     .window(Duration::from_secs(300))
///     .spawn();
/// // … later, in a health endpoint:
/// if let Some(evaluation) = status.current() {
///     println!("{}: {}", evaluation.verdict, evaluation.reason);
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct StatusMonitor<C> {
    client: C,
    source: String,
    group: String,
    consumer: String,
    progress: Option<Progress>,
    interval: Duration,
    window: Duration,
    observations: VecDeque<Observation>,
}

impl<C: Client> StatusMonitor<C> {
    /// Default sampling interval.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
    /// Default window: Burrow's default evaluation span is ten commits; five minutes at
    /// the default interval holds thirty samples.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

    /// A monitor of group `group` on `source`, labelled with the group's name.
    pub fn new(client: C, source: impl Into<String>, group: impl Into<String>) -> Self {
        let group = group.into();
        StatusMonitor {
            client,
            source: source.into(),
            consumer: group.clone(),
            group,
            progress: None,
            interval: Self::DEFAULT_INTERVAL,
            window: Self::DEFAULT_WINDOW,
            observations: VecDeque::new(),
        }
    }

    /// The `consumer` label of the metrics (the consumer's name; default: the group).
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// Counts failures (retries, dead letters) with this process's
    /// [`Consumer::progress`](crate::Consumer::progress), and progress too where the
    /// broker keeps no settled position (RabbitMQ): the verdict then tells slow from
    /// stalled and sees retries, which the broker alone does not.
    pub fn progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// How often [`spawn`](Self::spawn) samples.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How far back the verdict looks (older samples are dropped).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Takes one look: asks the broker, records the metrics, and returns the look and
    /// the verdict over the window (`None` until there are two samples).
    pub async fn sample(&mut self) -> Result<(Backlog, Option<Evaluation>), Error> {
        let backlog = self.client.backlog(&self.source, &self.group).await?;
        let mut observation = Observation::of_group(&backlog);
        if let Some(progress) = &self.progress {
            observation.failed = Some(progress.failed());
            observation.settled = observation.settled.or(Some(progress.settled()));
        }
        self.observations.push_back(observation);
        // Keep the newest sample older than the window too: the window's start.
        while self.observations.len() > 2
            && self.observations[1]
                .at
                .elapsed()
                .is_ok_and(|age| age >= self.window)
        {
            self.observations.pop_front();
        }
        let evaluation = evaluate(self.observations.make_contiguous());
        self.record(&backlog, evaluation.as_ref());
        Ok((backlog, evaluation))
    }

    fn record(&self, backlog: &Backlog, evaluation: Option<&Evaluation>) {
        let labels = [
            ("consumer", self.consumer.clone()),
            ("source", self.source.clone()),
        ];
        for p in &backlog.partitions {
            let gauge = match p.partition {
                Some(partition) => metrics::gauge!(
                    metric_names::BACKLOG,
                    &labels
                        .iter()
                        .cloned()
                        .chain([("partition", partition.to_string())])
                        .collect::<Vec<_>>()
                ),
                None => metrics::gauge!(metric_names::BACKLOG, &labels),
            };
            gauge.set(p.backlog as f64);
        }
        if let Some(age) = backlog.oldest_age() {
            metrics::gauge!(metric_names::OLDEST_UNACKED_AGE, &labels).set(age.as_secs_f64());
        }
        if let Some(evaluation) = evaluation {
            for verdict in Verdict::ALL {
                let value = if verdict == evaluation.verdict {
                    1.0
                } else {
                    0.0
                };
                metrics::gauge!(
                    metric_names::STATUS,
                    &labels
                        .iter()
                        .cloned()
                        .chain([("verdict", verdict.as_str().to_owned())])
                        .collect::<Vec<_>>()
                )
                .set(value);
            }
        }
    }

    /// Samples every [`interval`](Self::interval) on a task of its own until the handle
    /// is dropped. A failed look is logged and skipped (the window keeps its samples).
    pub fn spawn(mut self) -> StatusHandle {
        let current = Arc::new(Mutex::new(None));
        let shared = current.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.sample().await {
                    Ok((_, evaluation)) => {
                        if let Some(e) = &evaluation {
                            tracing::debug!(
                                consumer = %self.consumer,
                                verdict = %e.verdict,
                                reason = %e.reason,
                                "consumer status"
                            );
                        }
                        *shared.lock().unwrap_or_else(|e| e.into_inner()) = evaluation;
                    }
                    Err(e) => tracing::warn!(
                        consumer = %self.consumer,
                        error = %e,
                        "sampling the backlog failed"
                    ),
                }
            }
        });
        StatusHandle { current, task }
    }
}

/// The running [`StatusMonitor`]; dropping it stops the sampling.
#[derive(Debug)]
pub struct StatusHandle {
    current: Arc<Mutex<Option<Evaluation>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusHandle {
    /// The latest verdict (`None` until two samples were taken).
    pub fn current(&self) -> Option<Evaluation> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for StatusHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
