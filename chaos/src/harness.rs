//! `wharf-chaos run`: publish, start the child, kill it at random points, count.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::process::{Child, Command};
use wharf::{Message, Publisher};

use crate::brokers::Broker;
use crate::{consume, effects, number, value, Effects};

/// Keys the messages are spread over; each key's messages are published in order.
const KEYS: u64 = 64;

/// How long the run may go without a new effect before it fails.
const STALL: Duration = Duration::from_secs(90);

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    broker: Broker,
    messages: u64,
    kills: u64,
    effects: Effects,
    in_flight: u64,
    seed: u64,
}

impl Settings {
    pub(crate) fn parse(args: &[String]) -> Result<Settings, String> {
        let mut broker = None;
        let mut s = Settings {
            broker: Broker::RabbitMq,
            messages: 20_000,
            kills: 5,
            effects: Effects::Inbox,
            in_flight: 64,
            seed: rand::rng().random(),
        };
        let mut i = 0;
        while i < args.len() {
            let v = value(args, i)?;
            match args[i].as_str() {
                "--broker" => broker = Some(Broker::parse(v)?),
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
        Ok(s)
    }
}

/// The child consumer, started from this same binary.
fn spawn(child: &consume::Settings) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    Command::new(exe)
        .arg("consume")
        .args(child.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
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

/// Waits until `target` messages took effect; fails when nothing moves for [`STALL`].
async fn wait_for(db: &tokio_postgres::Client, run: &str, target: u64) -> Result<u64, String> {
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        let now = effects::distinct(db, run).await?;
        if now >= target {
            return Ok(now);
        }
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() > STALL {
            return Err(format!(
                "stalled: {now} of {target} messages took effect, nothing for {STALL:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Ends the last child with `SIGTERM` (a graceful stop), `SIGKILL` after 30 s.
async fn terminate(mut child: Child) -> Result<(), String> {
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
        Ok(Ok(status)) => Err(format!("the last child exited with {status} after SIGTERM")),
        Ok(Err(e)) => Err(format!("waiting for the last child: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err("the last child did not stop within 30 s of SIGTERM".to_owned())
        }
    }
}

pub(crate) async fn run(s: Settings) -> Result<(), String> {
    let started = Instant::now();
    let run = format!("{}{}", std::process::id(), s.seed % 100_000);
    let source = format!("chaos-{run}");
    let db = effects::connect().await?;
    effects::create(&db).await?;
    let child = consume::Settings {
        url: s.broker.url(&run),
        source: source.clone(),
        group: "chaos".to_owned(),
        run: run.clone(),
        effects: s.effects,
        in_flight: s.in_flight,
    };
    let client = wharf_any::connect(&child.url)
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
    let mut running = spawn(&child)?;
    let mut killed_at = Vec::new();
    for point in &points {
        wait_for(&db, &run, *point).await?;
        killed_at.push(effects::now(&db).await?);
        running.kill().await.map_err(|e| format!("SIGKILL: {e}"))?; // SIGKILL, then reaped
        running = spawn(&child)?;
    }
    wait_for(&db, &run, s.messages).await?;
    let rate = s.messages as f64 / consuming.elapsed().as_secs_f64();
    // Late duplicates (a redelivery already under way) have a moment to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    terminate(running).await?;

    let t = effects::tally(&db, &run).await?;
    let missing = s.messages - t.distinct.min(s.messages);
    println!("| broker | effects | messages | kills | effect rows | missing | duplicates | from a redelivery | key-order breaks | time |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
        s.broker.name(),
        s.effects.as_str(),
        s.messages,
        points.len(),
        t.rows,
        missing,
        t.duplicates,
        t.redelivered,
        t.order_breaks,
        started.elapsed().as_secs_f64()
    );

    let mut broken = Vec::new();
    if missing > 0 {
        broken.push(format!("{missing} messages never took effect"));
    }
    // Without the inbox, each kill may replay the handlers in flight (and their acks on
    // the way) and what was handled but not yet settled at the broker.
    let allowed = match s.effects {
        Effects::Inbox => 0,
        Effects::Plain => {
            let mut allowed = 0;
            for at in &killed_at {
                let window = s.broker.unsettled_window();
                allowed +=
                    2 * s.in_flight + effects::written_before(&db, &run, *at, window).await?;
            }
            allowed
        }
    };
    println!(
        "duplicates allowed: {allowed} ({} effects, {:.0} msg/s on average, seed {})",
        s.effects.as_str(),
        rate,
        s.seed
    );
    if t.duplicates > allowed {
        broken.push(format!(
            "{} duplicate effects, more than {allowed} ({} effects)",
            t.duplicates,
            s.effects.as_str()
        ));
    }
    if s.broker.keeps_key_order() && t.order_breaks > 0 {
        broken.push(format!("{} effects out of key order", t.order_breaks));
    }
    effects::forget(&db, &run).await?;
    if broken.is_empty() {
        Ok(())
    } else {
        Err(format!("seed {}: {}", s.seed, broken.join("; ")))
    }
}
