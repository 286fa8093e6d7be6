#!/usr/bin/env bash
# WebRTC call set-up time: the browser phone page (Debian's Chromium, fake microphone) signs
# in over SIP-over-WSS and calls a baresip phone N times through the real binary; prints, per
# call, the time from the click to the 200 OK (SIP over WSS, FlowPBX's ICE-lite/DTLS answer)
# and to DTLS-SRTP connected (the peer connection's connectionState). Figures, not a test:
# nothing is asserted about them. Not run in CI.
#
#   tests/bench/webrtc_setup.sh [calls]      (default 20; FLOWPBX_BIN picks the binary,
#                                             e.g. a release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS="${1:-20}"
export FLOWPBX_BIN="${FLOWPBX_BIN:-${CARGO_TARGET_DIR:-target}/debug/flowpbx}"
node web/e2e/phone.mjs --calls "$CALLS"
