//! The queues behind one work queue, and declaring (or verifying) them.
//!
//! For a work queue `orders` with tiers `1s,10s,60s,10m`:
//!
//! | queue | arguments | role |
//! |---|---|---|
//! | `orders` | `x-queue-type` | the work queue; bound to `exchange` with `binding_key` if one is configured |
//! | `orders.retry.1s`, `orders.retry.10s`, ... | `x-message-ttl`, `x-dead-letter-exchange: ""`, `x-dead-letter-routing-key: orders` | retry tiers: a copy waits there for the tier's TTL, then the broker dead-letters it back to `orders` |
//! | `orders.dlq` | `x-queue-type` | dead letters with the `wharf-dlq-*` headers |
//!
//! Every queue is durable and of the configured [`QueueType`]; quorum
//! tier queues dead-letter `at-least-once` (with `x-overflow: reject-publish`, which that
//! strategy needs), so a message moving from a tier back to the work queue is never lost.
//!
//! A `Retry { after }` goes to the tier nearest to `after` on a log scale (the ratio
//! counts, not the difference: 1.2 s goes to 1 s rather than 2 s, 4.8 s to 5 s; a tie
//! goes to the longer tier; `after` beyond the last tier goes to the last). Retry
//! backoffs carry jitter that only lengthens them, so rounding *up* sent the default
//! policy's first retry (1–1.2 s) to the next tier, ten times longer; rounding to the
//! nearest keeps "comes back after about `after`". The default tiers (`1s, 2s, 5s, 10s,
//! 30s, 1m, 5m, 10m`) follow the default retry policy's doubling backoff and the dedup
//! and idempotency layers' in-flight waits (1 s, 5 s). Because all messages
//! in a tier queue have the same TTL, they expire in order and a long delay never holds
//! up a short one (per-message TTLs in a shared queue would: they expire only at the
//! head). No plugin is needed.
//!
//! Re-declaring a queue with other arguments (another type, other tiers) fails with
//! `PRECONDITION_FAILED`; change a topology by deleting the queues or using new names.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};
use wharf::Error;

use crate::config::{QueueType, RabbitConfig};
use crate::error::RabbitError;

/// The names and arguments of a work queue's topology.
#[derive(Debug, Clone)]
pub struct Topology {
    queue: String,
    exchange: Option<String>,
    binding_key: String,
    tiers: Vec<(Duration, String)>,
    dead_letter_queue: String,
    queue_type: QueueType,
    expires: Option<Duration>,
    delivery_limit: Option<u32>,
    declare: bool,
}

