#!/usr/bin/env bash
# Soak: one hour at 50 concurrent calls with media and registrations refreshing, printing
# FlowPBX's RSS and descriptor curve and a verdict (see soak.py). Builds the release binary;
# extra arguments go to the driver (e.g. --duration 300 for a short run; --help).
# Needs sipp (apt-get install sip-tester) and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in sipp python3; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is missing (apt-get install sip-tester python3)" >&2; exit 1; }
done
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p flowpbx
exec python3 tests/bench/soak.py --flowpbx "$target/release/flowpbx" "$@"
