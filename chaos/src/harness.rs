//! `wharf-chaos run`: publish, start the child, kill it at random points, count.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::process::{Child, Command};
use wharf::adapter::DeadLetterReader;
use wharf::{Message, Publisher};

use crate::brokers::Broker;
use crate::faults::{self, Fault};
use crate::{consume, effects, number, value, Effects};
use wharf_conformance::net::Proxy;

/// Keys the messages are spread over; each key's messages are published in order.
const KEYS: u64 = 64;

/// How long the run may go without a new effect before it fails.
const STALL: Duration = Duration::from_secs(90);

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    broker: Broker,
    fault: Fault,
    messages: u64,
    kills: u64,
    effects: Effects,
    in_flight: u64,
    work_us: u64,
    seed: u64,
}

impl Settings {
    pub(crate) fn parse(args: &[String]) -> Result<Settings, String> {
        let mut broker = None;
        let mut s = Settings {
            broker: Broker::RabbitMq,
            fault: Fault::Kill,
            messages: 20_000,
            kills: 5,
            effects: Effects::Inbox,
            in_flight: 64,
            work_us: 500,
            seed: rand::rng().random(),
        };
        let mut i = 0;
        while i < args.len() {
            let v = value(args, i)?;
            match args[i].as_str() {
                "--broker" => broker = Some(Broker::parse(v)?),
                "--fault" => s.fault = Fault::parse(v)?,
                "--work-us" => s.work_us = number(v, "--work-us")?,
                "--messages" => s.messages = number(v, "--messages")?,
                "--kills" => s.kills = v.parse().map_err(|_| format!("`--kills`: `{v}`"))?,
                "--effects" => s.effects = Effects::parse(v)?,
                "--in-flight" => s.in_flight = number(v, "--in-flight")?,
                "--seed" => s.seed = v.parse().map_err(|_| format!("`--seed`: `{v}`"))?,
                other => return Err(format!("run: unknown argument `{other}`")),
            }
            i += 2;
        }
        s.broker = broker.ok_or("run: `--broker` is required")?;
        s.fault.check(s.broker)?;
        Ok(s)
    }
}

/// The child consumer, started from this same binary.
/// Its log (standard error) goes to `log`, appended.
fn spawn(child: &consume::Settings, log: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening the children's log {}: {e}", log.display()))?;
    Command::new(exe)
        .arg("consume")
        .args(child.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the consumer child: {e}"))
}

/// Publishes the backlog: message `i` has id `<run>-<i>`, key `k<i % KEYS>` and payload
/// `i`; each key's messages go out one after another (in order), the keys side by side.
async fn publish(
    client: &wharf_any::AnyClient,
    source: &str,
    run: &str,
    n: u64,
) -> Result<(), String> {
    let publisher = client.publisher();
    try_join_all((0..KEYS).map(|k| {
        let publisher = &publisher;
        async move {
            for i in (k..n).step_by(KEYS as usize) {
                let message =
                    Message::with_id(format!("{run}-{i}"), i.to_string()).with_key(format!("k{k}"));
                publisher
                    .publish(source, message)
                    .await
                    .map_err(|e| format!("publishing message {i}: {e}"))?;
            }
            Ok::<(), String>(())
        }
    }))
    .await?;
    Ok(())
}

/// The last lines of the children's log.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    format!(
        "\nlast lines of {}:\n{}",
        log.display(),
        lines[from..].join("\n")
    )
}

/// The consumer child running now, and how to start another.
struct Children<'a> {
    running: Child,
    settings: &'a consume::Settings,
    log: &'a Path,
    /// Whether a child that exits by itself is started again (a supervisor's job), and
    /// how many were.
    supervise: bool,
    restarted: u64,
}

impl Children<'_> {
    /// Starts a new child in place of the running one (which must have exited).
    fn start_another(&mut self) -> Result<(), String> {
        self.running = spawn(self.settings, self.log)?;
        Ok(())
    }
}