/// A tier's name suffix: `100ms`, `1s`, `10m`, `2h`.
fn tier_label(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

impl Topology {
    /// The topology of `config`'s work queue (a configuration error if it has none, or
    /// if `config` does not [validate](RabbitConfig::validate)).
    pub fn new(config: &RabbitConfig) -> Result<Self, Error> {
        config.validate()?;
        let queue = config.require_queue()?.to_owned();
        Ok(Topology {
            tiers: config
                .retry_tiers
                .iter()
                .map(|d| (*d, format!("{queue}.retry.{}", tier_label(*d))))
                .collect(),
            dead_letter_queue: format!("{queue}.dlq"),
            exchange: config.exchange.clone(),
            binding_key: config.binding_key.clone(),
            queue_type: config.queue_type,
            expires: config.queue_expires,
            delivery_limit: config.delivery_limit,
            declare: config.declare,
            queue,
        })
    }

    /// Every queue name derived from `queue`, for validation.
    pub(crate) fn names_for(queue: &str, tiers: &[Duration]) -> Vec<String> {
        let mut names = vec![queue.to_owned(), format!("{queue}.dlq")];
        names.extend(
            tiers
                .iter()
                .map(|d| format!("{queue}.retry.{}", tier_label(*d))),
        );
        names
    }

    /// The work queue.
    pub fn work_queue(&self) -> &str {
        &self.queue
    }

    /// The dead-letter queue, `<queue>.dlq`.
    pub fn dead_letter_queue(&self) -> &str {
        &self.dead_letter_queue
    }

    /// The retry tiers: delay and queue name, ascending.
    pub fn tiers(&self) -> impl ExactSizeIterator<Item = (Duration, &str)> + '_ {
        self.tiers.iter().map(|(d, n)| (*d, n.as_str()))
    }

    /// The tier a `Retry { after }` goes to: the smallest ≥ `after`, else the largest.
    pub fn tier_for(&self, after: Duration) -> (Duration, &str) {
        // Distance on a log scale; tiers are sorted and non-zero (validated), so the
        // first tier at least as long as `after` and the one before it are the
        // candidates.
        let distance = |tier: Duration| {
            let (t, a) = (tier.as_secs_f64(), after.as_secs_f64().max(1e-9));
            (t / a).ln().abs()
        };
        let at_least = self.tiers.iter().position(|(d, _)| *d >= after);
        let chosen = match at_least {
            None => self.tiers.last(),
            Some(0) => self.tiers.first(),
            Some(i) => {
                let (shorter, longer) = (&self.tiers[i - 1], &self.tiers[i]);
                if distance(shorter.0) < distance(longer.0) {
                    Some(shorter)
                } else {
                    Some(longer)
                }
            }
        };
        chosen
            .map(|(d, n)| (*d, n.as_str()))
            // `RabbitConfig` validation guarantees at least one tier.
            .unwrap_or((Duration::ZERO, self.queue.as_str()))
    }

    /// The queue type of every queue.
    pub fn queue_type(&self) -> QueueType {
        self.queue_type
    }

    fn base_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(self.queue_type.as_str().into()),
        );
        if let Some(expires) = self.expires {
            args.insert(
                "x-expires".into(),
                AMQPValue::LongLongInt(expires.as_millis().min(i64::MAX as u128) as i64),
            );
        }
        args
    }

    /// The work queue's: on a quorum queue with a delivery limit, `x-delivery-limit` and
    /// the broker's own dead-lettering past it to `<queue>.dlq`.
    fn work_args(&self) -> FieldTable {
        let mut args = self.base_args();
        if let (QueueType::Quorum, Some(limit)) = (self.queue_type, self.delivery_limit) {
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(limit.into()),
            );
            self.dead_letter_to(&mut args, &self.dead_letter_queue);
        }
        args
    }

    /// The broker dead-letters from this queue to `queue` through the default exchange;
    /// on quorum queues at-least-once (which needs `x-overflow: reject-publish`).
    fn dead_letter_to(&self, args: &mut FieldTable, queue: &str) {
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from("")),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(queue.into()),
        );
        if self.queue_type == QueueType::Quorum {
            args.insert(
                "x-dead-letter-strategy".into(),
                AMQPValue::LongString("at-least-once".into()),
            );
            args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
        }
    }

    fn tier_args(&self, ttl: Duration) -> FieldTable {
        let mut args = self.base_args();
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(ttl.as_millis() as i64),
        );
        self.dead_letter_to(&mut args, &self.queue);
        args
    }

    /// Declares every queue (and the exchange and binding), or — when the configuration
    /// says `declare = false` — verifies with passive declares that they exist.
    ///
    /// A failed declare closes `channel` (AMQP channel errors are final).
    pub async fn declare(&self, channel: &Channel) -> Result<(), Error> {
        self.declare_inner(channel)
            .await
            .map_err(|e| Error::Subscribe(Box::new(e)))
    }

    pub(crate) async fn declare_inner(&self, channel: &Channel) -> Result<(), RabbitError> {
        let passive = !self.declare;
        let options = QueueDeclareOptions {
            durable: true,
            passive,
            ..QueueDeclareOptions::default()
        };
        let declare = |name: &str, args: FieldTable| {
            let name = name.to_owned();
            async move {
                let what = if passive { "verifying" } else { "declaring" };
                channel
                    .queue_declare(name.as_str().into(), options, args)
                    .await
                    .map(drop)
                    .map_err(|e| {
                        let hint = declare_hint(&e.to_string(), passive);
                        RabbitError::amqp(format!("{what} queue `{name}`{hint}"), e)
                    })
            }
        };
        declare(&self.queue, self.work_args()).await?;
        for (ttl, name) in &self.tiers {
            declare(name, self.tier_args(*ttl)).await?;
        }
        declare(&self.dead_letter_queue, self.base_args()).await?;
        if let Some(exchange) = &self.exchange {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        passive,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| RabbitError::amqp(format!("declaring exchange `{exchange}`"), e))?;
            if !passive {
                channel
                    .queue_bind(
                        self.queue.as_str().into(),
                        exchange.as_str().into(),
                        self.binding_key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| {
                        RabbitError::amqp(
                            format!("binding queue `{}` to exchange `{exchange}`", self.queue),
                            e,
                        )
                    })?;
            }
        }
        Ok(())
    }
}

