// The Recordings page through the real binary and Debian's Chromium: extension 102 records
// every call (`always`); SIPp registers 102 (media_uas.xml) and 101 calls it playing
// sip-tester's A-law speech (media_uac_pcap.xml); the page then lists the recording with its
// call and file, and its <audio> element plays it in the browser (the server's byte ranges
// let it load and seek): it reaches "can play", has a length, and advances when played.
//
//   FLOWPBX_BIN=target/debug/flowpbx node web/e2e/recordings.mjs
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifacts, browser, cleanups, expect, freePort, repo, runCleanups, shot, sipPorts, startBinary, suite } from './lib.mjs';

const ADMIN = { username: 'admin', password: 'e2e-password-123' };
const tests = suite(null);
const step = (name, fn) => tests.step(name, fn);

/** Runs SIPp with `args` in a temporary dir; resolves with its exit code and error log. */
function sipp(args) {
  const dir = mkdtempSync(join(tmpdir(), 'flowpbx-sipp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn('sipp', [...args, '-nostdin', '-timeout', '30s', '-timeout_error', '-trace_err'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  cleanups.push(() => child.kill('SIGKILL'));
  return {
    dir,
    // SIPp prints why it stopped before its statistics screen
    done: new Promise((res) => child.on('exit', (code) => res({ code, out: out.length > 3000 ? `${out.slice(0, 1500)}\n…\n${out.slice(-1500)}` : out }))),
  };
}

const scenario = (name) => join(repo, 'tests/sip', name);

async function api(url, session, method, path, body) {
  const r = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: { 'content-type': 'application/json', cookie: session.cookie, 'x-csrf-token': session.csrf },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** Free ports, none handed out twice in this run (the kernel may repeat one), each with
 * its next three free too (SIPp's media port uses the following ones for RTCP). */
const taken = new Set();
async function port() {
  for (;;) {
    const p = await freePort();
    if (p < 65000 && ![p, p + 1, p + 2, p + 3].some((x) => taken.has(x))) {
      [p, p + 1, p + 2, p + 3].forEach((x) => taken.add(x));
      return p;
    }
  }
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  const url = await startBinary();
  const sipPort = sipPorts.get(url);
  let session;
  let recording;

  await step('an always-recording extension gets a recorded call from SIPp', async () => {
    let r = await fetch(`${url}/api/v1/setup`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
    expect(r.status === 201, `setup: ${r.status}`);
    r = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
    const login = await r.json();
    session = { cookie: (r.headers.get('set-cookie') ?? '').split(';')[0], csrf: login.data.csrf_token };
    for (const ext of [
      { extension: '101', name: 'Caller', sip_password: 'Secret-101-pw' },
      { extension: '102', name: 'Recorded', sip_password: 'Secret-102-pw', recording_mode: 'always' },
    ]) {
      const c = await api(url, session, 'POST', '/extensions', ext);
      expect(c.status === 201, `extension ${ext.extension}: ${JSON.stringify(c.body)}`);
    }
    // the SIP stack's directory follows the store within its refresh interval
    for (const end = Date.now() + 15_000; ; ) {
      const h = await api(url, session, 'GET', '/health');
      if ((h.body?.data?.components?.sip?.detail ?? '').startsWith('2 extensions')) break;
      expect(Date.now() < end, `the SIP directory did not load the extensions: ${JSON.stringify(h.body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const uasPort = await port();
    const media = await port();
    const uas = sipp(['-sf', scenario('media_uas.xml'), '-i', '127.0.0.1', '-p', String(uasPort), '-m', '1', '-key', 'rtp_port', String(media), '-key', 'pt', '8', '-key', 'codec', 'PCMA/8000', '-key', 'te_pt', '101']);
    const csvDir = mkdtempSync(join(tmpdir(), 'flowpbx-csv-'));
    cleanups.push(() => rmSync(csvDir, { recursive: true, force: true }));
    writeFileSync(join(csvDir, 'users.csv'), 'SEQUENTIAL\n102;Secret-102-pw\n');
    const reg = sipp(['-sf', scenario('register.xml'), '-i', '127.0.0.1', '-p', String(await port()), '-inf', join(csvDir, 'users.csv'), '-au', '[field0]', '-ap', '[field1]', '-key', 'contact_port', String(uasPort), '-key', 'expires', '300', '-m', '1', `127.0.0.1:${sipPort}`]);
    const regDone = await reg.done;
    expect(regDone.code === 0, `register: ${regDone.out}`);
    const uac = sipp(['-sf', scenario('media_uac_pcap.xml'), '-i', '127.0.0.1', '-p', String(await port()), '-mp', String(await port()), '-s', '102', '-au', '101', '-ap', 'Secret-101-pw', '-key', 'caller', '101', '-m', '1', `127.0.0.1:${sipPort}`]);
    const [a, b] = await Promise.all([uac.done, uas.done]);
    expect(a.code === 0, `caller: ${a.out}`);
    expect(b.code === 0, `callee: ${b.out}`);
    const end = Date.now() + 15_000;
    for (;;) {
      const l = await api(url, session, 'GET', '/recordings');
      recording = l.body?.data?.[0];
      if (recording) break;
      expect(Date.now() < end, `no recording listed: ${JSON.stringify(l.body)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(recording.size_bytes > 8000, `a recording with audio: ${JSON.stringify(recording)}`);
  });

  const ctx = await browser();
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => console.log(`     page error: ${e.message}`));

  await step('the Recordings page shows the call, its file and a player that plays it', async () => {
    await page.goto(`${url}/login`);
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: /sign in/i }).click();
    await page.waitForURL((u) => !u.pathname.startsWith('/login'));
    await page.getByRole('link', { name: 'Recordings' }).click();
    const row = page.locator(`tr[data-recording="${recording.id}"]`);
    await row.waitFor();
    const text = await row.innerText();
    expect(text.includes('101') && text.includes('102'), `the call's parties beside it: ${text}`);
    expect(text.includes(recording.file_path), `the file path beside it: ${text}`);
    expect(text.includes(`CDR #${recording.cdr_id}`), `the CDR beside it: ${text}`);
    const audio = row.getByLabel(`Play recording ${recording.id}`);
    // load it and wait until the browser can play it
    const meta = await audio.evaluate(
      (el) =>
        new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error(`not playable: readyState ${el.readyState}, error ${el.error?.code}`)), 8000);
          el.addEventListener('error', () => rej(new Error(`media error ${el.error?.code}`)));
          el.addEventListener('canplay', () => {
            clearTimeout(t);
            res({ duration: el.duration });
          });
          el.preload = 'auto';
          el.load();
        }),
    );
    expect(meta.duration > 1, `the player knows its length: ${JSON.stringify(meta)}`);
    const played = await audio.evaluate(async (el) => {
      el.muted = true;
      await el.play();
      await new Promise((r) => setTimeout(r, 700));
      el.pause();
      return el.currentTime;
    });
    expect(played > 0.2, `it played: currentTime ${played}`);
    await shot(page, 'recordings');
  });
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  if (tests.failed === 0) {
    tests.failed++;
    console.log(`FAIL setup: ${e?.message ?? e}`);
  }
} finally {
  await runCleanups();
}
console.log(`${tests.passed} passed, ${tests.failed} failed`);
process.exit(code || (tests.failed ? 1 : 0));
