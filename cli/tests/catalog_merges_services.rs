//! `wharf catalog` on the catalogs two services export (`App::catalog_json`): one table
//! with every consumer, its owner and where its dead letters go; `--json` the merged
//! array; a consumer name two services both claim is reported on stderr; no password
//! from a broker URL reaches either.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::wharf;
use wharf::{App, Consumer, Handler, HandlerError, Message};
use wharf_memory::MemoryBroker;

async fn handle(_: Message) -> Result<(), HandlerError> {
    Ok(())
}

/// The catalog of a service with consumers `names`, owned by `owner`.
fn catalog(names: &[&str], owner: &str) -> String {
    let broker = MemoryBroker::new();
    let mut app = App::new();
    for name in names {
        app = app.consumer(
            Consumer::new(*name, broker.subscribe("orders", name), handle.into_service())
                .owner(owner)
                .description(format!("{name} each order"))
                .broker_url("kafka://svc:pa55word@kafka-1:9092,kafka-2:9092/orders?rdkafka.sasl.password=pa55word"),
        );
    }
    app.catalog_json()
}

#[test]
fn two_services_in_one_table() {
    let dir = std::env::temp_dir().join(format!("wharf-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (dir.join("orders.json"), dir.join("payments.json"));
    std::fs::write(&a, catalog(&["billing", "shipping"], "team-orders")).unwrap();
    std::fs::write(&b, catalog(&["refunds", "billing"], "team-payments")).unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());

    let (code, out, err) = wharf(&["catalog", a, b]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("pa55word") && !err.contains("pa55word"),
        "{out}{err}"
    );
    for expected in [
        "NAME",
        "billing",
        "shipping",
        "refunds",
        "team-orders",
        "team-payments",
        "kafka://kafka-1:9092,kafka-2:9092/orders",
        "orders.dlq",
    ] {
        assert!(out.contains(expected), "`{expected}` in:\n{out}");
    }
    assert!(
        err.contains("billing") && err.contains("2 catalogs"),
        "the doubly claimed name is reported: {err}"
    );

    let (code, out, _) = wharf(&["catalog", a, b, "--json"]);
    assert_eq!(code, 0);
    let merged: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(merged.as_array().unwrap().len(), 4);
    assert_eq!(merged[0]["owner"], "team-orders");
    assert_eq!(merged[0]["description"], "billing each order");
    assert!(
        !out.contains("pa55word"),
        "no password in the catalog: {out}"
    );

    let (code, _, err) = wharf(&["catalog", "/nonexistent/catalog.json"]);
    assert_eq!(code, 4, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
