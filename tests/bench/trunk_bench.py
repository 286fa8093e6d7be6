#!/usr/bin/env python3
"""Trunk benchmark: FlowPBX against Kamailio 5.6, side by side on loopback, SIPp as the carrier.

Run it on its own (not in CI): tests/bench/trunk_bench.sh (builds the release binary first).

1. Inbound trunk calls: a carrier (SIPp from 127.0.0.2, an IP-authenticated trunk on both
   servers) calls a DID at --call-rate calls/s, each held --hold-ms, then BYE; the DID reaches
   extension 2001 (a SIPp phone registered from its own port). FlowPBX routes it through a
   published 3-node flow (number -> time switch, open all week -> extension) with media
   anchored (ports allocated, both SDPs rewritten, the relay armed; SIPp sends no RTP, so the
   figure is the call's signalling and set-up cost); Kamailio maps the DID to the user and
   relays statefully with record-route (tests/bench/sip_kamailio.cfg), the same work a proxy
   does for a trunk. Printed: completed, failed, INVITE -> 200 p50/p99, CPU per call.
2. Registration trunks kept registered: --trunks registration trunks on FlowPBX, each an
   account at Kamailio (the provider's registrar, digest auth), expiry --trunk-expiry s and
   OPTIONS keep-alive every --options-interval s; once all are registered, FlowPBX's CPU over
   --trunk-window s is printed as a share of one core (goal < 1 %), and how many trunks were
   still registered at the end.

Goals from the issue: CPU per call <= 1.5x Kamailio's, 0 failed at 200 CPS, INVITE->200 p99
<= 10 ms; 500 registration trunks with < 1 % of a core.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sip_bench import (FIRST_USER, LOAD_BEFORE, FlowPBX, Kamailio, SippRun, cpu_seconds, fmt, free_port,  # noqa: E402
                       median_of, pct)

TRUNK_IP = "127.0.0.2"
DID = "+15550000001"
CALLEE = FIRST_USER + 1


def free_port_on(ip):
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def flowpbx_inbound_setup(pbx):
    """An IP trunk from the carrier, a time switch open all week, a flow number -> switch ->
    extension 2001, the DID mapped to it."""
    ext = next(e for e in pbx.call("GET", "/extensions?limit=100")["data"] if e["extension"] == str(CALLEE))
    trunk = pbx.call("POST", "/trunks", {"name": "Bench carrier", "type": "ip", "remote_hosts": [f"{TRUNK_IP}/32"]})["data"]["id"]
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    switch = pbx.call("POST", "/time-switches", {"name": "Always", "timezone": "UTC",
                                                 "rules": [{"label": "Open", "days": days, "start": "00:00", "end": "23:59"}]})["data"]["id"]
    number = pbx.call("POST", "/numbers", {"number": DID, "name": "Bench DID", "trunk_id": trunk})["data"]["id"]
    graph = {
        "nodes": [
            {"id": "in", "type": "inbound_number", "position": {"x": 0, "y": 0}, "data": {"entity_type": "inbound_number", "entity_id": number}},
            {"id": "ts", "type": "time_switch", "position": {"x": 200, "y": 0}, "data": {"entity_type": "time_switch", "entity_id": switch}},
            {"id": "ext", "type": "extension", "position": {"x": 400, "y": 0}, "data": {"entity_type": "extension", "entity_id": ext["id"], "config": {"timeout": 20}}},
            {"id": "bye", "type": "hangup", "position": {"x": 600, "y": 0}, "data": {}},
        ],
        "edges": [
            {"id": "e1", "source": "in", "sourceHandle": "next", "target": "ts"},
            {"id": "e2", "source": "ts", "sourceHandle": "Open", "target": "ext"},
            {"id": "e3", "source": "ts", "sourceHandle": "default", "target": "bye"},
            {"id": "e4", "source": "ext", "sourceHandle": "no_answer", "target": "bye"},
            {"id": "e5", "source": "ext", "sourceHandle": "busy", "target": "bye"},
        ],
    }
    flow = pbx.call("POST", "/flows", {"name": "Bench line", "flow_data": graph})["data"]["id"]
    pbx.call("POST", f"/flows/{flow}/publish", {})
    pbx.call("PUT", f"/numbers/{number}", {"number": DID, "name": "Bench DID", "trunk_id": trunk, "flow_id": flow, "flow_entry_node": "in"})
    deadline = time.monotonic() + 30
    while "1 numbers" not in pbx.sip_health() and time.monotonic() < deadline:
        time.sleep(0.1)


def register_callee(server, workdir, uas_port):
    target = f"127.0.0.1:{server.port}"
    tmp = Path(tempfile.mkdtemp(prefix="callee-", dir=workdir))
    csv = tmp / "callee.csv"
    csv.write_text(f"SEQUENTIAL\n{CALLEE};bench-{CALLEE}\n")
    reg = SippRun("register.xml", target, ["-inf", str(csv), "-au", "[field0]", "-ap", "[field1]", "-key", "expires", "3600",
                                           "-key", "contact_port", str(uas_port), "-m", "1"], workdir, free_port()).wait()
    if reg.counts()[0] != 1:
        raise RuntimeError(f"{server.name}: the callee did not register: {(reg.dir / 'errors.log').read_text()[-2000:]}")


def inbound_calls(server, args, workdir):
    target = f"127.0.0.1:{server.port}"
    uas_port = free_port()
    uas = SippRun("uas.xml", None, ["-m", str(args.calls)], workdir, uas_port)
    register_callee(server, workdir, uas_port)
    time.sleep(0.3)
    cpu0 = cpu_seconds(server.pid)
    # the carrier: SIPp bound to the trunk's address
    carrier = SippRun("bench_trunk_call.xml", target, ["-s", DID, "-r", str(args.call_rate), "-m", str(args.calls),
                                                      "-d", str(args.hold_ms), "-l", str(args.call_rate * 4), "-i", TRUNK_IP],
                      workdir, free_port_on(TRUNK_IP))
    carrier.wait()
    time.sleep(1.0)
    cpu1 = cpu_seconds(server.pid)
    uas.wait(timeout=60)
    ok, failed = carrier.counts()
    rt = carrier.rtts(1)
    return {
        "calls completed": ok,
        "calls failed": failed,
        "p50 INVITE->200 (ms)": pct(rt, 50),
        "p99 INVITE->200 (ms)": pct(rt, 99),
        "CPU per call (us)": (cpu1 - cpu0) / max(ok, 1) * 1e6,
    }


def registration_trunks(pbx, kam, args):
    """--trunks registration trunks on FlowPBX registering to Kamailio; FlowPBX's CPU while
    it keeps them registered."""
    first = FIRST_USER + 2
    ids = []
    for i in range(args.trunks):
        u = first + i
        r = pbx.call("POST", "/trunks", {"name": f"Provider account {u}", "type": "register", "host": "127.0.0.1", "port": kam.port,
                                         "username": str(u), "password": f"bench-{u}", "register_expiry": args.trunk_expiry,
                                         "options_interval": args.options_interval})
        ids.append(r["data"]["id"])
    t0 = time.monotonic()
    while True:
        statuses = [pbx.call("GET", f"/trunks/{i}/status")["data"]["status"] for i in ids]
        registered = sum(1 for s in statuses if s == "registered")
        if registered == len(ids):
            break
        if time.monotonic() - t0 > 120:
            raise RuntimeError(f"only {registered}/{len(ids)} trunks registered after 120 s: {sorted(set(statuses))}")
        time.sleep(1)
    all_registered_s = time.monotonic() - t0
    time.sleep(2)
    cpu0 = cpu_seconds(pbx.pid)
    w0 = time.monotonic()
    time.sleep(args.trunk_window)
    cpu1 = cpu_seconds(pbx.pid)
    window = time.monotonic() - w0
    statuses = [pbx.call("GET", f"/trunks/{i}/status")["data"]["status"] for i in ids]
    return {
        "registration trunks": len(ids),
        "all registered after (s)": all_registered_s,
        "CPU while keeping them (% of a core)": (cpu1 - cpu0) / window * 100,
        "still registered at the end": sum(1 for s in statuses if s == "registered"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowpbx", default=str(Path(__file__).resolve().parents[2] / "target" / "release" / "flowpbx"))
    ap.add_argument("--calls", type=int, default=4000, help="calls per round")
    ap.add_argument("--call-rate", type=int, default=200)
    ap.add_argument("--hold-ms", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trunks", type=int, default=500)
    ap.add_argument("--trunk-expiry", type=int, default=120, help="seconds (Kamailio's min_expires is 60)")
    ap.add_argument("--options-interval", type=int, default=30)
    ap.add_argument("--trunk-window", type=int, default=120, help="seconds of CPU measured while the trunks stay registered")
    ap.add_argument("--kamailio-children", type=int, default=4)
    ap.add_argument("--skip-trunks", action="store_true", help="only the inbound calls")
    ap.add_argument("--skip-calls", action="store_true", help="only the registration trunks")
    args = ap.parse_args()
    for tool in ["sipp", "kamailio"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (Debian: apt-get install sip-tester kamailio)")
    workdir = tempfile.mkdtemp(prefix="trunk-bench-")
    users = args.trunks + 2
    pbx = kam = None
    try:
        pbx = FlowPBX(Path(args.flowpbx), workdir, 2)
        kam = Kamailio(workdir, users, args.kamailio_children, TRUNK_IP, DID)
        flowpbx_inbound_setup(pbx)
        rounds = {pbx.name: [], kam.name: []}
        for r in range(0 if args.skip_calls else args.rounds):
            for s in (pbx, kam):
                print(f"== round {r + 1}/{args.rounds}: {s.name} inbound trunk calls", flush=True)
                rounds[s.name].append(inbound_calls(s, args, workdir))
        results = {n: median_of(v) for n, v in rounds.items() if v}
        trunks = None
        if not args.skip_trunks:
            print(f"== FlowPBX: {args.trunks} registration trunks at Kamailio, {args.trunk_window} s", flush=True)
            trunks = registration_trunks(pbx, kam, args)
    finally:
        for s in (pbx, kam):
            if s:
                s.stop()
    print()
    if results:
        print_calls(args, results)
    if trunks:
        print()
        print(f"registration trunks (expiry {args.trunk_expiry} s, OPTIONS every {args.options_interval} s):")
        for k, v in trunks.items():
            print(f"{k:40}{fmt(v):>16}")
    shutil.rmtree(workdir, ignore_errors=True)


def print_calls(args, results):
    print(f"inbound trunk calls: {args.calls} per round at {args.call_rate}/s held {args.hold_ms} ms, medians of {args.rounds} "
          f"rounds (failures summed); {os.cpu_count()} CPUs, load average before: {LOAD_BEFORE}; Kamailio with "
          f"{args.kamailio_children} workers")
    names = list(results)
    print(f"{'':40}" + "".join(f"{n:>16}" for n in names) + "           ratio")
    for row in results[names[0]]:
        vals = [results[n][row] for n in names]
        line = f"{row:40}" + "".join(f"{fmt(v):>16}" for v in vals)
        if all(isinstance(v, (int, float)) for v in vals) and vals[1]:
            line += f"{vals[0] / vals[1]:>16.2f}"
        print(line)


if __name__ == "__main__":
    main()
