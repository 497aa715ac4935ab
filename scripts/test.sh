#!/usr/bin/env bash
# The test command: installs and starts what the tests need, then runs everything —
# formatting, lints, unit and integration tests (including the broker tests, which
# `cargo test` alone skips), doc tests, docs and every example.
#
#   scripts/test.sh            everything
#   WHARF_SKIP_BROKERS=1 ...   only what needs no broker (never in CI)
#
# A broker that cannot be started is a failure, never a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step is stamped with the time, so a slow CI run shows where its minutes went.
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# ---- provisioning -------------------------------------------------------------------
# Adapters that need a broker add an `ensure_<broker>` function in scripts/brokers.sh
# and list it here.
source scripts/brokers.sh
# Build dependencies first: the Kafka adapter builds librdkafka with cmake.
step "ensure kafka build dependencies (cmake, curl headers)"
ensure_kafka_build_deps
BROKERS=(rabbitmq kafka nats postgres redis)
if [[ "${WHARF_SKIP_BROKERS:-0}" != "1" ]]; then
  for b in "${BROKERS[@]}"; do
    step "ensure $b"
    "ensure_$b"
  done
fi

# ---- checks -------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo clippy wharf-middleware, each feature alone"
for feature in $(scripts/features.sh wharf-middleware); do
  cargo clippy -q -p wharf-middleware --no-default-features --features "$feature" -- -D warnings
done

step "cargo test (workspace, doc tests, broker tests included)"
if [[ "${WHARF_SKIP_BROKERS:-0}" == "1" ]]; then
  cargo test --workspace
else
  cargo test --workspace -- --include-ignored
fi

step "cargo test -p wharf-any alone (no adapter features: a URL needing one names it)"
# In the workspace run above the examples turn every feature of wharf-any on.
cargo test -q -p wharf-any --lib

step "cargo doc (broken intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q

step "alert rules (promtool check rules, when promtool is installed)"
promtool=$(command -v promtool || echo "${GOPATH:-$HOME/go}/bin/promtool")
if [[ -x "$promtool" ]]; then
  "$promtool" check rules docs/alerts/wharf.rules.yml
else
  echo "promtool not installed: the rules' names are checked by cli/tests/alert_rules_use_wharf_metrics.rs only"
fi

step "cargo package --workspace (every crate packs and builds from its package)"
# --allow-dirty: the script also runs on a working tree with uncommitted changes.
# The verify builds see our own crates as registry crates of an unchanged version
# (0.1.0), which cargo takes to be immutable: it would reuse what an earlier run left
# (the packages, the sources it extracted from its temporary local registry into
# $CARGO_HOME, and the compiled units in target/debug). All three are cleared first;
# dependencies stay built.
rm -rf target/package target/debug/.fingerprint/wharf-* target/debug/.fingerprint/example-*
find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -mindepth 2 -maxdepth 2 -type d \
  -path '*/-*/wharf-*' -exec rm -rf {} + 2>/dev/null || true
# wharf-chaos (never published) is left out: it uses wharf-conformance's TCP proxy, and
# that path-only crate cannot be a normal dependency of a packaged crate.
cargo package --workspace --exclude wharf-chaos --allow-dirty -q

# ---- examples -----------------------------------------------------------------------
# Every example runs; examples that need a broker are listed in scripts/examples.txt
# with the broker they need, and a `WHARF_URL` when the example takes one.
step "examples"
while read -r example needs url; do
  [[ -z "$example" || "$example" == \#* ]] && continue
  if [[ -n "${needs:-}" && "${WHARF_SKIP_BROKERS:-0}" == "1" ]]; then
    echo "skipping $example (needs $needs; WHARF_SKIP_BROKERS=1)"
    continue
  fi
  if [[ -n "${url:-}" ]]; then
    step "WHARF_URL=${url%%\?*} cargo run --example $example"
    WHARF_URL="$url" timeout 300 cargo run -q --example "$example" </dev/null
  else
    step "cargo run --example $example"
    timeout 300 cargo run -q --example "$example" </dev/null
  fi
done < scripts/examples.txt

step "all checks passed"
