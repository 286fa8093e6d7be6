#!/usr/bin/env python3
"""SIP benchmark: FlowPBX against Kamailio 5.6, side by side on loopback, SIPp as the load.

Run it on its own (not in CI): tests/bench/sip_bench.sh (builds the release binary first).

1. Registration at saturation: 1000 users from a CSV registering with digest auth
   (REGISTER, 401, REGISTER with credentials, 200) as fast as the server answers, with up to
   --reg-concurrency registrations in flight. Printed: rate, failures, p50/p99 of the
   authenticated REGISTER -> 200 (SIPp's response time 2, whole milliseconds), the server's CPU
   time per registration (utime+stime of every process of the server, from /proc), and its
   memory per 1000 registrations (PSS after the first 1000 bindings minus before).
2. Call setup: a SIPp phone calls another one through the server at --call-rate calls/s,
   authenticating its INVITE (407), holding each call --hold-ms, then BYE. Printed:
   completed, failed, INVITE (with credentials) -> 200 p50/p99, CPU per call.

3. With --tls: SIP over TLS beside UDP on FlowPBX alone (see tls_bench below): registrations
   per second and the server's CPU per registration over UDP, over kept TLS connections and
   with a full TLS handshake per registration.

Both servers run at once on their own ports; each measurement runs --rounds times,
alternating between them, and the medians are printed (failures summed), so a change in the
machine's load touches both alike. Kamailio is an in-memory registrar with digest auth (usrloc db_mode 0, users in an htable)
and an authenticating stateful proxy (407, location lookup, record-route, t_relay):
tests/bench/sip_kamailio.cfg. FlowPBX runs with its defaults except that the per-source rate
limit and the failed-auth ban are off (SIPp is one source) and SIP logging is off.
"""

import argparse
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIP = ROOT / "tests" / "sip"
HZ = os.sysconf("SC_CLK_TCK")
FIRST_USER = 2000
LOAD_BEFORE = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def free_port():
    while True:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            pass
        finally:
            u.close()
            t.close()


def children(pid):
    """pid and every descendant."""
    kids = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo.extend(kids.get(q, []))
    return out


