//! [`StatusMonitor`]: samples a group's backlog on an interval, records the metrics and
//! keeps the verdict.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::adapter::{Backlog, Client};
use crate::error::Error;
use crate::metric_names;

use super::{evaluate_group, Evaluation, GroupEvaluation, Observation, Progress, Verdict};

/// How long one look may take before it counts as failed.
pub const LOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Failed looks in a row after which [`StatusMonitor::spawn`] clears the verdict.
pub const FAILED_LOOKS: u32 = 3;

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
    /// The looks in the window, with the group's observation of each.
    looks: VecDeque<(Backlog, Observation)>,
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
            looks: VecDeque::new(),
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

    /// How often [`spawn`](Self::spawn) samples (at least every millisecond).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How far back the verdict looks (older samples are dropped).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Takes one look: asks the broker (within [`LOOK_TIMEOUT`]), records the metrics,
    /// and returns the look and the verdict over the window (`None` until there are two
    /// looks).
    pub async fn sample(&mut self) -> Result<(Backlog, Option<GroupEvaluation>), Error> {
        let backlog =
            tokio::time::timeout(LOOK_TIMEOUT, self.client.backlog(&self.source, &self.group))
                .await
                .map_err(|_| {
                    Error::Connection(
                        format!("the broker did not answer within {LOOK_TIMEOUT:?}").into(),
                    )
                })??;
        let mut observation = Observation::of_group(&backlog);
        if let Some(progress) = &self.progress {
            observation.failed = Some(progress.failed());
            observation.settled = observation.settled.or(Some(progress.settled()));
        }
        self.looks.push_back((backlog.clone(), observation));
        // Keep the newest look older than the window too: the window's start.
        while self.looks.len() > 2
            && self.looks[1]
                .1
                .at
                .elapsed()
                .is_ok_and(|age| age >= self.window)
        {
            self.looks.pop_front();
        }
        let (looks, observations): (Vec<Backlog>, Vec<Observation>) =
            self.looks.iter().cloned().unzip();
        let evaluation = evaluate_group(&looks, &observations);
        self.record(&backlog, evaluation.as_ref().map(|e| &e.group));
        Ok((backlog, evaluation))
    }

    fn labels(&self, extra: Option<(&'static str, String)>) -> Vec<(&'static str, String)> {
        let mut labels = vec![
            ("consumer", self.consumer.clone()),
            ("source", self.source.clone()),
        ];
        labels.extend(extra);
        labels
    }

    fn record(&self, backlog: &Backlog, evaluation: Option<&Evaluation>) {
        for p in &backlog.partitions {
            let partition = p.partition.map(|n| ("partition", n.to_string()));
            metrics::gauge!(metric_names::BACKLOG, &self.labels(partition)).set(p.backlog as f64);
        }
        // A drained backlog has no oldest message: 0, not the last age seen.
        let age = match backlog.oldest_age() {
            Some(age) => Some(age.as_secs_f64()),
            None if backlog.total() == 0 => Some(0.0),
            None => None,
        };
        if let Some(age) = age {
            metrics::gauge!(metric_names::OLDEST_UNACKED_AGE, &self.labels(None)).set(age);
        }
        self.record_verdict(evaluation.map(|e| e.verdict));
    }

    /// `wharf_status{verdict}`: 1 for `current`, 0 for the others (all 0 for none).
    fn record_verdict(&self, current: Option<Verdict>) {
        for verdict in Verdict::ALL {
            let value = if Some(verdict) == current { 1.0 } else { 0.0 };
            let label = Some(("verdict", verdict.as_str().to_owned()));
            metrics::gauge!(metric_names::STATUS, &self.labels(label)).set(value);
        }
    }

    /// Samples every [`interval`](Self::interval) on a task of its own until the handle
    /// is dropped. A failed look is logged and skipped (the window keeps its looks);
    /// after [`FAILED_LOOKS`] failed looks in a row the verdict is cleared
    /// ([`StatusHandle::current`] is `None`, every `wharf_status` series 0): a verdict
    /// the broker can no longer confirm is not reported as current.
    pub fn spawn(mut self) -> StatusHandle {
        let current = Arc::new(Mutex::new(None));
        let shared = current.clone();
        let set =
            move |e: Option<Evaluation>| *shared.lock().unwrap_or_else(|p| p.into_inner()) = e;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failed = 0u32;
            loop {
                tick.tick().await;
                match self.sample().await {
                    Ok((_, evaluation)) => {
                        failed = 0;
                        if let Some(e) = &evaluation {
                            tracing::debug!(
                                consumer = %self.consumer,
                                verdict = %e.group.verdict,
                                reason = %e.group.reason,
                                "consumer status"
                            );
                        }
                        set(evaluation.map(|e| e.group));
                    }
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(
                            consumer = %self.consumer,
                            error = %e,
                            failed,
                            "sampling the backlog failed"
                        );
                        if failed == FAILED_LOOKS {
                            set(None);
                            self.record_verdict(None);
                        }
                    }
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
