#!/usr/bin/env python3
"""Soak: FlowPBX under steady load for a long time, watching its memory and descriptors.

Load (defaults: one hour, 50 concurrent calls):
  - calls with media: SIPp (tests/sip/soak_uac.xml) calls a registered SIPp phone
    (media_uas.xml) through FlowPBX, each call ~10 s of G.711 A-law speech played from
    sip-tester's pcap; SIPp keeps --calls calls up at once. The phone's answer names a UDP
    sink of this script as its media address: the RTP FlowPBX relays there is counted.
  - registrations refreshing: --phones extensions register every --refresh seconds (expiry
    twice that), so the registrar's bindings churn the whole time.

Every --sample seconds the script records FlowPBX's RSS (VmRSS) and open descriptors. At the
end it prints the curve and the verdict: RSS after the warm-up (the first --warmup fraction)
within +-10 % of its mean, descriptors not growing, no failed call.

    tests/bench/soak.sh                        # builds the release binary, one hour
    python3 tests/bench/soak.py --flowpbx target/debug/flowpbx --duration 300   # short

Exit status 0 when the verdict holds, 1 when not.
"""
import argparse
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sip_bench import FIRST_USER, FlowPBX, SippRun, free_port  # noqa: E402


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


class Sink:
    """A UDP socket counting the RTP it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.packets = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data = self.sock.recv(2048)
            except socket.timeout:
                continue
            if len(data) >= 12 and data[0] >> 6 == 2:
                self.packets += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowpbx", required=True, help="the flowpbx binary")
    ap.add_argument("--duration", type=int, default=3600, help="seconds of load (default 3600)")
    ap.add_argument("--calls", type=int, default=50, help="concurrent calls (default 50)")
    ap.add_argument("--phones", type=int, default=20, help="extensions re-registering (default 20)")
    ap.add_argument("--refresh", type=int, default=30, help="seconds between their registrations (default 30)")
    ap.add_argument("--sample", type=int, default=10, help="seconds between samples (default 10)")
    ap.add_argument("--warmup", type=float, default=0.2, help="fraction of the run left out of the verdict (default 0.2)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="flowpbx-soak-"))
    # extensions: FIRST_USER calls FIRST_USER+1 (the phone); the rest re-register
    server = FlowPBX(args.flowpbx, workdir, users=2 + args.phones)
    target = f"127.0.0.1:{server.port}"
    caller, callee = FIRST_USER, FIRST_USER + 1
    sink = Sink()
    uas_port = free_port()
    # (SippRun's own -timeout is 300 s: the soak's runs last as long as the soak)
    timeout = ["-timeout", f"{args.duration + 300}s"]
    uas = SippRun("media_uas.xml", None, timeout + ["-key", "rtp_port", str(sink.port), "-key", "pt", "8", "-key", "codec", "PCMA/8000",
                                         "-key", "te_pt", "101"], workdir, uas_port)
    csv = workdir / "callee.csv"
    csv.write_text(f"SEQUENTIAL\n{callee};bench-{callee}\n")
    reg = SippRun("register.xml", target, ["-inf", str(csv), "-au", "[field0]", "-ap", "[field1]", "-key", "expires", "3600",
                                           "-key", "contact_port", str(uas_port), "-m", "1"], workdir, free_port()).wait()
    if reg.counts()[0] != 1:
        raise SystemExit("the phone did not register")

    # the re-registering phones (their contact is a port nobody answers on: only the
    # registrar is exercised)
    phones = workdir / "phones.csv"
    phones.write_text("SEQUENTIAL\n" + "".join(f"{FIRST_USER + 2 + i};bench-{FIRST_USER + 2 + i}\n" for i in range(args.phones)))
    stop = threading.Event()
    reg_stats = {"ok": 0, "failed": 0}

    def refresher():
        while not stop.is_set():
            r = SippRun("register.xml", target, ["-inf", str(phones), "-au", "[field0]", "-ap", "[field1]", "-key", "expires",
                                                 str(args.refresh * 2), "-key", "contact_port", "9", "-m", str(args.phones)],
                        workdir, free_port()).wait(timeout=60)
            ok, failed = r.counts()
            reg_stats["ok"] += ok
            reg_stats["failed"] += failed
            stop.wait(args.refresh)

    threading.Thread(target=refresher, daemon=True).start()

    # calls: ~10 s each, --calls at once, for --duration
    call_secs = 11
    rate = max(1, round(args.calls / call_secs))
    total = max(args.calls, int(args.duration / call_secs * args.calls))
    time.sleep(1)
    idle_before = (rss_kib(server.pid), fds(server.pid))
    uac = SippRun("soak_uac.xml", target, timeout + ["-s", str(callee), "-au", str(caller), "-ap", f"bench-{caller}", "-key", "caller", str(caller),
                                          "-l", str(args.calls), "-r", str(rate), "-m", str(total), "-mp", str(free_port())],
                  workdir, free_port())
    t0 = time.monotonic()
    samples = []
    while uac.proc.poll() is None and time.monotonic() - t0 < args.duration:
        samples.append((time.monotonic() - t0, rss_kib(server.pid), fds(server.pid)))
        time.sleep(args.sample)
    # stop starting calls and let the ones up finish (SIGUSR1: SIPp's graceful quit), then
    # wait for FlowPBX to be idle again before the last sample
    if uac.proc.poll() is None:
        uac.proc.send_signal(signal.SIGUSR1)
    uac.wait(timeout=60)
    stop.set()
    deadline = time.monotonic() + 30
    while " 0 calls" not in server.sip_health() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)
    samples.append((time.monotonic() - t0, rss_kib(server.pid), fds(server.pid)))
    ok, failed = uac.counts()
    health = server.sip_health()
    server.stop()
    uas.proc.kill()
    sink.stop = True

    print(f"FlowPBX soak: {args.duration} s, {args.calls} concurrent calls, {args.phones} phones re-registering every {args.refresh} s")
    print(f"{'t (s)':>8} {'RSS (MiB)':>10} {'FDs':>6}")
    for t, rss, fd in samples:
        print(f"{t:8.0f} {rss / 1024:10.1f} {fd:6d}")
    after = [s for s in samples if s[0] >= args.warmup * args.duration] or samples
    mean = statistics.mean(s[1] for s in after)
    lo, hi = min(s[1] for s in after), max(s[1] for s in after)
    spread = max(hi - mean, mean - lo) / mean * 100 if mean else 0.0
    # descriptors: idle before the load against idle after it (during it they follow the calls)
    fd_growth = samples[-1][2] - idle_before[1]
    print(f"calls completed {ok}, failed {failed} (SIPp; the calls up when the run stopped count as failed only if they broke)")
    print(f"registrations {reg_stats['ok']} ok, {reg_stats['failed']} failed")
    print(f"RTP packets relayed to the phone: {sink.packets}")
    print(f"RSS after warm-up: mean {mean / 1024:.1f} MiB, min {lo / 1024:.1f}, max {hi / 1024:.1f} (+-{spread:.1f} %)")
    print(f"FDs idle before the load {idle_before[1]}, idle after it {samples[-1][2]} ({fd_growth:+d}); during it {min(s[2] for s in after)}-{max(s[2] for s in after)}")
    print(f"RSS idle before the load {idle_before[0] / 1024:.1f} MiB, idle after it {samples[-1][1] / 1024:.1f} MiB")
    print(f"SIP health at the end: {health}")
    verdict = spread <= 10.0 and fd_growth <= 0 and failed == 0 and ok > 0 and reg_stats["failed"] == 0
    print("verdict:", "PASS" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
