#!/usr/bin/env node
// End-to-end test of the browser phone against the real flowpbx binary, in Debian's Chromium
// with a fake microphone (its beeping tone): extension 201 signs in on the Browser phone page
// over SIP-over-WSS (the server's self-signed certificate), calls 202, a baresip phone that
// answers by itself and plays a 440 Hz tone. FlowPBX anchors the call: WebRTC (ICE-lite,
// DTLS-SRTP) toward the browser, plain RTP toward baresip. Audio must arrive both ways: the
// page's getStats counters (packets and bytes sent and received, and the energy of the audio
// received), and baresip's recording of what it decoded (not silent). Then baresip calls 201: the
// browser rings, answers, and the same checks hold (FlowPBX offering WebRTC). Screenshots:
// tests/artifacts/web/phone-in-call.png, phone-incoming-call.png.
//
//   node e2e/phone.mjs             start target/debug/flowpbx (or $FLOWPBX_BIN) and run it
//   node e2e/phone.mjs --calls N   then N more browser → baresip calls, printing the set-up
//                                  times (tests/bench/webrtc_setup.sh; not a test: no goal)
//
// Prints "N passed, N failed" and exits non-zero on a failure.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { artifacts, CHROMIUM, cleanups, expect, FLAGS, freePort, runCleanups, shot, sipPorts, startBinary, suite } from './lib.mjs';

const ADMIN = { username: 'admin', password: 'e2e-password-123' };
const EXT = [
  { extension: '201', name: 'Browser', sip_password: 'Browser-pw-201' },
  { extension: '202', name: 'Baresip', sip_password: 'Baresip-pw-202' },
  { extension: '203', name: 'Baresip Opus', sip_password: 'Baresip-pw-203' },
];
const PCMU_PHONE = { user: '202', password: EXT[1].sip_password, modules: ['g711'], codecs: 'PCMU/8000/1', rate: 8000, channels: 1 };
const OPUS_PHONE = { user: '203', password: EXT[2].sip_password, modules: ['opus'], codecs: 'opus/48000/2', rate: 48000, channels: 2 };

const tests = suite('phone-failure.png');
const step = (name, fn) => tests.step(name, fn);

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

