//! A real consumer group on Apache Kafka: members join mid-stream, one leaves, one is
//! killed with `SIGKILL` and restarted at once, and nothing is lost.
//!
//! The scenario, once for each way Kafka assigns partitions (the classic protocol with
//! librdkafka's eager default, the classic protocol with `cooperative-sticky`, and
//! KIP-848's `consumer` protocol):
//!
//! 1. member A (in this process) starts alone and takes all three partitions while
//!    keyed messages are being published;
//! 2. member C, a **child process**, joins mid-stream and takes partitions from A;
//! 3. member B (in this process) joins, then leaves again (a clean stop);
//! 4. C is killed with `SIGKILL` while handlers are running (their messages started, not
//!    finished, not settled) and restarted at once as C2, within the session timeout,
//!    so the group still counts the dead C as a member for a while;
//! 5. C2 must get partitions once the dead member times out, and the messages C left
//!    unfinished must be handled again by someone;
//! 6. in the end every message was handled and every partition is committed to its end.
//!
//! "Never committed past an unsettled offset" is what makes 5 hold: had C's offsets been
//! committed past a message it was still handling, that message would be skipped by its
//! next owner and be missing at the end.
//!
//! The child is this test binary run again with `WHARF_KAFKA_CHILD` set, which makes
//! [`child_member`] act as member C (without the variable it returns at once).

#![allow(clippy::unwrap_used)]

mod common;
mod mock;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wharf::{Consumer, Handler as _, HandlerError, Message, Publisher as _, Summary};
use wharf_kafka::{GroupProtocol, KafkaClient, KafkaConfig, KafkaSubscriber};

/// Messages published every 100 ms while the group changes (the publisher runs until
/// the last change is done).
const CHUNK: usize = 20;
const KEYS: usize = 60;
const CHILD_ENV: &str = "WHARF_KAFKA_CHILD";

/// How the group assigns partitions.
#[derive(Clone, Copy, Debug)]
enum Assignment {
    /// Classic protocol, librdkafka's default strategy (eager: every rebalance revokes
    /// everything).
    Eager,
    /// Classic protocol, `cooperative-sticky` (only moved partitions are revoked).
    Cooperative,
    /// KIP-848 `consumer` protocol (the broker assigns, incrementally).
    ConsumerProtocol,
}

impl Assignment {
    fn name(self) -> &'static str {
        match self {
            Assignment::Eager => "eager",
            Assignment::Cooperative => "cooperative",
            Assignment::ConsumerProtocol => "consumer",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "eager" => Assignment::Eager,
            "cooperative" => Assignment::Cooperative,
            "consumer" => Assignment::ConsumerProtocol,
            other => panic!("unknown assignment {other}"),
        }
    }

    fn config(self, topic: &str, group: &str) -> KafkaConfig {
        let config = match self {
            Assignment::Eager => common::kafka_config(),
            Assignment::Cooperative => {
                common::kafka_config().option("partition.assignment.strategy", "cooperative-sticky")
            }
            Assignment::ConsumerProtocol => {
                common::kafka_config_without_session().group_protocol(GroupProtocol::Consumer)
            }
        };
        config.topics([topic]).group(group)
    }

    /// How long the broker waits for a silent (killed) member.
    fn session_timeout(self) -> Duration {
        match self {
            // common::kafka_config()
            Assignment::Eager | Assignment::Cooperative => Duration::from_secs(6),
            // group.consumer.session.timeout.ms in scripts/kafka/server.properties
            Assignment::ConsumerProtocol => Duration::from_secs(10),
        }
    }
}

/// What the in-process members did: message id → members that finished it.
#[derive(Default)]
struct Log {
    done: Mutex<BTreeMap<String, Vec<String>>>,
}

impl Log {
    fn done_by(&self, id: &str, member: &str) {
        self.done
            .lock()
            .unwrap()
            .entry(id.to_owned())
            .or_default()
            .push(member.to_owned());
    }
}

/// An in-process member: its consumer task and the way to stop it.
struct Member {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<Summary, wharf::Error>>,
}

async fn start_member(
    kafka: &KafkaClient,
    name: &'static str,
    log: Arc<Log>,
) -> (Member, Arc<Mutex<Vec<(String, i32)>>>) {
    let subscriber = kafka.configured_subscriber().await.unwrap();
    let assigned = watch_assignment(&subscriber);
    let handler = move |m: Message| {
        let log = log.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            log.done_by(m.id().as_str(), name);
            Ok::<(), HandlerError>(())
        }
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        Consumer::new(name, subscriber, handler.into_service())
            .max_in_flight(16)
            .run(async move {
                let _ = stopped.await;
            }),
    );
    (Member { stop, task }, assigned)
}

