#!/usr/bin/env python3
"""Memory benchmark: what FlowPBX's resident memory grows with, and whether it comes back.

Run it on its own (not in CI): tests/bench/memory_bench.sh (builds the release binary first).

Phases, each followed by a settle pause and a reading of the server's memory from
/proc/PID/smaps_rollup (Rss, Anonymous) and /proc/PID/status (threads):
  idle          set up, --users extensions created, nothing registered
  registered    every user registered once (SIPp, digest auth)
  calls 1..N    --calls calls in --batches batches between two registered SIPp phones (407,
                anchored media ports allocated, CDR written); a batch that keeps adding
                memory is a leak, a plateau is the allocator's high-water mark
  flood         --flood hostile datagrams (the malformed corpus of tests/sip/malformed,
                valid requests cut at random points, random bytes, oversize datagrams) and
                --flood-tcp TCP connections sending garbage, as a scanner would
  unregistered  every user unregistered (Expires: 0)
  quiet         --quiet seconds later: completed transactions have expired (64*T1 = 32 s)
Printed: a table of the readings, per-registration and per-call memory, and a last
machine-readable line. --heaptrack runs the server under heaptrack (Debian: heaptrack) and
prints the top allocation sites of the peak and of what is still held at exit.
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sip_bench as sb  # noqa: E402

ROOT = sb.ROOT


def flowpbx_pid(server):
    """The flowpbx process itself (under --heaptrack the spawned pid is heaptrack's shell)."""
    for q in sb.children(server.proc.pid):
        try:
            if Path(f"/proc/{q}/comm").read_text().strip() == "flowpbx":
                return q
        except OSError:
            pass
    return server.proc.pid


def reading(server):
    pid = flowpbx_pid(server)
    out = {"rss": 0, "anon": 0, "threads": 0, "fds": 0}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            out["rss"] = int(line.split()[1])
        elif line.startswith("Anonymous:"):
            out["anon"] = int(line.split()[1])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            out["threads"] = int(line.split()[1])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def top_mappings(server, n=10):
    """The largest resident mappings: (rss KiB, size KiB, name)."""
    pid = flowpbx_pid(server)
    maps, cur = [], None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            cur = [0, (hi - lo) // 1024, head[5] if len(head) > 5 else "[anon]", head[0]]
            maps.append(cur)
        elif head[0] == "Rss:" and cur is not None:
            cur[0] = int(head[1])
    return sorted(maps, reverse=True)[:n]


def register_all(server, args, workdir, csv, port, expires):
    target = f"127.0.0.1:{server.port}"
    run = sb.SippRun("register.xml", target, ["-inf", str(csv), "-au", "[field0]", "-ap", "[field1]", "-key", "expires",
                                              str(expires), "-key", "contact_port", str(port), "-m", str(args.users),
                                              "-r", "1000", "-l", "100"], workdir, port).wait()
    ok, failed = run.counts()
    if failed:
        print(f"   {failed} registrations failed (expires {expires})", flush=True)
    return ok


def flood(server, args):
    """Hostile traffic: nothing of it is a call or a registration."""
    corpus = [p.read_bytes() for p in sorted((ROOT / "tests" / "sip" / "malformed").glob("*.sip"))]
    valid = (f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{{}}\r\n"
             f"From: <sip:2000@127.0.0.1>;tag=1\r\nTo: <sip:2000@127.0.0.1>\r\nCall-ID: {{}}@flood\r\n"
             f"CSeq: 1 REGISTER\r\nContact: <sip:2000@127.0.0.1:9>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    rnd = random.Random(7)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
    addr = ("127.0.0.1", server.port)
    sent = 0
    t0 = time.monotonic()
    for i in range(args.flood):
        kind = i % 4
        if kind == 0 and corpus:
            data = corpus[rnd.randrange(len(corpus))]
        elif kind == 1:
            full = valid.format(i, i).encode()
            data = full[:rnd.randrange(1, len(full))]
        elif kind == 2:
            data = rnd.randbytes(rnd.randrange(1, 1400))
        else:
            data = valid.format(i, i).encode().replace(b"Content-Length: 0", b"X-Pad: " + b"a" * 60000 + b"\r\nContent-Length: 0")
        try:
            socks[i % len(socks)].sendto(data, addr)
            sent += 1
        except (BlockingIOError, OSError):
            time.sleep(0.001)
        if i % 2000 == 1999:
            # a scanner's pace, not a kernel buffer overrun: what the server reads, it parses
            time.sleep(0.02)
    for s in socks:
        s.close()
    tcp = 0
    for i in range(args.flood_tcp):
        try:
            c = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            c.sendall(rnd.randbytes(rnd.randrange(1, 4000)) if i % 2 else b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
            c.close()
            tcp += 1
        except OSError:
            time.sleep(0.01)
    return sent, tcp, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowpbx", default=str(ROOT / "target" / "release" / "flowpbx"), help="the release binary")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=5000, help="calls in all")
    ap.add_argument("--batches", type=int, default=4, help="batches the calls are split into")
    ap.add_argument("--call-rate", type=int, default=200)
    ap.add_argument("--hold-ms", type=int, default=500)
    ap.add_argument("--flood", type=int, default=200000, help="hostile UDP datagrams")
    ap.add_argument("--flood-tcp", type=int, default=2000, help="hostile TCP connections")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds between a phase and its reading")
    ap.add_argument("--quiet", type=float, default=75.0, help="seconds without load before the last reading")
    ap.add_argument("--mappings", type=int, default=0, metavar="N", help="print the N largest resident mappings at the end")
    ap.add_argument("--keep", action="store_true", help="keep the server's data dir and log")
    ap.add_argument("--heaptrack", action="store_true", help="run the server under heaptrack and print its summary")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="environment for the server (e.g. MALLOC_ARENA_MAX=2)")
    args = ap.parse_args()
    if not shutil.which("sipp"):
        sys.exit("sipp is missing (Debian: apt-get install sip-tester)")
    if args.heaptrack and not shutil.which("heaptrack"):
        sys.exit("heaptrack is missing (Debian: apt-get install heaptrack)")
    workdir = tempfile.mkdtemp(prefix="mem-bench-")
    csv = Path(workdir) / "users.csv"
    sb.write_users(csv, args.users)
    env = dict(os.environ)
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    wrapper = ["heaptrack", "-o", str(Path(workdir) / "heaptrack")] if args.heaptrack else []
    server = sb.FlowPBX(Path(args.flowpbx), workdir, args.users, wrapper=wrapper, env=env)
    rows = []

    def note(phase):
        time.sleep(args.settle)
        r = reading(server)
        rows.append((phase, r))
        print(f"== {phase}: RSS {r['rss'] / 1024:.1f} MiB, anonymous {r['anon'] / 1024:.1f} MiB, "
              f"{r['threads']} threads, {r['fds']} fds; SIP: {server.sip_health()}", flush=True)

    try:
        note("idle")
        reg_port = sb.free_port()
        registered = register_all(server, args, workdir, csv, reg_port, 3600)
        note("registered")
        per_batch = max(1, args.calls // args.batches)
        done_calls = 0
        call_args = argparse.Namespace(calls=per_batch, call_rate=args.call_rate, hold_ms=args.hold_ms)
        for b in range(args.batches):
            res = sb.calls(server, call_args, workdir)
            done_calls += res["calls completed"]
            if res["calls failed"]:
                print(f"   {res['calls failed']} calls failed in batch {b + 1}", flush=True)
            note(f"calls {b + 1}/{args.batches} ({done_calls} done)")
        sent, tcp, secs = flood(server, args)
        print(f"   flood: {sent} datagrams and {tcp} TCP connections in {secs:.1f} s", flush=True)
        note("flood")
        register_all(server, args, workdir, csv, reg_port, 0)
        note("unregistered")
        # the transaction layer keeps completed transactions for 64*T1 (32 s, RFC 3261's
        # timers D, J, L, M) to absorb retransmissions; the memory they hold is let go then
        time.sleep(max(0.0, args.quiet - args.settle))
        note(f"quiet {args.quiet:.0f} s")
        if args.mappings:
            print("largest resident mappings (RSS KiB, size KiB, name, range):")
            for m in top_mappings(server, args.mappings):
                print(f"   {m[0]:>8} {m[1]:>10} {m[2]} {m[3]}")
    finally:
        server.stop()
    idle = rows[0][1]["rss"]
    by = dict(rows)
    print()
    print(f"{args.users} users; {done_calls} calls at {args.call_rate}/s held {args.hold_ms} ms in {args.batches} batches; "
          f"{args.flood} hostile datagrams + {args.flood_tcp} TCP connections; settle {args.settle} s; "
          f"{os.cpu_count()} CPUs, load average before: {sb.LOAD_BEFORE}; env: {' '.join(args.env) or 'default'}")
    print(f"{'phase':34}{'RSS MiB':>10}{'anon MiB':>10}{'vs idle':>10}{'threads':>9}{'fds':>6}")
    for phase, r in rows:
        print(f"{phase:34}{r['rss'] / 1024:>10.1f}{r['anon'] / 1024:>10.1f}{(r['rss'] - idle) / max(idle, 1) * 100:>9.1f}%"
              f"{r['threads']:>9}{r['fds']:>6}")
    reg_kib = (by["registered"]["rss"] - idle) * 1000 / max(registered, 1)
    first_calls = rows[2][1]["rss"]
    last_calls = rows[1 + args.batches][1]["rss"]
    later = (last_calls - first_calls) * 1024 / max(done_calls - per_batch, 1)
    print(f"memory per 1000 registrations: {reg_kib:.0f} KiB; growth per call after the first batch: {later:.0f} bytes")
    final = rows[-1][1]["rss"]
    print(f"RESULT idle_rss_mib={idle / 1024:.1f} registered_rss_mib={by['registered']['rss'] / 1024:.1f} "
          f"after_calls_rss_mib={last_calls / 1024:.1f} after_flood_rss_mib={by['flood']['rss'] / 1024:.1f} "
          f"final_rss_mib={final / 1024:.1f} final_vs_idle_pct={(final - idle) / max(idle, 1) * 100:.1f}")
    if args.heaptrack:
        time.sleep(1)
        for f in sorted(Path(workdir).glob("heaptrack*.zst")) + sorted(Path(workdir).glob("heaptrack*.gz")):
            print(f"\n== heaptrack summary ({f.name})")
            out = subprocess.run(["heaptrack_print", "-f", str(f), "-p", "1", "-a", "0", "-T", "0", "-l", "1", "-n", "12",
                                  "-s", "5"], capture_output=True, text=True)
            print(out.stdout[-12000:])
        print(f"heaptrack data kept in {workdir}")
    elif args.keep:
        print(f"data and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
