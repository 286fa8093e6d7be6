#!/usr/bin/env bash
# Relay benchmark: FlowPBX's media engine and rtpengine side by side (see media_relay.rs).
# Usage: tests/bench/media_relay.sh [--calls 1000] [--secs 20] [--only flowpbx,srtp,rtpengine]
#   [--suite AES_CM_128_HMAC_SHA1_80|AES_CM_128_HMAC_SHA1_32|AEAD_AES_128_GCM] [--repeat N]
# (srtp: leg A SRTP with SDES keys, leg B plain RTP; --repeat gives medians of the FlowPBX rows)
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v rtpengine >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends rtpengine || true
fi
ulimit -n 20000 2>/dev/null || true
exec cargo bench -p media --bench media_relay -- "$@"