/// Waits until `target` messages took effect; fails when nothing moves for [`STALL`] or
/// the child exits (unless supervised: then another starts).
async fn wait_for(
    db: &tokio_postgres::Client,
    run: &str,
    target: u64,
    children: &mut Children<'_>,
) -> Result<u64, String> {
    let log = children.log;
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        let now = effects::distinct(db, run).await?;
        if now >= target {
            return Ok(now);
        }
        if let Ok(Some(status)) = children.running.try_wait() {
            if !children.supervise {
                return Err(format!(
                    "the consumer child exited ({status}) at {now} of {target} messages{}",
                    tail(log)
                ));
            }
            children.restarted += 1;
            children.start_another()?;
        }
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() > STALL {
            return Err(format!(
                "stalled: {now} of {target} messages took effect, nothing for {STALL:?}{}",
                tail(log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ends a child with `SIGTERM` (a graceful stop), `SIGKILL` after 30 s.
async fn terminate(child: &mut Child) -> Result<(), String> {
    if let Some(pid) = child.id() {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map_err(|e| format!("kill -TERM: {e}"))?;
        if !status.success() {
            return Err(format!("kill -TERM {pid}: {status}"));
        }
    }
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("the child exited with {status} after SIGTERM")),
        Ok(Err(e)) => Err(format!("waiting for the child: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err("the child did not stop within 30 s of SIGTERM".to_owned())
        }
    }
}

/// Deletes what a passed run left on the broker where the adapter can: JetStream's
/// streams (a restarted nats-server recovers every stream it keeps). RabbitMQ's queues
/// expire by themselves (`queue_expires`); Kafka topics stay (the adapter deletes none).
async fn tidy(client: &wharf_any::AnyClient, source: &str, group: &str) {
    if let wharf_any::AnyClient::Nats(nats) = client {
        let js = nats.jetstream_source(source, group);
        let _ = nats.delete_stream(&js.stream).await;
        let _ = nats.delete_stream(&js.dead_letter_stream).await;
    }
}

pub(crate) async fn run(s: Settings) -> Result<(), String> {
    let started = Instant::now();
    let run = format!("{}{}", std::process::id(), s.seed % 100_000);
    let source = format!("chaos-{run}");
    let db = effects::connect().await?;
    effects::create(&db).await?;
    // `cut` puts a proxy between the children and the broker.
    let proxy = match s.fault {
        Fault::Cut => Some(
            Proxy::start(([127, 0, 0, 1], s.broker.port()).into())
                .await
                .map_err(|e| format!("starting the proxy: {e}"))?,
        ),
        _ => None,
    };
    let port = proxy.as_ref().map_or(s.broker.port(), |p| p.addr().port());
    let child = consume::Settings {
        url: s.broker.url(&run, port),
        source: source.clone(),
        group: "chaos".to_owned(),
        run: run.clone(),
        effects: s.effects,
        in_flight: s.in_flight,
        work_us: s.work_us,
    };
    let direct = s.broker.url(&run, s.broker.port());
    let client = wharf_any::connect(&direct)
        .await
        .map_err(|e| format!("connecting to {}: {e}", s.broker.name()))?;
    client
        .declare(&source, &[&child.group])
        .await
        .map_err(|e| format!("declaring {source}: {e}"))?;
    publish(&client, &source, &run, s.messages).await?;

    // Kill points: `kills` fractions of the backlog between 5 % and 90 %, in order.
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut points: Vec<u64> = (0..s.kills)
        .map(|_| rng.random_range(s.messages / 20..=s.messages * 9 / 10))
        .collect();
    points.sort_unstable();

    let consuming = Instant::now();
    let log = std::env::temp_dir().join(format!("wharf-chaos-{run}.log"));
    // A consumer may stop with an error when its broker restarts (Kafka fences a static
    // member whose coordinator moved): supervised like in production, it is started again.
    let mut children = Children {
        running: spawn(&child, &log)?,
        settings: &child,
        log: &log,
        supervise: s.fault == Fault::Restart,
        restarted: 0,
    };
    let mut struck_at = Vec::new();
    // Effects written when the running child started: each strike waits until that child
    // took effect at least once, so it never hits a child still starting (two points
    // close together, or a previous child's drain that passed the next point).
    let mut at_start = 0;
    for point in &points {
        let target = (*point).max(at_start + 1).min(s.messages);
        let now = wait_for(&db, &run, target, &mut children).await?;
        if now >= s.messages {
            break; // nothing left to strike at
        }
        struck_at.push(effects::now(&db).await?);
        match s.fault {
            Fault::Kill => {
                let killed = children.running.kill().await; // SIGKILL, then reaped
                killed.map_err(|e| format!("SIGKILL: {e}"))?;
                at_start = effects::distinct(&db, &run).await?;
                children.start_another()?;
            }
            Fault::Term => {
                terminate(&mut children.running).await?;
                at_start = effects::distinct(&db, &run).await?;
                children.start_another()?;
            }
            Fault::Cut => {
                let cut = proxy.as_ref().map_or(0, Proxy::cut);
                if cut == 0 {
                    return Err("the child had no connection through the proxy".to_owned());
                }
            }
            Fault::Restart => faults::restart(s.broker).await?,
        }
    }
    wait_for(&db, &run, s.messages, &mut children).await?;
    let rate = s.messages as f64 / consuming.elapsed().as_secs_f64();
    // Late duplicates (a redelivery already under way) have a moment to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    match children.running.try_wait() {
        // Stopped by itself during the grace period (a fenced Kafka member, say): its
        // supervisor would start another, and there is nothing left to handle.
        Ok(Some(_)) if children.supervise => children.restarted += 1,
        _ => terminate(&mut children.running).await?,
    }
    let restarted = children.restarted;

    let t = effects::tally(&db, &run).await?;
    // Nothing failed, so nothing may be dead-lettered (not by a kill, a cut, a restart or
    // a shutdown). A new connection: the first one may have lived through a restart.
    let end_client = wharf_any::connect(&direct)
        .await
        .map_err(|e| format!("connecting to read dead letters: {e}"))?;
    let reader = end_client.dead_letters();
    let destination = reader.destination(&source, &child.group);
    let dead_letters = reader
        .list(&destination, 1000)
        .await
        .map_err(|e| format!("listing dead letters at {destination}: {e}"))?
        .len();
    let missing = s.messages - t.distinct.min(s.messages);
    println!("| broker | fault | effects | messages | strikes | effect rows | missing | duplicates | from a redelivery | key-order breaks | dead letters | time |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
        s.broker.name(),
        s.fault.as_str(),
        s.effects.as_str(),
        s.messages,
        struck_at.len(),
        t.rows,
        missing,
        t.duplicates,
        t.redelivered,
        t.order_breaks,
        dead_letters,
        started.elapsed().as_secs_f64()
    );

    let mut broken = Vec::new();
    if missing > 0 {
        broken.push(format!("{missing} messages never took effect"));
    }
    // Without the inbox, each strike but a graceful stop may replay the handlers in
    // flight (and their acks on the way) and what was handled but not yet settled at the
    // broker.
    let allowed = match (s.effects, s.fault.replays(s.broker)) {
        (Effects::Inbox, _) | (Effects::Plain, None) => 0,
        (Effects::Plain, Some(window)) => {
            let mut allowed = 0;
            for at in &struck_at {
                let before = effects::written_before(&db, &run, *at, window).await?;
                allowed += 2 * s.in_flight + before;
            }
            allowed
        }
    };
    println!(
        "duplicates allowed: {allowed} ({} effects, {:.0} msg/s on average, seed {}); \
         children that stopped by themselves and were started again: {restarted}",
        s.effects.as_str(),
        rate,
        s.seed
    );
    if t.duplicates > allowed {
        broken.push(format!(
            "{} duplicate effects, more than {allowed} ({} effects, {})",
            t.duplicates,
            s.effects.as_str(),
            s.fault.as_str()
        ));
    }
    if dead_letters > 0 {
        broken.push(format!("{dead_letters} dead letters, and nothing failed"));
    }
    if s.broker.keeps_key_order() && t.order_breaks > 0 {
        broken.push(format!("{} effects out of key order", t.order_breaks));
    }
    effects::forget(&db, &run).await?;
    if broken.is_empty() {
        tidy(&end_client, &source, &child.group).await;
        let _ = std::fs::remove_file(&log);
        Ok(())
    } else {
        Err(format!("seed {}: {}", s.seed, broken.join("; ")))
    }
}