/// What to do about a refused queue declare, from the broker's reply text: the options
/// to set, so the error is actionable without knowing RabbitMQ's argument names. The
/// broker names only the first argument that differs (`x-dead-letter-exchange` comes
/// before `x-queue-type`), so every option that shapes the arguments is listed.
fn declare_hint(reply: &str, passive: bool) -> String {
    if reply.contains("inequivalent arg") {
        let arg = reply
            .split("inequivalent arg '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or("?");
        let option = match arg {
            "x-queue-type" => "`queue_type`",
            "x-message-ttl" => "`retry_tiers`",
            "x-expires" => "`queue_expires`",
            _ => "`delivery_limit` (`none` for a queue declared without one)",
        };
        format!(
            " (the queue exists with another `{arg}`: set {option} to match it; wharf \
             declares its queues from `queue_type`, `delivery_limit`, `retry_tiers` and \
             `queue_expires`; or delete the queue)"
        )
    } else if passive && reply.contains("NOT_FOUND") {
        " (with `declare=false` the whole topology must exist: the work queue, \
         `<queue>.retry.<delay>` for every retry tier and `<queue>.dlq`; declare it \
         with `declare=true` or `wharf_rabbitmq::topology::declare`)"
            .to_owned()
    } else {
        String::new()
    }
}

/// Connects, declares (or verifies) `config`'s topology, and disconnects.
///
/// Run it at deploy time, or before publishing to a queue nobody has subscribed to yet:
/// messages published to an exchange before its queues exist are unroutable.
pub async fn declare(config: &RabbitConfig) -> Result<Topology, Error> {
    let topology = Topology::new(config)?;
    let connection = crate::connection::connect(config, "topology")
        .await
        .map_err(|e| Error::Connection(Box::new(e)))?;
    let result = async {
        let channel = crate::connection::channel(&connection)
            .await
            .map_err(|e| Error::Connection(Box::new(e)))?;
        crate::error::timeout(
            config.connect_timeout,
            "declaring the topology",
            topology.declare_inner(&channel),
        )
        .await
        .map_err(|e| Error::Subscribe(Box::new(e)))?;
        let _ = channel.close(200, "OK".into()).await;
        Ok(topology)
    }
    .await;
    let _ = connection.close(200, "OK".into()).await;
    result
}

/// Declares the topic exchange `exchange` (durable) alone: what a producer needs before
/// any consumer group exists (messages published to it are unroutable until a queue is
/// bound).
pub async fn declare_exchange(config: &RabbitConfig, exchange: &str) -> Result<(), Error> {
    config.validate()?;
    crate::config::short_string("exchange", exchange)?;
    let connection = crate::connection::connect(config, "topology")
        .await
        .map_err(|e| Error::Connection(Box::new(e)))?;
    let result = async {
        let channel = crate::connection::channel(&connection).await?;
        crate::error::timeout(config.connect_timeout, "declaring an exchange", async {
            channel
                .exchange_declare(
                    exchange.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| RabbitError::amqp(format!("declaring exchange `{exchange}`"), e))
        })
        .await?;
        let _ = channel.close(200, "OK".into()).await;
        Ok::<_, RabbitError>(())
    }
    .await;
    let _ = connection.close(200, "OK".into()).await;
    result.map_err(|e| Error::Subscribe(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_goes_to_the_nearest_tier_on_a_log_scale() {
        let config = RabbitConfig::from_url(
            "amqp://localhost/?queue=orders&retry_tiers=100ms,1s,10s,60s,10m",
        )
        .unwrap();
        let t = Topology::new(&config).unwrap();
        assert_eq!(t.tier_for(Duration::ZERO).1, "orders.retry.100ms");
        assert_eq!(
            t.tier_for(Duration::from_millis(100)).1,
            "orders.retry.100ms"
        );
        assert_eq!(
            t.tier_for(Duration::from_millis(300)).1,
            "orders.retry.100ms"
        );
        assert_eq!(t.tier_for(Duration::from_millis(400)).1, "orders.retry.1s");
        assert_eq!(t.tier_for(Duration::from_secs(11)).1, "orders.retry.10s");
        assert_eq!(t.tier_for(Duration::from_secs(30)).1, "orders.retry.1m");
        assert_eq!(t.tier_for(Duration::from_secs(3600)).1, "orders.retry.10m");
        assert_eq!(t.dead_letter_queue(), "orders.dlq");
    }

    #[test]
    fn the_default_tiers_fit_the_default_backoff() {
        // The default retry policy waits 1, 2, 4, 8 s plus up to 20 % jitter; the dedup
        // and idempotency layers wait 1 s and 5 s for a copy in flight.
        let config = RabbitConfig::from_url("amqp://localhost/?queue=orders").unwrap();
        let t = Topology::new(&config).unwrap();
        let tier = |ms: u64| t.tier_for(Duration::from_millis(ms)).0;
        for (after, tier_ms) in [
            (1_000, 1_000),
            (1_200, 1_000),
            (2_000, 2_000),
            (2_400, 2_000),
            (4_000, 5_000),
            (4_800, 5_000),
            (5_000, 5_000),
            (8_000, 10_000),
            (9_600, 10_000),
        ] {
            assert_eq!(
                tier(after),
                Duration::from_millis(tier_ms),
                "after {after} ms"
            );
        }
    }
}
