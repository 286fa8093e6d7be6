// Helpers shared by the end-to-end test (run.mjs) and the editor benchmark (bench.mjs): the
// real binary on a fresh data dir and free ports, web/dist served alone, Debian's Chromium.
import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const artifacts = join(repo, 'tests/artifacts/web');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Things to undo at exit, last first. */
export const cleanups = [];

export async function runCleanups() {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanups.length = 0;
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Waits until the binary answers health with 200 and its flow engine (which starts in the
 * background, compiling the node components on a first start) is no longer starting. */
export async function waitHealthy(url, ms = 60_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(`${url}/api/v1/health`);
      if (r.ok && (await r.json()).data?.components?.flows?.status !== 'starting') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end) throw new Error(`${url}/api/v1/health did not answer within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startBinary({ sipTlsPort = false, env = {} } = {}) {
  const bin = process.env.FLOWPBX_BIN ?? join(repo, 'target/debug/flowpbx');
  if (!existsSync(bin)) throw new Error(`${bin} not found: build it (cargo build --bin flowpbx) or set FLOWPBX_BIN`);
  const data = mkdtempSync(join(tmpdir(), 'flowpbx-e2e-'));
  const http = await freePort();
  let sip = await freePort();
  while (sip === http) sip = await freePort(); // the kernel may hand the same free port out twice
  let wss = await freePort();
  while (wss === http || wss === sip) wss = await freePort();
  // a free SIP TLS port only when asked: set by the environment, the Settings page shows it
  // read-only (run.mjs edits it there)
  let tls = await freePort();
  while (tls === http || tls === sip || tls === wss) tls = await freePort();
  const child = spawn(bin, [], {
    env: {
      ...process.env,
      FLOWPBX_DATA_DIR: data,
      FLOWPBX_HTTP_PORT: String(http),
      FLOWPBX_SIP_UDP_PORT: String(sip),
      FLOWPBX_SIP_TCP_PORT: String(sip),
      FLOWPBX_SIP_WSS_PORT: String(wss),
      ...(sipTlsPort ? { FLOWPBX_SIP_TLS_PORT: String(tls) } : {}),
      FLOWPBX_RTP_PORT_MIN: '31000',
      FLOWPBX_RTP_PORT_MAX: '31100',
      FLOWPBX_LOG_LEVEL: process.env.FLOWPBX_LOG_LEVEL ?? 'warn',
      // the SIP message viewer of Call history keeps messages only while the SIP log is on
      FLOWPBX_SIP_LOG: 'headers',
      // what a suite adds (run.mjs: a documentation network push targets may name)
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  cleanups.push(() => {
    child.kill('SIGTERM');
    rmSync(data, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${http}`;
  await waitHealthy(url);
  sipPorts.set(url, sip);
  return url;
}

/** The SIP port (UDP and TCP) of each binary startBinary started, by its URL. */
export const sipPorts = new Map();

/**
 * Places one real call with SIPp (Debian's sip-tester) from `from` (a loopback address an IP
 * trunk trusts) to `number` at the PBX: tests/sip/trunk_call.xml (INVITE, 200, ACK, a pause,
 * BYE). Resolves with SIPp's exit code and output.
 */
export async function sippCall({ from, sipPort, number, pauseMs = 1500 }) {
  const local = await freePort();
  return new Promise((res, rej) => {
    const dir = mkdtempSync(join(tmpdir(), 'flowpbx-sipp-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const child = spawn(
      'sipp',
      ['-sf', join(repo, 'tests/sip/trunk_call.xml'), '-i', from, '-p', String(local), '-s', number, '-m', '1', '-d', String(pauseMs), '-nostdin', '-timeout', '30s', '-timeout_error', '-trace_err', `127.0.0.1:${sipPort}`],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => rej(new Error(`sipp (Debian package sip-tester): ${e.message}`)));
    child.on('exit', (code) => {
      // SIPp's own error log says why a call failed (the unexpected message, the timeout)
      const errs = readdirSync(dir)
        .filter((f) => f.endsWith('_errors.log'))
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .join('');
      res({ code, out: (errs || out).slice(-3000) });
    });
  });
}

/**
 * Serves web/dist with the SPA fallback. With `api` (a binary's URL) /api and /ws requests go
 * to it, which puts the current SPA in front of a binary that does not embed it yet; without,
 * /api answers 503 (--smoke).
 */
export async function serveDist(api) {
  const dist = join(repo, 'web/dist');
  if (!existsSync(join(dist, 'index.html'))) throw new Error('web/dist is missing: npm run build');
  const types = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html', '.svg': 'image/svg+xml' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (api && (path.startsWith('/api/') || path === '/ws')) {
      const target = new URL(req.url, api);
      const up = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      req.pipe(up);
      return;
    }
    if (path.startsWith('/api/')) {
      res.writeHead(503, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'unavailable', message: 'no server in smoke mode', details: [] } }));
      return;
    }
    let file = join(dist, path);
    if (!file.startsWith(dist) || !existsSync(file) || statSync(file).isDirectory()) file = join(dist, 'index.html');
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  cleanups.push(() => server.close());
  return `http://127.0.0.1:${port}`;
}