def cpu_seconds(pid):
    """utime+stime (and the reaped children's) of a process tree."""
    total = 0
    for q in children(pid):
        try:
            stat = Path(f"/proc/{q}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / HZ


def pss_kib(pid):
    total = 0
    for q in children(pid):
        try:
            for line in Path(f"/proc/{q}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def write_users(path, n):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(n):
            u = FIRST_USER + i
            f.write(f"{u};bench-{u}\n")


class SippRun:
    def __init__(self, scenario, server, args, workdir, local_port):
        self.dir = Path(tempfile.mkdtemp(prefix="sipp-", dir=workdir))
        cmd = ["sipp", "-sf", str(SIP / scenario), "-i", "127.0.0.1", "-p", str(local_port), "-nostdin",
               "-timeout", "300s", "-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
               "-trace_err", "-error_file", str(self.dir / "errors.log"), "-max_recv_loops", "10000",
               "-max_sched_loops", "10000", "-buff_size", "8388608"] + args
        if server:
            cmd.append(server)
        self.scenario = scenario
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.started = time.monotonic()

    def wait(self, timeout=600):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.elapsed = time.monotonic() - self.started
        return self

    def stats(self):
        """The last line of SIPp's statistics CSV, as a dict."""
        files = list(self.dir.glob("*_.csv"))
        if not files:
            return {}
        lines = [l for l in files[0].read_text().splitlines() if l.strip()]
        head = lines[0].split(";")
        last = lines[-1].split(";")
        return dict(zip(head, last))

    def rtts(self, rtd):
        out = []
        for f in self.dir.glob("*_rtt.csv"):
            for line in f.read_text().splitlines()[1:]:
                parts = line.split(";")
                if len(parts) >= 3 and parts[2].strip() == str(rtd):
                    out.append(float(parts[1]))
        return out

    def counts(self):
        s = self.stats()
        ok = int(s.get("SuccessfulCall(C)", "0") or 0)
        failed = int(s.get("FailedCall(C)", "0") or 0)
        return ok, failed


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


class Server:
    """A server process under test: `name`, `port` (SIP), `pid`, `proc`."""

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class FlowPBX(Server):
    name = "FlowPBX"

    def __init__(self, binary, workdir, users, tls=False, wrapper=(), env=None):
        self.dir = Path(tempfile.mkdtemp(prefix="flowpbx-", dir=workdir))
        self.http = free_port()
        self.port = free_port()
        # SIP over TLS only when measured (--tls); a fresh port either way (5061 may be taken)
        self.tls_port = free_port()
        self.proc = subprocess.Popen(
            list(wrapper) + [str(binary), "--data-dir", str(self.dir), "--bind-address", "127.0.0.1", "--http-port", str(self.http),
             "--sip-port", str(self.port), "--sip-log", "off", "--log-level", "warn", "--sip-rate-limit", "0",
             "--sip-auth-fail-limit", "0", "--rtp-port-min", "40000", "--rtp-port-max", "40999", "--https-port", "0",
             "--sip-tls-port", str(self.tls_port) if tls else "0"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "w"), env=env)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = None
        deadline = time.monotonic() + 30
        while True:
            try:
                self.call("GET", "/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.call("POST", "/setup", {"username": "admin", "password": "bench password 1"})
        r = self.call("POST", "/auth/login", {"username": "admin", "password": "bench password 1"})
        self.csrf = r["data"]["csrf_token"]
        for i in range(users):
            u = FIRST_USER + i
            self.call("POST", "/extensions", {"extension": str(u), "name": f"Bench {u}", "sip_password": f"bench-{u}"})
        deadline = time.monotonic() + 30
        while f"{users} extensions" not in self.sip_health():
            if time.monotonic() > deadline:
                raise RuntimeError("the SIP directory never loaded the users: " + self.sip_health())
            time.sleep(0.1)
        self.pid = self.proc.pid

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}/api/v1{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        if self.csrf:
            req.add_header("x-csrf-token", self.csrf)
        with self.opener.open(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def sip_health(self):
        return self.call("GET", "/health")["data"]["components"]["sip"].get("detail", "")



class Kamailio(Server):
    name = "Kamailio"

    def __init__(self, workdir, users, children_n, trunk_ip="127.0.0.2", did="+15550000001"):
        self.dir = Path(tempfile.mkdtemp(prefix="kamailio-", dir=workdir))
        self.port = free_port()
        mpath = next((p for p in ["/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/kamailio/modules",
                                  "/usr/lib64/kamailio/modules"] if Path(p).is_dir()), "/usr/lib/x86_64-linux-gnu/kamailio/modules")
        cfg = (ROOT / "tests" / "bench" / "sip_kamailio.cfg").read_text()
        for k, v in {"@PORT@": self.port, "@CHILDREN@": children_n, "@MPATH@": mpath, "@FIRST_USER@": FIRST_USER,
                     "@USERS@": users, "@TRUNK_IP@": trunk_ip, "@DID@": did, "@CALLEE@": FIRST_USER + 1}.items():
            cfg = cfg.replace(k, str(v))
        (self.dir / "kamailio.cfg").write_text(cfg)
        self.proc = subprocess.Popen(
            ["kamailio", "-f", str(self.dir / "kamailio.cfg"), "-DD", "-E", "-m", "256", "-M", "16",
             "-P", str(self.dir / "kamailio.pid"), "-Y", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "w"))
        self.pid = self.proc.pid
        time.sleep(1.5)
        if self.proc.poll() is not None:
            raise RuntimeError("kamailio did not start:\n" + (self.dir / "log").read_text()[-3000:])



def warm_registration(server, args, workdir, csv, port):
    """The first --users registrations: the memory they take."""
    target = f"127.0.0.1:{server.port}"
    common = ["-inf", str(csv), "-au", "[field0]", "-ap", "[field1]", "-key", "expires", "3600", "-key", "contact_port", str(port)]
    before = pss_kib(server.pid)
    warm = SippRun("register.xml", target, common + ["-m", str(args.users), "-r", "2000", "-l", "200"], workdir, port).wait()
    time.sleep(0.5)
    after = pss_kib(server.pid)
    ok, failed = warm.counts()
    return {"first registrations ok/failed": f"{ok}/{failed}", "memory per 1000 registrations (KiB)": (after - before) * 1000 / max(args.users, 1)}


def saturation(server, args, workdir, csv, port):
    """Every user re-registers (same contacts) as fast as the server answers."""
    target = f"127.0.0.1:{server.port}"
    common = ["-inf", str(csv), "-au", "[field0]", "-ap", "[field1]", "-key", "expires", "3600", "-key", "contact_port", str(port)]
    cpu0 = cpu_seconds(server.pid)
    run = SippRun("register.xml", target, common + ["-m", str(args.registrations), "-r", "100000",
                                                    "-l", str(args.reg_concurrency)], workdir, port).wait()
    cpu1 = cpu_seconds(server.pid)
    ok, failed = run.counts()
    rt = run.rtts(2)
    return {
        "rate (reg/s)": ok / run.elapsed if run.elapsed else float("nan"),
        "registration failures": failed,
        "p50 REGISTER->200 (ms)": pct(rt, 50),
        "p99 REGISTER->200 (ms)": pct(rt, 99),
        "CPU per registration (us)": (cpu1 - cpu0) / max(ok, 1) * 1e6,
    }


def calls(server, args, workdir):
    target = f"127.0.0.1:{server.port}"
    caller, callee = FIRST_USER, FIRST_USER + 1
    uas_port = free_port()
    uas = SippRun("uas.xml", None, ["-m", str(args.calls)], workdir, uas_port)
    tmp = Path(tempfile.mkdtemp(prefix="callee-", dir=workdir))
    csv = tmp / "callee.csv"
    csv.write_text(f"SEQUENTIAL\n{callee};bench-{callee}\n")
    port = free_port()
    reg = SippRun("register.xml", target, ["-inf", str(csv), "-au", "[field0]", "-ap", "[field1]", "-key", "expires", "3600",
                                           "-key", "contact_port", str(uas_port), "-m", "1"], workdir, port).wait()
    if reg.counts()[0] != 1:
        raise RuntimeError(f"{server.name}: the callee did not register: {(reg.dir / 'errors.log').read_text()[-2000:]}")
    time.sleep(0.3)
    port = free_port()
    cpu0 = cpu_seconds(server.pid)
    uac = SippRun("uac.xml", target, ["-s", str(callee), "-au", str(caller), "-ap", f"bench-{caller}", "-key", "caller",
                                      str(caller), "-r", str(args.call_rate), "-m", str(args.calls), "-d", str(args.hold_ms),
                                      "-l", str(args.call_rate * 4)], workdir, port).wait()
    # the last calls' BYEs and CDR writes land within a second
    time.sleep(1.0)
    cpu1 = cpu_seconds(server.pid)
    uas.wait(timeout=60)
    ok, failed = uac.counts()
    rt = uac.rtts(1)
    return {
        "calls completed": ok,
        "calls failed": failed,
        "p50 INVITE->200 (ms)": pct(rt, 50),
        "p99 INVITE->200 (ms)": pct(rt, 99),
        "CPU per call (us)": (cpu1 - cpu0) / max(ok, 1) * 1e6,
    }


def median_of(rounds):
    """Per metric: the median over the rounds (sums for counts of failures and calls)."""
    out = {}
    for k in rounds[0]:
        vals = [r[k] for r in rounds]
        if "failures" in k or "failed" in k or "completed" in k:
            out[k] = sum(vals)
        elif isinstance(vals[0], (int, float)):
            out[k] = sorted(vals)[len(vals) // 2]
        else:
            out[k] = vals[0]
    return out


def fmt(v):
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flowpbx", default=str(ROOT / "target" / "release" / "flowpbx"), help="the release binary")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--registrations", type=int, default=30000, help="registrations per saturation run")
    ap.add_argument("--reg-concurrency", type=int, default=100)
    ap.add_argument("--calls", type=int, default=4500, help="calls per round")
    ap.add_argument("--call-rate", type=int, default=300)
    ap.add_argument("--hold-ms", type=int, default=1000)
    ap.add_argument("--kamailio-children", type=int, default=4, help="Kamailio's UDP worker processes")
    ap.add_argument("--only", choices=["flowpbx", "kamailio"], help="run one side only")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of each measurement, alternating the servers")
    ap.add_argument("--tls", action="store_true", help="measure SIP over TLS beside UDP (FlowPBX only, no SIPp) instead")
    ap.add_argument("--tls-registrations", type=int, default=6000, help="registrations per mode and round (--tls)")
    ap.add_argument("--tls-concurrency", type=int, default=50, help="client workers (--tls)")
    args = ap.parse_args()
    if args.tls:
        workdir = tempfile.mkdtemp(prefix="sip-bench-")
        tls_bench(args, workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for tool in ["sipp"] + (["kamailio"] if args.only != "flowpbx" else []):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (Debian: apt-get install sip-tester kamailio)")
    workdir = tempfile.mkdtemp(prefix="sip-bench-")
    csv = Path(workdir) / "users.csv"
    write_users(csv, args.users)
    servers = []
    try:
        if args.only != "kamailio":
            servers.append(FlowPBX(Path(args.flowpbx), workdir, args.users))
        if args.only != "flowpbx":
            servers.append(Kamailio(workdir, args.users, args.kamailio_children))
        # both servers run at once (the idle one costs nothing); rounds alternate between them
        # so a change in the machine's load touches both alike
        ports = {s.name: free_port() for s in servers}
        results = {s.name: {} for s in servers}
        for s in servers:
            print(f"== {s.name}: the first {args.users} registrations", flush=True)
            results[s.name].update(warm_registration(s, args, workdir, csv, ports[s.name]))
        reg_rounds = {s.name: [] for s in servers}
        call_rounds = {s.name: [] for s in servers}
        for r in range(args.rounds):
            for s in servers:
                print(f"== round {r + 1}/{args.rounds}: {s.name} registrations at saturation", flush=True)
                reg_rounds[s.name].append(saturation(s, args, workdir, csv, ports[s.name]))
            for s in servers:
                print(f"== round {r + 1}/{args.rounds}: {s.name} calls", flush=True)
                call_rounds[s.name].append(calls(s, args, workdir))
        for s in servers:
            results[s.name].update(median_of(reg_rounds[s.name]))
            results[s.name].update(median_of(call_rounds[s.name]))
    finally:
        for s in servers:
            s.stop()
    print()
    print(f"{args.users} users; per round {args.registrations} registrations at saturation ({args.reg_concurrency} in flight) "
          f"and {args.calls} calls at {args.call_rate}/s held {args.hold_ms} ms; medians of {args.rounds} rounds "
          f"(failures summed); {os.cpu_count()} CPUs, load average before: {LOAD_BEFORE}; Kamailio with "
          f"{args.kamailio_children} workers")
    names = list(results)
    rows = list(next(iter(results.values())).keys()) if results else []
    print(f"{'':40}" + "".join(f"{n:>16}" for n in names) + ("           ratio" if len(names) == 2 else ""))
    for row in rows:
        vals = [results[n][row] for n in names]
        line = f"{row:40}" + "".join(f"{fmt(v):>16}" for v in vals)
        if len(vals) == 2 and all(isinstance(v, (int, float)) for v in vals) and vals[1]:
            line += f"{vals[0] / vals[1]:>16.2f}"
        print(line)
    shutil.rmtree(workdir, ignore_errors=True)



# ----- SIP over TLS beside UDP (--tls) -----
#
# SIPp from Debian is built without OpenSSL, so this part drives FlowPBX with a small asyncio
# client of its own (the same client for UDP and TLS, so the server's CPU per registration is
# compared like for like): each of --tls-concurrency workers registers users one after the
# other (REGISTER, 401, REGISTER with an MD5 digest, 200). Modes:
#   udp            one UDP socket per worker
#   tls            one TLS connection per worker, kept (a phone's connection: refreshes)
#   tls-handshake  a new TLS connection (full handshake) per registration
# Printed per mode: registrations/s (bounded by this Python client, see the client CPU
# column), the server's CPU per registration (utime+stime from /proc), failures.

import asyncio
import hashlib
import re
import ssl


def digest_header(user, password, realm, nonce, uri, nc, cnonce):
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    resp = hashlib.md5(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}", '
            f'algorithm=MD5, qop=auth, nc={nc:08x}, cnonce="{cnonce}"')


def register_msg(transport, port, local_port, user, call_id, cseq, branch, auth=None):
    uri = f"sip:127.0.0.1:{port}"
    tp = "" if transport == "UDP" else ";transport=tls"
    lines = [f"REGISTER {uri} SIP/2.0",
             f"Via: SIP/2.0/{transport} 127.0.0.1:{local_port};branch=z9hG4bK{branch};rport",
             f"From: <sip:{user}@127.0.0.1>;tag=t{call_id}", f"To: <sip:{user}@127.0.0.1>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
             f"Contact: <sip:{user}@127.0.0.1:{local_port}{tp}>", "Max-Forwards: 70", "Expires: 3600"]
    if auth:
        lines.append(f"Authorization: {auth}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


NONCE = re.compile(r'nonce="([^"]+)"')
REALM = re.compile(r'realm="([^"]+)"')


class Stream:
    def __init__(self, reader, writer):
        self.r, self.w, self.buf = reader, writer, b""

    async def request(self, data):
        self.w.write(data)
        await self.w.drain()
        while b"\r\n\r\n" not in self.buf:
            chunk = await self.r.read(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode(errors="replace")

    def local_port(self):
        return self.w.get_extra_info("sockname")[1]

    def close(self):
        self.w.close()

    async def closed(self):
        try:
            await self.w.wait_closed()
        except Exception:
            pass


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self):
        self.q = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.q.put_nowait(data)


class Udp:
    def __init__(self, transport, proto):
        self.t, self.p = transport, proto

    async def request(self, data):
        self.t.sendto(data)
        return (await asyncio.wait_for(self.p.q.get(), 5)).decode(errors="replace")

    def local_port(self):
        return self.t.get_extra_info("sockname")[1]

    def close(self):
        self.t.close()


async def connect(mode, port, ctx):
    if mode == "udp":
        loop = asyncio.get_running_loop()
        t, p = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", port))
        return Udp(t, p)
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    return Stream(r, w)


async def tls_worker(mode, port, ctx, users, n, counters, seq):
    transport = "UDP" if mode == "udp" else "TLS"
    conn = None
    for i in range(n):
        user = users[i % len(users)]
        try:
            if conn is None or mode == "tls-handshake":
                conn = await connect(mode, port, ctx)
            lp = conn.local_port()
            seq[0] += 1
            cid = f"tb{seq[0]}"
            h = await conn.request(register_msg(transport, port, lp, user, cid, 1, cid + "a"))
            nonce, realm = NONCE.search(h).group(1), REALM.search(h).group(1)
            auth = digest_header(user, f"bench-{user}", realm, nonce, f"sip:127.0.0.1:{port}", 1, cid)
            h = await conn.request(register_msg(transport, port, lp, user, cid, 2, cid + "b", auth))
            if h.startswith("SIP/2.0 200"):
                counters["ok"] += 1
            else:
                counters["failed"] += 1
        except Exception:
            counters["failed"] += 1
            conn = None
        if mode == "tls-handshake" and conn is not None:
            conn.close()
            await conn.closed()
            conn = None
    if conn is not None:
        conn.close()


def tls_round(server, mode, port, args):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    users = [str(FIRST_USER + i) for i in range(args.users)]
    per = args.tls_registrations // args.tls_concurrency
    counters = {"ok": 0, "failed": 0}

    async def run():
        seq = [0]
        await asyncio.gather(*(tls_worker(mode, port, ctx, users[w::args.tls_concurrency] or users, per, counters, seq)
                               for w in range(args.tls_concurrency)))

    cpu0, client0, t0 = cpu_seconds(server.pid), time.process_time(), time.monotonic()
    asyncio.run(run())
    wall, cpu, client = time.monotonic() - t0, cpu_seconds(server.pid) - cpu0, time.process_time() - client0
    ok = counters["ok"]
    return {f"{mode}: registrations/s": ok / wall if wall else 0.0,
            f"{mode}: server CPU per registration (us)": cpu / max(ok, 1) * 1e6,
            f"{mode}: client CPU per registration (us)": client / max(ok, 1) * 1e6,
            f"{mode}: failed": counters["failed"]}


def tls_bench(args, workdir):
    server = FlowPBX(Path(args.flowpbx), workdir, args.users, tls=True)
    rounds = []
    try:
        for r in range(args.rounds):
            res = {}
            for mode in ["udp", "tls", "tls-handshake"]:
                print(f"== round {r + 1}/{args.rounds}: FlowPBX {mode} registrations", flush=True)
                res.update(tls_round(server, mode, server.port if mode == "udp" else server.tls_port, args))
            rounds.append(res)
    finally:
        server.stop()
    out = median_of(rounds)
    print()
    print(f"FlowPBX, {args.users} users, {args.tls_registrations} registrations per mode and round, "
          f"{args.tls_concurrency} workers; medians of {args.rounds} rounds (failures summed); {os.cpu_count()} CPUs, "
          f"load average before: {LOAD_BEFORE}")
    for k, v in out.items():
        print(f"{k:52}{fmt(v):>14}")

if __name__ == "__main__":
    main()
