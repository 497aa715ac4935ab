//! A service's consumer catalog: who owns each consumer, what it does, what it reads,
//! where its dead letters go, how it retries, which middleware it runs.
//!
//! `App::catalog_json` exports it as JSON; each service writes its own (at start-up, or
//! from a `--catalog` flag of its binary), and `wharf catalog a.json b.json ...` merges
//! them into one table for operators. This example prints its catalog, and with
//! `WHARF_CATALOG_OUT=<file>` writes it there too.
//!
//! ```sh
//! WHARF_CATALOG_OUT=orders.json cargo run --example catalog
//! wharf catalog orders.json payments.json
//! ```

use std::error::Error;

use wharf::{App, Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;

async fn bill(_: Message) -> Result<(), HandlerError> {
    Ok(())
}

async fn ship(_: Message) -> Result<(), HandlerError> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // The URL the subscribers were made from; the catalog keeps it without credentials.
    let url = "memory://app:s3cret@local";
    let broker = MemoryBroker::new();
    let app = App::new()
        .consumer(
            Consumer::new(
                "billing",
                broker.subscribe("orders", "billing"),
                bill.into_service(),
            )
            .owner("team-billing")
            .description("Charges each order once the customer confirmed it")
            .broker_url(url)
            .describe_retry("5 attempts, 1s -> 30s backoff, then dead letter")
            .describe_stack(
                "recommended: dedup of message ids, idempotency keys on PostgreSQL, timeout 30s",
            ),
        )
        .consumer(
            Consumer::new(
                "shipping",
                broker.subscribe("orders", "shipping"),
                ship.into_service(),
            )
            .owner("team-logistics")
            .description("Books a parcel for every paid order")
            .broker_url(url),
        );
    let catalog = app.catalog_json();
    assert!(
        !catalog.contains("s3cret"),
        "the catalog never holds a password"
    );
    println!("{catalog}");
    if let Ok(path) = std::env::var("WHARF_CATALOG_OUT") {
        std::fs::write(&path, &catalog)?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
