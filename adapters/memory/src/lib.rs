//! In-memory broker for wharf, and the test harness for handlers.
//!
//! **Delivery semantics.** At-least-once within the process: a message stays on its
//! topic until its consumer group acks it; a `Retry { after }` comes back after `after`
//! with the attempt count incremented; a delivery whose acker is dropped unsettled (a
//! consumer that crashed or was cancelled) comes back at once. Nothing survives the
//! process: the broker is for tests, examples and in-process pipelines.
//!
//! - [`MemoryBroker`]: topics, consumer groups (competing consumers share, groups each
//!   get everything), a [`Publisher`](wharf::Publisher), fault injection, and
//!   inspection of what happened to each message.
//! - [`Harness`]: publish, [`run_until_idle`](Harness::run_until_idle), and assert on
//!   the [`Report`], with virtual time so backoffs cost nothing.
//!
//! ```
//! use wharf::{Consumer, Handler, HandlerError, Message};
//! use wharf_memory::MemoryBroker;
//!
//! async fn handle(msg: Message) -> Result<(), HandlerError> {
//!     println!("{}", String::from_utf8_lossy(msg.payload()));
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wharf::Error> {
//! let broker = MemoryBroker::new();
//! broker.publish("greetings", Message::new("hello")).unwrap();
//!
//! let idle = { let b = broker.clone(); async move { b.idle("greetings", "printer").await } };
//! let summary = Consumer::new("printer", broker.subscribe("greetings", "printer"), handle.into_service())
//!     .run(idle)
//!     .await?;
//! assert_eq!(summary.acked, 1);
//! # Ok(()) }
//! ```

mod acker;
mod broker;
mod client;
mod harness;
mod inspect;
mod subscriber;
mod topic;

pub use acker::MemoryAcker;
pub use broker::{MemoryBroker, MemoryBrokerBuilder};
pub use client::MemoryDeadLetters;
pub use harness::{Harness, Report};
pub use inspect::{DeliveryRecord, NativeDeadLetter};
pub use subscriber::MemorySubscriber;
