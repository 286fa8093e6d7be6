#!/usr/bin/env node
// End-to-end test of the browser phone against the real flowpbx binary, in Debian's Chromium
// with a fake microphone (its beeping tone): extension 201 signs in on the Browser phone page
// over SIP-over-WSS (the server's self-signed certificate), calls 202, a baresip phone that
// answers by itself and plays a 440 Hz tone. FlowPBX anchors the call: WebRTC (ICE-lite,
// DTLS-SRTP) toward the browser, plain RTP toward baresip. Audio must arrive both ways: the
// page's getStats counters (packets and bytes sent and received, and the energy of the audio
// received), and baresip's recording of what it decoded (not silent). Screenshot:
// tests/artifacts/web/phone-in-call.png.
//
//   node e2e/phone.mjs     start target/debug/flowpbx (or $FLOWPBX_BIN) and run it
//
// Prints "N passed, N failed" and exits non-zero on a failure.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, CHROMIUM, cleanups, FLAGS, freePort, runCleanups, shot, startBinary } from './lib.mjs';

const ADMIN = { username: 'admin', password: 'e2e-password-123' };
const EXT = [
  { extension: '201', name: 'Browser', sip_password: 'Browser-pw-201' },
  { extension: '202', name: 'Baresip', sip_password: 'Baresip-pw-202' },
];

