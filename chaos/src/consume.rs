//! `wharf-chaos consume`: the consumer child. Runs until `SIGTERM` (graceful) or
//! `SIGKILL` (the harness's point).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;
use wharf::{Consumer, Handler, HandlerError, Message, ResultExt};
use wharf_middleware::stack::RecommendedLayer;
use wharf_postgres::{Inbox, InboxHandler, Transaction};

use crate::{effects, number, value, Effects};

/// What the harness passes its child.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    pub(crate) source: String,
    pub(crate) group: String,
    pub(crate) run: String,
    pub(crate) effects: Effects,
    pub(crate) in_flight: u64,
    /// How long each handler works before writing its effect, in microseconds.
    pub(crate) work_us: u64,
}

impl Settings {
    pub(crate) fn parse(args: &[String]) -> Result<Settings, String> {
        let mut s = Settings {
            url: String::new(),
            source: String::new(),
            group: "chaos".to_owned(),
            run: String::new(),
            effects: Effects::Inbox,
            in_flight: 64,
            work_us: 500,
        };
        let mut i = 0;
        while i < args.len() {
            let v = value(args, i)?;
            match args[i].as_str() {
                "--url" => s.url = v.to_owned(),
                "--source" => s.source = v.to_owned(),
                "--group" => s.group = v.to_owned(),
                "--run" => s.run = v.to_owned(),
                "--effects" => s.effects = Effects::parse(v)?,
                "--in-flight" => s.in_flight = number(v, "--in-flight")?,
                "--work-us" => s.work_us = number(v, "--work-us")?,
                other => return Err(format!("consume: unknown argument `{other}`")),
            }
            i += 2;
        }
        for (field, v) in [
            ("--url", &s.url),
            ("--source", &s.source),
            ("--run", &s.run),
        ] {
            if v.is_empty() {
                return Err(format!("consume: `{field}` is required"));
            }
        }
        Ok(s)
    }

    /// The arguments that make a child with these settings.
    pub(crate) fn to_args(&self) -> Vec<String> {
        [
            ("--url", self.url.clone()),
            ("--source", self.source.clone()),
            ("--group", self.group.clone()),
            ("--run", self.run.clone()),
            ("--effects", self.effects.as_str().to_owned()),
            ("--in-flight", self.in_flight.to_string()),
            ("--work-us", self.work_us.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, v)| [flag.to_owned(), v])
        .collect()
    }
}

/// The effect of one message: a row naming it, its key, its sequence number and attempt.
struct Effect {
    id: String,
    key: String,
    seq: i64,
    attempt: i32,
}

impl Effect {
    /// The effect `message` asks for, after `work` (so that several messages are in
    /// flight when the strike comes).
    async fn of(message: &Message, work: Duration) -> Result<Effect, HandlerError> {
        let seq: i64 = std::str::from_utf8(message.payload())
            .permanent()?
            .parse()
            .permanent()?;
        let key = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        tokio::time::sleep(work).await;
        Ok(Effect {
            id: message.id().as_str().to_owned(),
            key: key.unwrap_or_default(),
            seq,
            attempt: i32::try_from(message.attempt()).unwrap_or(i32::MAX),
        })
    }

    /// The parameters of [`effects::INSERT`].
    fn params<'a>(&'a self, run: &'a String) -> [&'a (dyn ToSql + Sync); 5] {
        [run, &self.id, &self.key, &self.seq, &self.attempt]
    }
}

/// The `inbox` handler: the effect commits with the message id.
struct InboxEffect {
    run: String,
    work: Duration,
}

#[async_trait]
impl InboxHandler for InboxEffect {
    async fn handle(&self, tx: &Transaction<'_>, message: &Message) -> Result<(), HandlerError> {
        let effect = Effect::of(message, self.work).await?;
        tx.execute(effects::INSERT, &effect.params(&self.run))
            .await
            .transient()?;
        Ok(())
    }
}

pub(crate) async fn run(s: Settings) -> Result<(), String> {
    // Warnings and errors (reconnects, settle failures) go to the harness's log.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // SIGTERM is caught from the first moment (tokio installs the handler when the signal
    // is created), so one that comes while the child is still connecting stops it
    // gracefully too: `run` then starts with its shutdown already requested.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("listening for SIGTERM: {e}"))?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        term.recv().await;
        let _ = stop_tx.send(true);
    });
    let stop = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
    };
    let client = wharf_any::connect(&s.url)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let subscriber = client
        .subscriber(&s.source, &s.group)
        .await
        .map_err(|e| format!("subscribing: {e}"))?;
    let layers = RecommendedLayer::new(client.publisher());
    let consumer_name = format!("chaos-{}", s.run);
    let work = Duration::from_micros(s.work_us);
    let summary = match s.effects {
        Effects::Inbox => {
            let config = format!(
                "{}?table={}&pool_size=16",
                crate::POSTGRES,
                effects::INBOX_TABLE
            )
            .parse()
            .map_err(|e| format!("the inbox URL: {e}"))?;
            let inbox = Inbox::connect(
                config,
                InboxEffect {
                    run: s.run.clone(),
                    work,
                },
            )
            .await
            .map_err(|e| format!("the inbox: {e}"))?;
            Consumer::new(consumer_name, subscriber, layers.service(inbox))
                .max_in_flight(s.in_flight as usize)
                .run(stop)
                .await
        }
        Effects::Plain => {
            let db: Arc<Client> = Arc::new(effects::connect().await?);
            let run = Arc::new(s.run.clone());
            let handler = move |message: Message| {
                let (db, run) = (db.clone(), run.clone());
                async move {
                    let effect = Effect::of(&message, work).await?;
                    db.execute(effects::INSERT, &effect.params(&run))
                        .await
                        .transient()?;
                    Ok::<(), HandlerError>(())
                }
            };
            Consumer::new(
                consumer_name,
                subscriber,
                layers.service(handler.into_service()),
            )
            .max_in_flight(s.in_flight as usize)
            .run(stop)
            .await
        }
    };
    let summary = summary.map_err(|e| format!("the consumer failed: {e}"))?;
    println!("STOPPED {summary:?}");
    Ok(())
}