/// A copy of the subscriber's assignment, refreshed every 50 ms (the subscriber itself
/// moves into the consumer).
fn watch_assignment(subscriber: &KafkaSubscriber) -> Arc<Mutex<Vec<(String, i32)>>> {
    let shared = Arc::new(Mutex::new(subscriber.assigned()));
    let probe = subscriber.assigned_partitions();
    let out = shared.clone();
    tokio::spawn(async move {
        loop {
            *out.lock().unwrap() = probe.get();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    shared
}

/// A child member, killed when dropped (so a failing test leaves no process behind).
struct ChildMember(Child);

impl Drop for ChildMember {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

/// Member C: this test binary again, running [`child_member`]. It writes `start <id>`,
/// `done <id>` and `assigned <n>` lines to `log`.
fn spawn_child(assignment: Assignment, topic: &str, group: &str, log: &Path) -> ChildMember {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_member",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{topic}\n{group}\n{}", assignment.name(), log.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    ChildMember(child)
}

/// What a child's log says.
#[derive(Default, Debug)]
struct ChildLog {
    started: BTreeSet<String>,
    done: BTreeSet<String>,
    assigned: usize,
}

fn read_child(log: &Path) -> ChildLog {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = ChildLog::default();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("start", id)) => {
                out.started.insert(id.to_owned());
            }
            Some(("done", id)) => {
                out.done.insert(id.to_owned());
            }
            Some(("assigned", n)) => out.assigned = n.parse().unwrap_or(0),
            _ => {}
        }
    }
    out
}

/// Member C's body, when this binary runs as the child (see [`spawn_child`]). Runs
/// until killed.
#[test]
#[ignore = "needs kafka"]
fn child_member() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child: nothing to do
    };
    let mut parts = spec.lines();
    let (assignment, topic, group, log) = (
        Assignment::parse(parts.next().unwrap()),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        PathBuf::from(parts.next().unwrap()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A child whose test process is gone ends itself.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        if std::os::unix::process::parent_id() != parent {
            std::process::exit(0);
        }
        std::thread::sleep(Duration::from_millis(200));
    });
    runtime.block_on(async move {
        let file = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap(),
        ));
        let write = move |line: String| {
            let mut f = file.lock().unwrap();
            f.write_all(line.as_bytes()).unwrap();
            f.flush().unwrap();
        };
        let kafka = KafkaClient::connect(assignment.config(&topic, &group))
            .await
            .unwrap();
        let subscriber = kafka.configured_subscriber().await.unwrap();
        let probe = subscriber.assigned_partitions();
        let report = write.clone();
        tokio::spawn(async move {
            loop {
                report(format!("assigned {}\n", probe.get().len()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        // Much slower than A and B (16 in flight × 200 ms ≈ 80 messages/s, about what
        // its partitions receive), so C has handlers running when it is killed.
        let handler = move |m: Message| {
            let write = write.clone();
            async move {
                write(format!("start {}\n", m.id()));
                tokio::time::sleep(Duration::from_millis(200)).await;
                write(format!("done {}\n", m.id()));
                Ok::<(), HandlerError>(())
            }
        };
        Consumer::new("member-c", subscriber, handler.into_service())
            .max_in_flight(16)
            .run(std::future::pending::<()>())
            .await
            .unwrap();
    });
}

/// Kills the child at once (no shutdown, no leave-group, no commit).
fn kill(child: ChildMember) {
    drop(child);
}

async fn members_join_leave_and_die(assignment: Assignment) {
    let topic = common::unique(&format!("members-{}", assignment.name()));
    let group = common::unique("members-group");
    let kafka = KafkaClient::connect(assignment.config(&topic, &group))
        .await
        .unwrap();
    kafka.create_topic(&topic, mock::PARTITIONS).await.unwrap();
    let dir = std::env::temp_dir().join(common::unique("wharf-members"));
    std::fs::create_dir_all(&dir).unwrap();
    let (c1_log, c2_log) = (dir.join("c1.log"), dir.join("c2.log"));

    let log = Arc::new(Log::default());
    let (a, a_assigned) = start_member(&kafka, "member-a", log.clone()).await;
    let partitions_of_a = || a_assigned.lock().unwrap().len();
    mock::eventually_within(Duration::from_secs(30), "A holds every partition", || {
        let n = partitions_of_a();
        async move { n == mock::PARTITIONS as usize }
    })
    .await;

    // Publish in the background, batched by the producer, paced so every group change
    // happens mid-stream; stopped after the last change. Returns how many it published.
    let publisher = kafka.publisher();
    let (stop_publishing, mut publishing_stopped) = oneshot::channel::<()>();
    let publishing = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut next = 0;
            while publishing_stopped.try_recv().is_err() {
                join_all((next..next + CHUNK).map(|i| {
                    publisher.publish(
                        &topic,
                        mock::keyed(&format!("m{i}"), &format!("key-{}", i % KEYS)),
                    )
                }))
                .await
                .into_iter()
                .for_each(|r| r.unwrap());
                next += CHUNK;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            next
        })
    };

    // C joins mid-stream and takes partitions from A.
    let c1 = spawn_child(assignment, &topic, &group, &c1_log);
    mock::eventually_within(
        Duration::from_secs(30),
        "C joined and handles messages",
        || {
            let c = read_child(&c1_log);
            let a = partitions_of_a();
            async move { c.assigned > 0 && c.done.len() >= 20 && a < mock::PARTITIONS as usize }
        },
    )
    .await;

    // B joins, then leaves cleanly.
    let (b, b_assigned) = start_member(&kafka, "member-b", log.clone()).await;
    let done_by_b = || {
        log.done
            .lock()
            .unwrap()
            .values()
            .filter(|members| members.iter().any(|m| m == "member-b"))
            .count()
    };
    mock::eventually_within(
        Duration::from_secs(30),
        "A, B and C all hold a partition",
        || {
            let (a, b, c) = (
                partitions_of_a(),
                b_assigned.lock().unwrap().len(),
                read_child(&c1_log).assigned,
            );
            let b_done = done_by_b();
            async move { a > 0 && b > 0 && c > 0 && b_done >= 10 }
        },
    )
    .await;
    b.stop.send(()).unwrap();
    let summary_b = b.task.await.unwrap().unwrap();
    assert!(summary_b.received > 0, "B handled messages: {summary_b:?}");

    // C is killed while handlers run, and restarted at once.
    mock::eventually_within(Duration::from_secs(30), "C has handlers running", || {
        let c = read_child(&c1_log);
        async move { c.started.len() > c.done.len() && c.assigned > 0 }
    })
    .await;
    kill(c1);
    let c1_final = read_child(&c1_log);
    let unfinished: Vec<String> = c1_final
        .started
        .difference(&c1_final.done)
        .cloned()
        .collect();
    assert!(!unfinished.is_empty(), "C was killed mid-handler");
    let c2 = spawn_child(assignment, &topic, &group, &c2_log);

    // C2 gets partitions once the dead C has timed out.
    mock::eventually_within(
        assignment.session_timeout() * 3 + Duration::from_secs(20),
        "the restarted C2 holds partitions",
        || {
            let c = read_child(&c2_log);
            async move { c.assigned > 0 && !c.done.is_empty() }
        },
    )
    .await;

    // Everything is handled by someone; what C left unfinished is handled again.
    stop_publishing.send(()).unwrap();
    let messages = publishing.await.unwrap();
    let finished = || {
        let mut all: BTreeSet<String> = log.done.lock().unwrap().keys().cloned().collect();
        all.extend(read_child(&c1_log).done);
        all.extend(read_child(&c2_log).done);
        all
    };
    mock::eventually_within(Duration::from_secs(60), "every message handled", || {
        let n = finished().len();
        async move { n == messages }
    })
    .await;
    let all = finished();
    for i in 0..messages {
        assert!(all.contains(&format!("m{i}")), "m{i} was lost");
    }
    let after_kill: BTreeSet<String> = {
        let mut s: BTreeSet<String> = log.done.lock().unwrap().keys().cloned().collect();
        s.extend(read_child(&c2_log).done);
        s
    };
    for id in &unfinished {
        assert!(
            after_kill.contains(id),
            "{id}, unfinished when C was killed, was handled again by A or C2"
        );
    }

    // Every partition committed to its end by the live members.
    let ends = mock::end_offsets(common::KAFKA, &topic).await;
    mock::eventually_within(Duration::from_secs(30), "committed to the end", || {
        let group = group.clone();
        let topic = topic.clone();
        let ends = ends.clone();
        async move {
            let committed = mock::committed(common::KAFKA, &group, &topic).await;
            ends.iter().all(|(p, end)| committed[p] == Some(*end))
        }
    })
    .await;

    kill(c2);
    a.stop.send(()).unwrap();
    let summary_a = a.task.await.unwrap().unwrap();
    assert!(summary_a.received > 0, "A handled messages: {summary_a:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn eager_assignment_loses_nothing() {
    members_join_leave_and_die(Assignment::Eager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn cooperative_sticky_assignment_loses_nothing() {
    members_join_leave_and_die(Assignment::Cooperative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs kafka"]
async fn consumer_protocol_assignment_loses_nothing() {
    members_join_leave_and_die(Assignment::ConsumerProtocol).await;
}
