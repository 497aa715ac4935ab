#!/usr/bin/env bash
# Prints the Cargo features of a workspace package, except `default` and `full`.
set -euo pipefail
cargo metadata --no-deps --format-version 1 \
  | python3 -c '
import json, sys
pkg = sys.argv[1]
meta = json.load(sys.stdin)
for p in meta["packages"]:
    if p["name"] == pkg:
        print(" ".join(f for f in sorted(p["features"]) if f not in ("default", "full")))
' "$1"
