#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md in one go, on this machine, and prints the
# results: throughput against each broker's plain client (memory, RabbitMQ, NATS Core,
# NATS JetStream, Apache Kafka with Kafka's own consumer perf tool beside it), the Kafka
# key-parallel scenario, the recommended stack with each idempotency store, and peak RSS while
# draining a 1,000,000-message backlog. Starts the brokers like scripts/test.sh.
#
#   scripts/bench.sh               everything (about 20 minutes on 2 cores)
#   ROUNDS=3 scripts/bench.sh      fewer rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/brokers.sh
for b in rabbitmq kafka nats postgres redis; do "ensure_$b"; done
# Kafka's own consumer benchmark (kafka-consumer-perf-test.sh) on the bench's backlog.
export KAFKA_PERF_TEST="java -Xmx512m -cp $(kafka_libs)/* org.apache.kafka.tools.ConsumerPerformance"

ROUNDS=${ROUNDS:-5}
cargo build -q --release -p wharf-bench
bench=target/release/wharf-bench

echo "# $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores, $(uname -r)"
$bench --broker memory   --messages 200000 --rounds "$ROUNDS"
$bench --broker nats-core --messages 200000 --rounds "$ROUNDS"
$bench --broker nats     --messages 100000 --rounds "$ROUNDS"
$bench --broker rabbitmq --messages 20000  --rounds "$ROUNDS"
$bench --broker kafka    --messages 500000 --rounds "$ROUNDS"
$bench --broker kafka    --scenario key-parallel --messages 30000 --rounds 3
$bench --broker kafka    --scenario key-parallel --messages 30000 --rounds 3 --in-flight 1024
$bench --broker stores   --scenario claims --messages 20000 --rounds "$ROUNDS" --in-flight 64
$bench --broker nats     --scenario stores --messages 100000 --rounds "$ROUNDS"
$bench --broker rabbitmq --scenario stores --messages 20000  --rounds "$ROUNDS"
$bench --broker memory   --scenario backlog-rss --messages 1000000
$bench --broker nats     --scenario backlog-rss --messages 1000000
# Per-layer micro-benchmarks (criterion; their own report under target/criterion).
cargo bench -q -p wharf-bench --bench layers -- --noplot 2>&1 | grep -E "^(per message|in-memory)|time:|thrpt:"