let passed = 0;
let failed = 0;
let current = null;

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e?.message ?? e}`);
    if (current) await current.screenshot({ path: join(artifacts, 'phone-failure.png') }).catch(() => undefined);
    throw e;
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

/** The admin API over fetch: setup, login (session cookie and CSRF token), JSON calls. */
async function adminApi(url) {
  const s = await (await fetch(`${url}/api/v1/setup`)).json();
  if (s.data?.required) {
    const r = await fetch(`${url}/api/v1/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
    expect(r.status === 201, `setup: ${r.status} ${await r.text()}`);
  }
  const login = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
  expect(login.ok, `login: ${login.status}`);
  const cookie = (login.headers.getSetCookie?.() ?? []).map((c) => c.split(';')[0]).join('; ');
  const csrf = (await login.json()).data?.csrf_token;
  return async (method, path, body) => {
    const r = await fetch(`${url}/api/v1${path}`, {
      method,
      headers: { 'content-type': 'application/json', cookie, ...(csrf ? { 'x-csrf-token': csrf } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

/** A 16-bit mono PCM WAV. */
function wav(rate, samples) {
  const b = Buffer.alloc(44 + samples.length * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples.length * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(samples.length * 2, 40);
  samples.forEach((s, i) => b.writeInt16LE(s, 44 + i * 2));
  return b;
}

/** The samples of a 16-bit PCM WAV (the first channel). */
function readWav(path) {
  const b = readFileSync(path);
  let at = 12;
  let channels = 1;
  while (at + 8 <= b.length) {
    const id = b.toString('ascii', at, at + 4);
    const len = b.readUInt32LE(at + 4);
    if (id === 'fmt ') channels = b.readUInt16LE(at + 10);
    if (id === 'data') {
      const out = [];
      for (let i = at + 8; i + 1 < Math.min(b.length, at + 8 + len); i += 2 * channels) out.push(b.readInt16LE(i));
      return out;
    }
    at += 8 + len + (len % 2);
  }
  return [];
}

const rms = (xs) => Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / Math.max(1, xs.length));

/** baresip (Debian baresip-core) registered as 202 over UDP, answering by itself, playing a
 * tone, dumping what it decodes; driven through ctrl_tcp (netstring JSON events). */
async function startBaresip(sipPort) {
  const dir = mkdtempSync(join(tmpdir(), 'flowpbx-e2e-baresip-'));
  const tone = Array.from({ length: 8000 * 30 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000)));
  writeFileSync(join(dir, 'tone.wav'), wav(8000, tone));
  const [listen, ctrl] = [await freePort(), await freePort()];
  const rtp = 32000 + (listen % 100) * 20;
  const config = [
    'poll_method epoll',
    `sip_listen 127.0.0.1:${listen}`,
    'net_interface 127.0.0.1',
    'sip_trans_def udp',
    'module_path /usr/lib/baresip/modules',
    `ctrl_tcp_listen 127.0.0.1:${ctrl}`,
    `audio_source aufile,${join(dir, 'tone.wav')}`,
    `audio_player aufile,${join(dir, 'out.wav')}`,
    `audio_alert aufile,${join(dir, 'alert.wav')}`,
    `rtp_ports ${rtp}-${rtp + 19}`,
    `snd_path ${dir}`,
    ...['g711', 'aufile', 'account', 'menu', 'ctrl_tcp', 'sndfile'].map((m) => `module ${m}.so`),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(join(dir, 'accounts'), `<sip:202@127.0.0.1:${sipPort}>;auth_pass=${EXT[1].sip_password};regint=300;answermode=auto;audio_codecs=PCMU/8000/1\n`);
  const child = spawn('baresip', ['-f', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  cleanups.push(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const events = [];
  let buf = '';
  const sock = await new Promise((res, rej) => {
    const t0 = Date.now();
    const tryConnect = () => {
      const s = createConnection({ host: '127.0.0.1', port: ctrl }, () => res(s));
      s.once('error', () => (Date.now() - t0 > 10_000 ? rej(new Error(`baresip ctrl_tcp never listened\n${log}`)) : setTimeout(tryConnect, 100)));
    };
    tryConnect();
  });
  sock.on('data', (d) => {
    buf += d.toString('utf8');
    for (;;) {
      const colon = buf.indexOf(':');
      if (colon < 0) break;
      const len = Number(buf.slice(0, colon));
      if (buf.length < colon + 1 + len + 1) break;
      const msg = JSON.parse(buf.slice(colon + 1, colon + 1 + len));
      buf = buf.slice(colon + 1 + len + 1);
      if (msg.event) events.push(msg);
    }
  });
  cleanups.push(() => sock.destroy());
  return {
    dir,
    log: () => log,
    async waitEvent(type, ms = 15_000) {
      const end = Date.now() + ms;
      for (;;) {
        const i = events.findIndex((e) => e.type === type);
        if (i >= 0) return events.splice(i, 1)[0];
        if (Date.now() > end) throw new Error(`baresip: no ${type} event; got ${JSON.stringify(events)}\n${log.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    decodedDump() {
      const f = readdirSync(dir).find((n) => n.startsWith('dump-') && n.endsWith('-dec.wav'));
      expect(f, `no decoded dump in ${dir}: ${readdirSync(dir)}\n${log.slice(-2000)}`);
      return join(dir, f);
    },
  };
}

async function waitFor(fn, what, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  const url = await startBinary();
  const call = await adminApi(url);
  const ids = [];
  await step('two extensions are created and the WSS listener is up', async () => {
    for (const e of EXT) {
      const r = await call('POST', '/extensions', e);
      expect(r.status === 201, `extension ${e.extension}: ${r.status} ${JSON.stringify(r.body)}`);
      ids.push(r.body.data.id);
    }
    // the SIP stack's in-memory directory follows the store within its refresh interval
    await waitFor(async () => /^2 extensions/.test((await call('GET', '/health')).body.data?.components?.sip?.detail ?? ''), 'the SIP directory has both');
    const tls = await call('GET', '/system/tls');
    expect(tls.body.data.listeners['sip-wss']?.address, `no sip-wss listener: ${JSON.stringify(tls.body.data.listeners)}`);
  });

  const { sipPorts } = await import('./lib.mjs');
  const baresip = await startBaresip(sipPorts.get(url));
  await step('baresip registers 202 over UDP', async () => {
    await waitFor(async () => (await call('GET', `/extensions/${ids[1]}/registrations`)).body.data?.length === 1, '202 registered');
  });

  const profile = mkdtempSync(join(tmpdir(), 'flowpbx-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--ignore-certificate-errors', '--autoplay-policy=no-user-gesture-required'],
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
    permissions: ['microphone'],
  });
  cleanups.push(async () => {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  current = page;
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => console.log(`     page error: ${e.message}`));
  if (process.env.PHONE_DEBUG) {
    page.on('console', (m) => console.log(`     console: ${m.text().slice(0, 400)}`));
    await page.addInitScript(() => localStorage.setItem('debug', 'JsSIP:*'));
  }

  let t0 = 0;
  await step('the admin signs in and the browser phone registers 201 over WSS', async () => {
    await page.goto(`${url}/login`);
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Browser phone' }).click();
    const server = page.getByLabel('Server');
    await waitFor(async () => (await server.inputValue()).startsWith('wss://'), 'the WSS address is filled in');
    await page.getByLabel('Extension').fill('201');
    await page.getByLabel('SIP password').fill(EXT[0].sip_password);
    await page.getByRole('form', { name: 'Sign in' }).getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('status', { name: 'Registration' }).getByText('Registered as 201').waitFor();
    const regs = await waitFor(async () => {
      const r = (await call('GET', `/extensions/${ids[0]}/registrations`)).body.data;
      return r?.length ? r : null;
    }, "201's registration is stored");
    expect(regs.length === 1 && regs[0].transport === 'wss', `201's registration: ${JSON.stringify(regs)}`);
  });

  await step('201 calls 202 from the browser; baresip answers', async () => {
    await page.getByLabel('Number').fill('202');
    t0 = Date.now();
    await page.getByRole('button', { name: 'Call' }).click();
    await baresip.waitEvent('CALL_ESTABLISHED');
    await page.getByRole('status', { name: 'Call' }).getByText('In call with 202').waitFor();
    console.log(`     call set up (click to in-call): ${Date.now() - t0} ms`);
  });

  await step("audio arrives both ways: the page's getStats counters", async () => {
    const num = async (id) => Number((await page.getByTestId(id).textContent()) ?? '0');
    await waitFor(async () => (await page.getByTestId('packets-received').count()) > 0 && (await num('packets-received')) > 100 && (await num('packets-sent')) > 100, 'RTP both ways', 20_000);
    const c = { sent: await num('packets-sent'), bytesSent: await num('bytes-sent'), received: await num('packets-received'), bytesReceived: await num('bytes-received') };
    expect(c.bytesSent > 100 * 80 && c.bytesReceived > 100 * 80, `bytes: ${JSON.stringify(c)}`);
    const energy = Number((await page.getByTestId('energy-received').textContent()) ?? '0');
    expect(energy > 0.01, `the browser hears silence (total audio energy ${energy})`);
    console.log(`     getStats: ${JSON.stringify(c)}, audio energy received ${energy}`);
    await shot(page, 'phone-in-call');
  });

  await step('the browser hangs up; baresip heard the browser (its recording is not silent)', async () => {
    await page.getByRole('button', { name: 'Hang up' }).click();
    await baresip.waitEvent('CALL_CLOSED');
    await page.getByRole('status', { name: 'Call' }).getByText('Call ended').waitFor();
    await new Promise((r) => setTimeout(r, 500));
    const heard = readWav(baresip.decodedDump());
    expect(heard.length > 8000 * 2, `baresip decoded only ${heard.length} samples`);
    // Chromium's fake microphone beeps: loud somewhere, not silence throughout
    const loud = Math.max(...Array.from({ length: Math.floor(heard.length / 800) }, (_, i) => rms(heard.slice(i * 800, (i + 1) * 800))));
    expect(loud > 300, `baresip heard silence (loudest 100 ms RMS ${loud.toFixed(1)})`);
    console.log(`     baresip decoded ${(heard.length / 8000).toFixed(1)} s, loudest 100 ms RMS ${loud.toFixed(0)}`);
    const cdrs = await call('GET', '/cdrs?limit=5');
    expect(cdrs.body.data?.length >= 1, 'no CDR');
  });
}

try {
  await main();
} catch {
  /* reported by step() */
} finally {
  await runCleanups();
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed || passed === 0 ? 1 : 0);
}
