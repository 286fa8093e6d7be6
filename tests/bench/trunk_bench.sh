#!/usr/bin/env bash
# Trunk benchmark: FlowPBX against Kamailio 5.6 with SIPp as the carrier (see trunk_bench.py).
# Builds the release binary, then runs the driver; extra arguments go to the driver
# (--help lists them). Needs sipp (sip-tester) and kamailio (apt-get install sip-tester kamailio).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in sipp kamailio python3; do
  command -v "$tool" >/dev/null || { echo "trunk_bench: $tool is missing (apt-get install sip-tester kamailio python3)" >&2; exit 1; }
done
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p flowpbx
exec python3 tests/bench/trunk_bench.py --flowpbx "$target/release/flowpbx" "$@"