/** A 16-bit PCM WAV (`samples` interleaved). */
function wav(rate, channels, samples) {
  const b = Buffer.alloc(44 + samples.length * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples.length * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2 * channels, 28);
  b.writeUInt16LE(2 * channels, 32);
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

/** baresip (Debian baresip-core) registered over UDP, answering by itself, playing a 440 Hz
 * tone, dumping what it decodes; driven through ctrl_tcp (netstring JSON events). */
async function startBaresip(sipPort, phone) {
  const dir = mkdtempSync(join(tmpdir(), 'flowpbx-e2e-baresip-'));
  const { rate, channels } = phone;
  const tone = Array.from({ length: rate * 30 * channels }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * Math.floor(i / channels)) / rate)));
  writeFileSync(join(dir, 'tone.wav'), wav(rate, channels, tone));
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
    ...[...phone.modules, 'aufile', 'account', 'menu', 'ctrl_tcp', 'sndfile'].map((m) => `module ${m}.so`),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(join(dir, 'accounts'), `<sip:${phone.user}@127.0.0.1:${sipPort}>;auth_pass=${phone.password};regint=300;answermode=auto;audio_codecs=${phone.codecs}\n`);
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
    /** The decoded-audio dumps (one per call), oldest first. */
    decodedDumps() {
      const f = readdirSync(dir)
        .filter((n) => n.startsWith('dump-') && n.endsWith('-dec.wav'))
        .sort();
      expect(f.length, `no decoded dump in ${dir}: ${readdirSync(dir)}\n${log.slice(-2000)}`);
      return f.map((n) => join(dir, n));
    },
    command(command, params = '') {
      const body = JSON.stringify({ command, params, token: command });
      sock.write(`${Buffer.byteLength(body)}:${body},`);
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
  const url = await startBinary({ sipTlsPort: true });
  const call = await adminApi(url);
  const ids = [];
  await step('two extensions are created and the WSS listener is up', async () => {
    for (const e of EXT) {
      const r = await call('POST', '/extensions', e);
      expect(r.status === 201, `extension ${e.extension}: ${r.status} ${JSON.stringify(r.body)}`);
      ids.push(r.body.data.id);
    }
    // the SIP stack's in-memory directory follows the store within its refresh interval
    await waitFor(async () => /^3 extensions/.test((await call('GET', '/health')).body.data?.components?.sip?.detail ?? ''), 'the SIP directory has both');
    const tls = await call('GET', '/system/tls');
    expect(tls.body.data.listeners['sip-wss']?.address, `no sip-wss listener: ${JSON.stringify(tls.body.data.listeners)}`);
  });

  const baresip = await startBaresip(sipPorts.get(url), PCMU_PHONE);
  const opusPhone = await startBaresip(sipPorts.get(url), OPUS_PHONE);
  await step('baresip registers 202 (PCMU) and 203 (Opus) over UDP', async () => {
    for (const i of [1, 2]) await waitFor(async () => (await call('GET', `/extensions/${ids[i]}/registrations`)).body.data?.length === 1, `${EXT[i].extension} registered`);
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
  tests.page = page;
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
    expect(regs.length === 1 && regs[0].transport === 'wss' && regs[0].media_encryption === 'dtls-srtp', `201's registration: ${JSON.stringify(regs)}`);
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
    await checkStats();
    await shot(page, 'phone-in-call');
  });

  await step("an attacker spraying the WebRTC leg's port (garbage, plain RTP, STUN, DTLS) changes nothing", async () => {
    const peer = await page.getByTestId('media-peer').textContent();
    const port = Number(peer?.split(':').pop());
    expect(port > 0, `no media address on the page: ${peer}`);
    const num = async (id) => Number((await page.getByTestId(id).textContent()) ?? '0');
    const before = await num('packets-received');
    const { createSocket } = await import('node:dgram');
    const sock = createSocket('udp4');
    await new Promise((r) => sock.bind(0, '127.0.0.1', r));
    const send = (b) => new Promise((r) => sock.send(b, port, '127.0.0.1', () => r()));
    // the leg's socket listens on every address: the attacker uses loopback
    for (let i = 0; i < 50; i++) {
      await send(Buffer.from(Array.from({ length: 20 + i * 7 }, (_, j) => (i * 31 + j * 17) & 0xff)));
      const rtp = Buffer.alloc(12 + 160, 0x7f);
      rtp.writeUInt8(0x80, 0);
      rtp.writeUInt8(0, 1);
      rtp.writeUInt16BE(i, 2);
      rtp.writeUInt32BE(i * 160, 4);
      rtp.writeUInt32BE(0xbadc0de, 8);
      await send(rtp);
    }
    for (let i = 0; i < 20; i++) {
      // a STUN binding request with a username nobody gave it
      const user = Buffer.from('evil:evil');
      const stun = Buffer.alloc(20 + 4 + 12);
      stun.writeUInt16BE(0x0001, 0);
      stun.writeUInt16BE(16, 2);
      stun.writeUInt32BE(0x2112a442, 4);
      stun.writeUInt32BE(i, 8);
      stun.writeUInt16BE(0x0006, 20);
      stun.writeUInt16BE(user.length, 22);
      user.copy(stun, 24);
      await send(stun);
      await send(Buffer.from([0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, i, 0, 1, 1]));
    }
    sock.close();
    await new Promise((r) => setTimeout(r, 2500));
    const after = await num('packets-received');
    expect(after - before >= 50, `the browser's audio stalled after the spray: ${before} -> ${after}`);
    await page.getByRole('status', { name: 'Call' }).getByText('In call with 202').waitFor();
    const h = await call('GET', '/health');
    expect(h.body.data?.components?.media?.status === 'ok', `media health: ${JSON.stringify(h.body.data?.components?.media)}`);
    console.log(`     sprayed 160 datagrams at ${peer.replace(/^.*:/, '127.0.0.1:')}: the call went on (${before} -> ${after} packets received)`);
  });

  await step('the browser hangs up; baresip heard the browser (its recording is not silent)', async () => {
    await page.getByRole('button', { name: 'Hang up' }).click();
    await baresip.waitEvent('CALL_CLOSED');
    await page.getByRole('status', { name: 'Call' }).getByText('Call ended').waitFor();
    await new Promise((r) => setTimeout(r, 500));
    checkHeard(baresip.decodedDumps().at(-1));
    // the CDR says which leg was encrypted: the browser's (DTLS-SRTP), not baresip's
    const cdr = await waitFor(async () => (await call('GET', '/cdrs?limit=5')).body.data?.find((c) => c.caller_srtp), 'a CDR with the encryption of its legs');
    expect(cdr.caller_srtp === 'DTLS-SRTP' && !cdr.callee_srtp, `CDR encryption: caller ${cdr.caller_srtp}, callee ${cdr.callee_srtp}`);
  });

  await step('baresip calls 201: the browser rings, answers, and audio flows both ways', async () => {
    const dumps = baresip.decodedDumps().length;
    baresip.command('dial', `sip:201@127.0.0.1:${sipPorts.get(url)}`);
    await page.getByRole('status', { name: 'Call' }).getByText('Incoming call from 202').waitFor();
    await page.getByRole('button', { name: 'Answer' }).click();
    await baresip.waitEvent('CALL_ESTABLISHED');
    await page.getByRole('status', { name: 'Call' }).getByText('In call with 202').waitFor();
    await checkStats();
    await shot(page, 'phone-incoming-call');
    await page.getByRole('button', { name: 'Hang up' }).click();
    await baresip.waitEvent('CALL_CLOSED');
    await new Promise((r) => setTimeout(r, 500));
    const all = baresip.decodedDumps();
    expect(all.length > dumps, 'no new dump for the second call');
    checkHeard(all.at(-1));
  });

  await step('201 calls 203 (Opus): Opus from the browser through DTLS-SRTP, heard both ways', async () => {
    await page.getByLabel('Number').fill('203');
    await page.getByRole('button', { name: 'Call' }).click();
    await opusPhone.waitEvent('CALL_ESTABLISHED');
    await page.getByRole('status', { name: 'Call' }).getByText('In call with 203').waitFor();
    await checkStats();
    const codec = await page.getByTestId('codec').textContent();
    expect(/opus/i.test(codec ?? ''), `the browser sends ${codec}, not Opus`);
    await page.getByRole('button', { name: 'Hang up' }).click();
    await opusPhone.waitEvent('CALL_CLOSED');
    await new Promise((r) => setTimeout(r, 500));
    checkHeard(opusPhone.decodedDumps().at(-1), 48000);
  });

  const calls = Number(process.argv[process.argv.indexOf('--calls') + 1] ?? 0);
  if (process.argv.includes('--calls') && calls > 0) {
    const answered = [];
    const media = [];
    await step(`${calls} calls from the browser, timed`, async () => {
      for (let i = 0; i < calls; i++) {
        await page.getByLabel('Number').fill('202');
        await page.getByRole('button', { name: 'Call' }).click();
        await baresip.waitEvent('CALL_ESTABLISHED');
        const ms = async (id) => {
          const t = await waitFor(async () => {
            const v = (await page.getByTestId(id).count()) ? await page.getByTestId(id).textContent() : null;
            return v && /^\d+/.test(v) ? v : null;
          }, id);
          return Number.parseInt(t, 10);
        };
        answered.push(await ms('answered-ms'));
        media.push(await ms('media-ms'));
        await page.getByRole('button', { name: 'Hang up' }).click();
        await baresip.waitEvent('CALL_CLOSED');
        await page.getByRole('status', { name: 'Call' }).getByText('Call ended').waitFor();
      }
    });
    const fig = (xs) => {
      const v = [...xs].sort((a, b) => a - b);
      return `min ${v[0]} ms, median ${v[Math.floor(v.length / 2)]} ms, p90 ${v[Math.min(v.length - 1, Math.floor(v.length * 0.9))]} ms, max ${v.at(-1)} ms`;
    };
    console.log(`WebRTC call set-up over ${calls} calls (browser → FlowPBX → baresip, loopback, debug build unless FLOWPBX_BIN says otherwise):`);
    console.log(`  dial to 200 OK/ACK (SIP over WSS, DTLS answer made):  ${fig(answered)}`);
    console.log(`  dial to DTLS-SRTP connected (ICE-lite + handshake):   ${fig(media)}`);
  }

  async function checkStats() {
    const num = async (id) => Number((await page.getByTestId(id).textContent()) ?? '0');
    // the counters of this call (the page starts them again per call)
    await waitFor(async () => (await page.getByTestId('packets-received').count()) > 0 && (await num('packets-received')) > 100 && (await num('packets-sent')) > 100, 'RTP both ways', 20_000);
    const c = { sent: await num('packets-sent'), bytesSent: await num('bytes-sent'), received: await num('packets-received'), bytesReceived: await num('bytes-received') };
    // PCMU is 160 bytes a packet; Opus of a beep far less
    expect(c.bytesSent > 100 * 20 && c.bytesReceived > 100 * 20, `bytes: ${JSON.stringify(c)}`);
    const energy = Number((await page.getByTestId('energy-received').textContent()) ?? '0');
    expect(energy > 0.01, `the browser hears silence (total audio energy ${energy})`);
    console.log(`     getStats: ${JSON.stringify(c)}, audio energy received ${energy}`);
  }
}

/** baresip's recording of a call is the browser's fake microphone: beeps, not silence. */
function checkHeard(path, rate = 8000) {
  const heard = readWav(path);
  expect(heard.length > rate * 2, `baresip decoded only ${heard.length} samples`);
  const w = rate / 10;
  const loud = Math.max(...Array.from({ length: Math.floor(heard.length / w) }, (_, i) => rms(heard.slice(i * w, (i + 1) * w))));
  expect(loud > 300, `baresip heard silence (loudest 100 ms RMS ${loud.toFixed(1)})`);
  console.log(`     baresip decoded ${(heard.length / rate).toFixed(1)} s, loudest 100 ms RMS ${loud.toFixed(0)}`);
}

try {
  await main();
} catch {
  /* reported by step() */
} finally {
  await runCleanups();
  console.log(`${tests.passed} passed, ${tests.failed} failed`);
  process.exit(tests.failed || tests.passed === 0 ? 1 : 0);
}