export async function browser(viewport = { width: 1280, height: 800 }) {
  const profile = mkdtempSync(join(tmpdir(), 'flowpbx-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
  });
  cleanups.push(async () => {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  });
  return ctx;
}

export const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`) });


/**
 * A tiny SIP peer on 127.0.0.1 for the trunk tests: a UDP socket that answers OPTIONS and
 * REGISTER with 200 and nothing else. Strict: a datagram must be a request whose request line
 * is `METHOD sip:… SIP/2.0` with Via, From, To, Call-ID and a CSeq naming the same method;
 * anything else (INVITE, responses, garbage) gets no answer. The answer copies every Via (in
 * order), From, To (with a tag added), Call-ID and CSeq; a REGISTER's answer grants its
 * Contact the Expires asked for. Every request is kept in `requests` ({method, uri, from,
 * callId, source}); `answered` counts the answers sent.
 */
export async function startSipResponder(host = '127.0.0.1') {
  const { createSocket } = await import('node:dgram');
  const sock = createSocket('udp4');
  const peer = { port: 0, requests: [], answered: 0, refused: 0 };
  const compact = { v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact' };
  sock.on('message', (buf, rinfo) => {
    const text = buf.toString('utf8');
    const head = text.split(/\r\n\r\n/)[0];
    const lines = head.split(/\r\n/);
    const m = /^([A-Z]+) (sips?:[^ ]+) SIP\/2\.0$/.exec(lines[0] ?? '');
    if (!m) {
      peer.refused++;
      return;
    }
    const [, method, uri] = m;
    const headers = [];
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i <= 0) continue;
      const name = l.slice(0, i).trim().toLowerCase();
      headers.push([compact[name] ?? name, l.slice(i + 1).trim()]);
    }
    const all = (n) => headers.filter(([k]) => k === n).map(([, v]) => v);
    const one = (n) => all(n)[0];
    const [via, from, to, callId, cseq] = [all('via'), one('from'), one('to'), one('call-id'), one('cseq')];
    const cseqOk = cseq && new RegExp(`^\\d+\\s+${method}$`).test(cseq);
    if (!['OPTIONS', 'REGISTER'].includes(method) || via.length === 0 || !from || !to || !callId || !cseqOk) {
      peer.refused++;
      return;
    }
    peer.requests.push({ method, uri, from, callId, source: `${rinfo.address}:${rinfo.port}` });
    const out = ['SIP/2.0 200 OK', ...via.map((v) => `Via: ${v}`), `From: ${from}`, `To: ${/;\s*tag=/i.test(to) ? to : `${to};tag=e2e${peer.answered}`}`, `Call-ID: ${callId}`, `CSeq: ${cseq}`];
    if (method === 'REGISTER') {
      const expires = Number(one('expires') ?? 300) || 300;
      for (const c of all('contact')) out.push(`Contact: ${/;\s*expires=/i.test(c) ? c : `${c};expires=${expires}`}`);
      out.push(`Expires: ${expires}`);
    }
    out.push('Server: flowpbx-e2e-responder', 'Content-Length: 0', '', '');
    sock.send(out.join('\r\n'), rinfo.port, rinfo.address, () => undefined);
    peer.answered++;
  });
  await new Promise((res, rej) => {
    sock.once('error', rej);
    sock.bind(0, host, res);
  });
  peer.port = sock.address().port;
  cleanups.push(() => sock.close());
  return peer;
}

/** Throws `what` unless `cond`. */
export function expect(cond, what) {
  if (!cond) throw new Error(what);
}

/**
 * A suite's steps: each logs "ok NAME (ms)" or "FAIL NAME: reason" and is counted; a failing
 * step screenshots `suite.page` (when the suite set it) to `failureShot` under the artifacts
 * and rethrows.
 */
export function suite(failureShot) {
  const s = {
    passed: 0,
    failed: 0,
    page: null,
    async step(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        s.passed++;
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        s.failed++;
        console.log(`FAIL ${name}: ${e?.message ?? e}`);
        if (s.page && failureShot) await s.page.screenshot({ path: join(artifacts, failureShot) }).catch(() => undefined);
        throw e;
      }
    },
  };
  return s;
}
