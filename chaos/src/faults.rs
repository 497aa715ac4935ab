//! What the harness does at each strike point.

use std::time::Duration;

use crate::brokers::Broker;

/// A fault the harness inflicts at each of its random points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `SIGKILL` the consumer child and start another: what it held comes back.
    Kill,
    /// `SIGTERM` the child, wait for its graceful stop (30 s at most), start another:
    /// everything it handled is settled before it exits, so nothing runs twice.
    Term,
    /// Drop every connection of the child (it connects through a TCP proxy); the child
    /// keeps running and must reconnect on its own.
    Cut,
    /// Restart the broker under the running child.
    Restart,
}

impl Fault {
    pub(crate) fn parse(v: &str) -> Result<Fault, String> {
        match v {
            "kill" => Ok(Fault::Kill),
            "term" => Ok(Fault::Term),
            "cut" => Ok(Fault::Cut),
            "restart" => Ok(Fault::Restart),
            other => Err(format!(
                "`--fault` must be kill, term, cut or restart, got `{other}`"
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Term => "SIGTERM",
            Fault::Cut => "connections cut",
            Fault::Restart => "broker restart",
        }
    }

    /// Whether the harness can inflict this fault on `broker`.
    pub(crate) fn check(self, broker: Broker) -> Result<(), String> {
        if self == Fault::Cut && broker == Broker::Kafka {
            return Err(
                "`--fault cut` needs the client to stay behind the proxy, and Kafka \
                        clients connect to the advertised listeners after bootstrap: use \
                        `--fault restart` on Kafka"
                    .to_owned(),
            );
        }
        Ok(())
    }

    /// How many handled messages one strike may make run again without a store: the
    /// handlers in flight and their acks on the way (twice `in_flight`), plus those
    /// handled within `unsettled` before it (Kafka's uncommitted watermark, see
    /// [`Broker::unsettled_window`]). `None` for a graceful stop, which may replay none.
    pub(crate) fn replays(self, broker: Broker) -> Option<Duration> {
        match self {
            Fault::Term => None,
            Fault::Kill | Fault::Cut | Fault::Restart => Some(broker.unsettled_window()),
        }
    }
}

/// Restarts `broker` with `scripts/brokers.sh` (it waits until the broker answers).
pub(crate) async fn restart(broker: Broker) -> Result<(), String> {
    let function = match broker {
        Broker::RabbitMq => "restart_rabbitmq",
        Broker::Kafka => "restart_kafka",
        Broker::JetStream => "restart_nats",
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/brokers.sh");
    let output = tokio::process::Command::new("bash")
        .args(["-c", &format!("source '{script}' && {function}")])
        .output()
        .await
        .map_err(|e| format!("running {function}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{function} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
