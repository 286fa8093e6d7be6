#!/usr/bin/env bash
# Memory benchmark: FlowPBX's resident memory through registrations, calls and a hostile flood
# (see memory_bench.py). Builds the release binary, then runs the driver; extra arguments go to
# the driver (--help lists them). Needs sipp (apt-get install sip-tester); --heaptrack needs
# heaptrack (apt-get install heaptrack).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v sipp >/dev/null || { echo "memory_bench: sipp is missing (apt-get install sip-tester)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p flowpbx
exec python3 tests/bench/memory_bench.py --flowpbx "$target/release/flowpbx" "$@"
