#!/usr/bin/env node
// End-to-end test of the admin UI against the real flowpbx binary, in Debian's Chromium
// driven by playwright-core (no browser download). What issue 6's Tests section names:
// first-boot setup, login, a flow built by dragging number → time switch → IVR → ring group /
// voicemail with every entity created inline, edges connected (output ids saved, labels
// drawn), validation problems outlined and focused, published, a simulated test call whose
// highlighted path is the one the simulator returned, step by step, a diff and a rollback; then
// a real call (SIPp, Debian's sip-tester, from an IP trunk on 127.0.0.2) through the live flow
// and "Show path" on its CDR row, and its SIP messages from the same row. Then the outside world: a registration trunk to a strict
// UDP SIP responder this test runs on 127.0.0.1 (lib.mjs startSipResponder: OPTIONS and
// REGISTER only) turns registered on the Trunks page without a reload, its Test shows both
// answers with their round trips, the dashboard shows it registered; an outbound route with a
// bad pattern gets the server's error on that pattern, good ones save, and the order changes
// by the arrows and by dragging. Follow-me on a new extension: two numbers ringing together
// saved, seen after a reload, a ring time under 5 s refused on its row's field. Screenshots go
// to tests/artifacts/web/ (the editor, trunks-live-status, trunks-test-result,
// outbound-routes, outbound-routes-field-error, follow-me-form, follow-me-field-error,
// push-target). Push notifications on that extension: a loopback URL refused on its field, a
// Gotify target saved, its token never in the page nor in the API's answer.
//
//   node e2e/run.mjs                 start target/debug/flowpbx (or $FLOWPBX_BIN) on a fresh
//                                    data dir and free ports, then run the scenario
//   node e2e/run.mjs --url URL       run against a binary already listening at URL (fresh!);
//                                    add --sip-port N for the real call, else it is skipped
//   node e2e/run.mjs --dist          serve web/dist in front of the binary's API (try SPA
//                                    changes without rebuilding the binary); combines with --url
//   node e2e/run.mjs --smoke         no binary: serve web/dist and check the shell renders at
//                                    1280×800 and at tablet width
//
// Prints "N passed, N failed" and exits non-zero on a failure.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { artifacts, browser, expect, runCleanups, serveDist, shot, sipPorts, sippCall, startBinary, startSipResponder, suite } from './lib.mjs';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const tests = suite('failure.png');
const step = (name, fn) => tests.step(name, fn);

// ---------------------------------------------------------------------------------------------

async function smoke() {
  const url = await serveDist();
  const ctx = await browser();
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  await step('the shell loads and shows the sign-in page at 1280x800', async () => {
    const t0 = Date.now();
    await page.goto(`${url}/`);
    await page.getByRole('heading', { name: 'FlowPBX' }).waitFor();
    console.log(`     first load to sign-in form: ${Date.now() - t0} ms`);
    expect(await page.getByLabel('Username').isVisible(), 'username field');
    await shot(page, 'smoke-login-1280');
  });
  await step('the setup wizard renders at tablet width', async () => {
    await page.setViewportSize({ width: 820, height: 1180 });
    await page.goto(`${url}/setup`);
    await page.getByRole('heading', { name: 'Set up FlowPBX' }).waitFor();
    await page.getByLabel('Admin username').fill('admin');
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('At least 8 characters.').first().waitFor();
    await shot(page, 'smoke-setup-tablet');
  });
}

// ---------------------------------------------------------------------------------------------

const ADMIN = { username: 'admin', password: 'e2e-password-123' };

async function scenario(url, sipPort) {
  const ctx = await browser();
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  tests.page = page;
  page.on('pageerror', (e) => console.log(`     page error: ${e.message}`));
  page.setDefaultTimeout(10_000);

  await step('first boot sends the browser to the setup wizard', async () => {
    await page.goto(`${url}/`);
    await page.waitForURL('**/setup');
    await page.getByLabel('Admin username').fill(ADMIN.username);
    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByLabel('Password again').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Hostname').fill('pbx.e2e.test');
    await page.getByRole('button', { name: 'Next' }).click();
    // the SIP ports the server runs on (the e2e binary gets them from the environment), not 5060
    const udp = page.getByLabel('SIP UDP port');
    await udp.waitFor();
    expect(sipPort === undefined || (await udp.inputValue()) === String(sipPort), `the wizard shows UDP ${await udp.inputValue()}, the server runs on ${sipPort}`);
    expect(await udp.isDisabled(), 'a port the environment fixes is not edited in the wizard');
    await page.getByText('Set by FLOWPBX_SIP_UDP_PORT: change it there.').waitFor();
    await shot(page, 'setup-ports');
    await page.getByRole('button', { name: 'Next' }).click(); // SIP ports as they are
    await page.getByRole('button', { name: 'Next' }).click(); // no trunk
    await page.getByLabel('Extension number').fill('101');
    await page.getByLabel('Name', { exact: true }).fill('Alice');
    await page.getByRole('button', { name: 'Next' }).click();
    await shot(page, 'setup-review');
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  });

  await step('setup is refused once done, logout and login work', async () => {
    const r = await fetch(`${url}/api/v1/setup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ADMIN) });
    expect(r.status >= 400 && r.status < 500, `second setup answered ${r.status}`);
    await page.getByRole('button', { name: 'Log out' }).first().click();
    await page.waitForURL('**/login');
    await page.getByLabel('Username').fill(ADMIN.username);
    await page.getByLabel('Password').fill('wrong-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Wrong username or password.').waitFor();
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
  });

  await step('every entity page creates one, through the shared forms', async () => {
    const create = async (route, newLabel, fill) => {
      await page.goto(`${url}${route}`);
      await page.getByRole('button', { name: newLabel }).click();
      const d = page.getByRole('dialog');
      await fill(d);
      await d.getByRole('button', { name: /^Create / }).click();
      await d.waitFor({ state: 'detached' }).catch(async () => {
        throw new Error(`${route}: ${(await d.getByRole('alert').allTextContents()).join(' / ') || 'the form stayed open'}`);
      });
    };
    await create('/trunks', 'New trunk…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Carrier');
      // loopback, on the discard port: the trunk's REGISTERs go nowhere but this machine
      await d.getByLabel('Registrar host').fill('127.0.0.1');
      await d.getByLabel('Port', { exact: true }).fill('9');
      await d.getByLabel('Username', { exact: true }).fill('acct1');
      await d.getByLabel('Password', { exact: true }).fill('trunk-secret-1');
    });
    await create('/numbers', 'New number…', async (d) => {
      await d.getByLabel('Number', { exact: true }).fill('+61255550100');
      await d.getByLabel('Trunk').selectOption({ label: 'Carrier' });
    });
    await create('/voicemail', 'New voicemail box…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Reception VM');
      await d.getByLabel('PIN').fill('4321');
      await d.getByLabel('Email new messages').check();
      await d.getByLabel('Email address').fill('reception@example.test');
    });
    await create('/ring-groups', 'New ring group…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Everyone');
      await d.getByLabel('Strategy').selectOption('sequential');
      await d.getByLabel('Add member').selectOption({ label: '101 Alice' });
    });
    await create('/ivr-menus', 'New IVR menu…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Support menu');
      await d.getByLabel('Label for digit 1').fill('Hardware');
      await d.getByRole('button', { name: /^Add digit/ }).click();
      await d.getByLabel('Label for digit 2').fill('Software');
    });
    await create('/time-switches', 'New time switch…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Support hours');
      await d.getByLabel('Time zone').fill('Australia/Sydney');
      await d.getByRole('button', { name: 'Add date' }).click();
      await d.getByLabel('Date', { exact: true }).fill('2026-12-25');
    });
    await create('/conferences', 'New conference…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Standup');
      await d.getByLabel('Dial-in extension').fill('800');
    });
    await shot(page, 'conferences-page');
  });

  await step('an edit keeps the stored secret; a delete in use lists what uses it', async () => {
    await page.goto(`${url}/extensions`);
    await page.getByRole('button', { name: 'Edit 101 Alice' }).click();
    const d = page.getByRole('dialog');
    await d.getByLabel('Email', { exact: true }).fill('alice@example.test');
    await d.getByRole('button', { name: 'Save', exact: true }).click();
    await d.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Delete 101 Alice' }).click();
    // in use: the dialog says so before anything is confirmed, and offers no Delete
    const impact = page.getByRole('list', { name: 'Still used by' });
    await impact.waitFor();
    const text = await impact.textContent();
    expect(/Everyone/.test(text ?? ''), `impact list: ${text}`);
    expect((await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).count()) === 0, 'no Delete offered for an entity in use');
    await shot(page, 'delete-impact');
    await page.getByRole('dialog').getByRole('button', { name: 'Close', exact: true }).last().click();
  });

  let flowUrl = '';
  await step('a new flow opens in the editor', async () => {
    await page.getByRole('link', { name: 'Call flows' }).click();
    await page.getByRole('button', { name: 'New flow…' }).click();
    await page.getByLabel('Name').fill('Main inbound');
    await page.getByRole('button', { name: 'Create and open' }).click();
    await page.waitForURL(/\/flows\/\d+$/);
    flowUrl = page.url();
    await page.getByRole('navigation', { name: 'Node palette' }).getByRole('button').first().waitFor();
  });

  const canvas = page.getByTestId('canvas');
  const ids = {};

  /** Drags a node type from the palette to (x, y) of the canvas; returns the new node's id. */
  async function drop(type, x, y) {
    const before = await page.locator('.react-flow__node').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')));
    await page.locator(`[data-node-type="${type}"]`).dragTo(canvas, { targetPosition: { x, y } });
    await page.waitForFunction((n) => document.querySelectorAll('.react-flow__node').length > n, before.length);
    const after = await page.locator('.react-flow__node').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')));
    return after.find((id) => !before.includes(id));
  }

  /** The inline creation drawer of the node just dropped: opened by itself when none exists. */
  async function createInline(newLabel, fill) {
    const dialog = page.getByRole('dialog');
    if (!(await dialog.isVisible().catch(() => false))) {
      await page.getByRole('combobox').first().click();
      await page.getByRole('option', { name: newLabel }).click();
    }
    await dialog.waitFor();
    await fill(dialog);
    await dialog.getByRole('button', { name: /^Create / }).click();
    await dialog.waitFor({ state: 'detached' });
  }

  await step('number → time switch → IVR → ring group / voicemail, each entity created inline', async () => {
    ids.number = await drop('inbound_number', 10, 100);
    await createInline('New number…', async (d) => {
      await d.getByLabel('Number', { exact: true }).fill('+61299990000');
      await d.getByLabel('Name').fill('Main office');
    });
    ids.ts = await drop('time_switch', 240, 100);
    await createInline('New time switch…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Office hours');
      await d.getByLabel('Time zone').fill('UTC');
    });
    ids.ivr = await drop('ivr_menu', 470, 100);
    await createInline('New IVR menu…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Main menu');
      await d.getByLabel('Greeting text').fill('Press 1 for sales.');
      await d.getByLabel('Label for digit 1').fill('Sales');
    });
    ids.rg = await drop('ring_group', 240, 420);
    await createInline('New ring group…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('Sales team');
      await d.getByLabel('Add member').selectOption({ label: '101 Alice' });
    });
    ids.vm = await drop('voicemail', 470, 420);
    await createInline('New voicemail box…', async (d) => {
      await d.getByLabel('Name', { exact: true }).fill('After hours');
    });
    expect(Object.values(ids).every(Boolean), `nodes created: ${JSON.stringify(ids)}`);
    // the IVR grew a handle for digit 1 from its digit map
    await page.locator(`.react-flow__node[data-id="${ids.ivr}"] [data-output="1"]`).waitFor();
    // the number created on the canvas enters this flow at its node
    const flowId = Number(flowUrl.match(/\/flows\/(\d+)$/)[1]);
    const num = (await (await page.request.get(`${url}/api/v1/numbers?limit=100`)).json()).data.find((n) => n.number === '+61299990000');
    expect(num?.flow_id === flowId && num?.flow_entry_node === ids.number, `the number maps to ${num?.flow_id}/${num?.flow_entry_node}`);
  });

  const handle = (node, outputText) =>
    page.locator(`.react-flow__node[data-id="${node}"] li[data-output]`).filter({ hasText: outputText }).locator('.react-flow__handle').first();
  const input = (node) => page.locator(`.react-flow__node[data-id="${node}"] .react-flow__handle.target`);
  async function connect(from, outputText, to) {
    const n = await page.locator('.react-flow__edge').count();
    await handle(from, outputText).dragTo(input(to));
    await page.waitForFunction((k) => document.querySelectorAll('.react-flow__edge').length > k, n);
  }

  await step('edges connected from the outputs, labelled with them', async () => {
    await connect(ids.number, /./, ids.ts);
    await connect(ids.ts, 'Business hours', ids.ivr);
    await connect(ids.ts, 'No match', ids.vm); // the switch's `default` output
    await connect(ids.ivr, 'Sales', ids.rg);
    await connect(ids.rg, /no.?answer/i, ids.vm);
    expect((await page.locator('.react-flow__edge').count()) === 5, 'five edges');
    await page.getByText('All changes saved').waitFor();
    // the saved draft connects output ids; the canvas labels each edge with its output's label
    const flowId = flowUrl.match(/\/flows\/(\d+)$/)[1];
    const saved = (await (await page.request.get(`${url}/api/v1/flows/${flowId}`)).json()).data.flow_data.edges;
    const handles = saved.map((e) => `${e.source}:${e.sourceHandle}>${e.target}`).sort();
    const want = [`${ids.number}:next>${ids.ts}`, `${ids.ts}:Business hours>${ids.ivr}`, `${ids.ts}:default>${ids.vm}`, `${ids.ivr}:1>${ids.rg}`, `${ids.rg}:no_answer>${ids.vm}`].sort();
    expect(JSON.stringify(handles) === JSON.stringify(want), `saved edges ${handles}`);
    const labels = (await page.locator('.react-flow__edgelabel-renderer > div').allTextContents()).sort();
    expect(JSON.stringify(labels) === JSON.stringify(['Business hours', 'Next', 'No answer', 'No match', 'Sales']), `edge labels ${labels}`);
    await shot(page, 'editor-built');
  });

  await step('publishing with an error is refused: problems listed, the node outlined, a click focuses it', async () => {
    // a Play Message node with neither a prompt nor a text: its config is invalid (an error)
    ids.play = await drop('play_message', 10, 280);
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByRole('alert').filter({ hasText: /has 1 error/ }).waitFor();
    const problems = page.getByRole('list', { name: 'Problems' });
    await problems.waitFor();
    await page.locator(`.react-flow__node.has-error[data-id="${ids.play}"]`).waitFor();
    const errors = await page.locator('.react-flow__node.has-error').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')));
    expect(JSON.stringify(errors) === JSON.stringify([ids.play]), `nodes outlined in red: ${errors}`);
    await shot(page, 'editor-problems');
    await problems.getByRole('button').filter({ hasText: 'Play Message' }).first().click();
    const inspector = page.getByLabel('Node settings');
    await inspector.getByRole('heading', { name: 'Play Message' }).waitFor();
    expect((await inspector.getByText(ids.play, { exact: true }).count()) === 0, 'no node id in the side panel');
    expect(await page.locator(`.react-flow__node.selected[data-id="${ids.play}"]`).count() === 1, 'the problem selects its node');
    await inspector.getByRole('button', { name: 'Remove node' }).click();
    await page.locator(`.react-flow__node[data-id="${ids.play}"]`).waitFor({ state: 'detached' });
    delete ids.play;
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByRole('tab', { name: /Problems/ }).click();
    await page.getByText(/^0 errors,/).waitFor();
    expect((await page.locator('.react-flow__node.has-error').count()) === 0, 'no node outlined once fixed');
  });

  await step('publish, the warnings still listed', async () => {
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByText(/Published version 1/).waitFor();
    // the IVR's timeout and invalid outputs lead nowhere: warnings, which do not block
    await page.getByRole('tab', { name: /Problems/ }).click();
    await page.getByText(/^0 errors, [1-9]\d* warnings?/).waitFor();
  });

  await step('an unfinished transfer saves; problems follow the edits without Validate; the queue is coming', async () => {
    // the queue is drawn in the palette as coming, and cannot be added
    const queue = page.locator('[data-node-type="queue"]');
    expect((await queue.isDisabled()) && /coming/.test((await queue.textContent()) ?? ''), 'the queue is marked coming and not addable');
    ids.xfer = await drop('transfer', 10, 520);
    const xfer = page.locator(`.react-flow__node[data-id="${ids.xfer}"]`);
    // drafts always save, an unfinished node included, and a node just dropped has no red note
    await page.getByText('All changes saved').waitFor();
    expect((await xfer.locator('[role=note]').count()) === 0, 'no red note on a node just dropped');
    // the validator runs by itself: outlined until it has somewhere to send the call
    await page.locator(`.react-flow__node.has-error[data-id="${ids.xfer}"]`).waitFor();
    await page.getByRole('tab', { name: /Problems/ }).click();
    const problems = (await page.getByRole('list', { name: 'Problems' }).textContent()) ?? '';
    expect(!problems.includes(ids.xfer) && !/_/.test(problems.replace(/[\w.+-]+@[\w.-]+/g, '')), `problems in words: ${problems}`);
    await xfer.click();
    await page.getByRole('tab', { name: 'Node' }).click();
    await page.getByLabel('Outside number').fill('+61299990001');
    await page.locator(`.react-flow__node.has-error[data-id="${ids.xfer}"]`).waitFor({ state: 'detached' });
    await page.getByText('All changes saved').waitFor();
    const flowId = flowUrl.match(/\/flows\/(\d+)$/)[1];
    const saved = (await (await page.request.get(`${url}/api/v1/flows/${flowId}`)).json()).data.flow_data.nodes.find((n) => n.id === ids.xfer);
    expect(saved?.data?.config?.number === '+61299990001' && !saved?.data?.entity_id, `saved transfer: ${JSON.stringify(saved)}`);
    // removed, its problems go with it
    await page.getByLabel('Node settings').getByRole('button', { name: 'Remove node' }).click();
    await xfer.waitFor({ state: 'detached' });
    delete ids.xfer;
    await page.getByText('All changes saved').waitFor();
    await page.getByRole('tab', { name: /Problems/ }).click();
    await page.getByText(/^0 errors,/).waitFor();
  });

  await step('a simulated test call lights the path the simulator returned, step by step', async () => {
    await page.getByRole('tab', { name: 'Test call' }).click();
    await page.getByLabel('Date and time').fill('2026-03-02T10:00'); // a Monday, in business hours
    await page.getByLabel('Time zone').last().fill('UTC');
    await page.getByLabel('Digits pressed').fill('1');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/simulate') && r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Run test call' }).click(),
    ]);
    expect(resp.status() === 200, `simulate answered ${resp.status()}`);
    const sim = (await resp.json()).data;
    const simPath = sim.steps.map((s) => s.node_id);
    const expected = [ids.number, ids.ts, ids.ivr, ids.rg];
    expect(JSON.stringify(simPath) === JSON.stringify(expected), `the simulator walked ${simPath}, not ${expected}`);
    expect(/answered/.test(sim.outcome), `outcome ${sim.outcome}`);
    await page.getByTestId('sim-steps').waitFor();
    const onPath = () => page.locator('.react-flow__node.on-path').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')).sort());
    const current = () => page.locator('.react-flow__node.path-current').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')));
    await page.getByRole('button', { name: 'First step' }).click();
    expect(JSON.stringify(await onPath()) === JSON.stringify([ids.number]), `first step lights ${await onPath()}`);
    await page.getByRole('button', { name: 'Next step' }).click();
    expect(JSON.stringify(await current()) === JSON.stringify([ids.ts]), `second step is at ${await current()}`);
    await page.getByRole('button', { name: 'Last step' }).click();
    expect(JSON.stringify(await onPath()) === JSON.stringify([...simPath].sort()), `path ${await onPath()} is not ${simPath}`);
    const steps = await page.getByTestId('sim-steps').locator('li').evaluateAll((ls) => ls.map((l) => l.getAttribute('data-node-id')));
    expect(JSON.stringify(steps) === JSON.stringify(simPath), `steps ${steps}`);
    // the IVR step names the output by its label, as the canvas does
    expect(/Sales/.test((await page.getByTestId('sim-steps').locator('li').nth(2).textContent()) ?? ''), 'IVR step shows the output label');
    const edgesOnPath = await page.locator('.react-flow__edge.on-path').count();
    expect(edgesOnPath === simPath.length - 1, `${edgesOnPath} edges lit`);
    await shot(page, 'editor-test-call');
  });

  await step('publish a change, its diff, then roll back to version 1', async () => {
    await page.locator(`.react-flow__node[data-id="${ids.vm}"]`).click();
    await page.getByRole('tab', { name: 'Node' }).click();
    await page.getByLabel('Label', { exact: true }).fill('Night voicemail');
    await page.getByText('All changes saved').waitFor();
    await page.getByRole('button', { name: 'Publish' }).click();
    await page.getByText(/Published version 2/).waitFor();
    await page.getByRole('tab', { name: 'Versions' }).click();
    const v2 = page.getByRole('listitem').filter({ hasText: 'Version 2' });
    await v2.getByRole('button', { name: 'Changes in v2' }).click();
    const diff = page.getByRole('dialog', { name: 'Changes from v1 to v2' });
    await diff.getByText('Nodes changed').waitFor();
    const changed = (await diff.textContent()) ?? '';
    // named by label, before → after, no internal ids
    expect(/Night voicemail/.test(changed) && /Label: \(none\) → Night voicemail/.test(changed) && !changed.includes(ids.vm) && !/Nodes added|Nodes removed|Edges/.test(changed), `diff: ${changed}`);
    await shot(page, 'editor-diff');
    await diff.getByRole('button', { name: 'Close' }).click();
    const v1 = page.getByRole('listitem').filter({ hasText: 'Version 1' });
    await v1.getByRole('button', { name: 'Roll back to this' }).click();
    const confirm = page.getByRole('dialog', { name: 'Roll back to version 1?' });
    expect(/can be undone/.test((await confirm.textContent()) ?? '') && !/cannot be undone/.test((await confirm.textContent()) ?? ''), 'a rollback says it can be undone');
    await confirm.getByRole('button', { name: 'Roll back', exact: true }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    await page.getByRole('listitem').filter({ hasText: /Version 3\s*live/ }).waitFor();
    // the live version now runs version 1's graph
    const flowId = flowUrl.match(/\/flows\/(\d+)$/)[1];
    const r = await page.request.get(`${url}/api/v1/flows/${flowId}/versions/1/diff/live`);
    const d = (await r.json()).data;
    const n = [d.nodes.added, d.nodes.removed, d.nodes.changed, d.edges.added, d.edges.removed, d.edges.changed].flat().length;
    expect(r.ok() && d.to === 3 && n === 0, `live after the rollback differs from version 1: ${JSON.stringify(d)}`);
    await v1.getByRole('button', { name: 'View' }).click();
    await page.getByText(/Viewing version 1/).first().waitFor();
    await shot(page, 'editor-version-1');
  });

  await step('after the rollback the draft differs from live: an entity edit, the diff on the canvas, reset to live', async () => {
    await page.getByRole('button', { name: 'Back to draft' }).first().click();
    await page.getByText('All changes saved').waitFor();
    // the IVR menu gains digit 2 on its own page, which names the flow using it
    await page.goto(`${url}/ivr-menus`);
    await page.getByRole('button', { name: 'Edit Main menu' }).click();
    const d = page.getByRole('dialog');
    const using = d.getByRole('region', { name: 'Flows using this' });
    await using.getByText(/live version 3/).waitFor();
    await d.getByRole('button', { name: /^Add digit/ }).click();
    await d.getByLabel('Label for digit 2').fill('Support');
    await d.getByRole('button', { name: 'Save', exact: true }).click();
    await d.waitFor({ state: 'detached' });
    await page.goto(flowUrl);
    const status = page.getByTestId('draft-status');
    await status.filter({ hasText: 'Draft differs from live (version 3)' }).waitFor();
    const why = (await status.textContent()) ?? '';
    expect(/the graph/.test(why) && /IVR menu “Main menu”/.test(why), `draft status: ${why}`);
    await shot(page, 'editor-draft-differs');
    await status.getByRole('button', { name: 'What changed' }).click();
    const diff = page.getByRole('dialog', { name: 'Changes from live to draft' });
    await diff.getByText('Settings of linked entities').waitFor();
    const text = (await diff.textContent()) ?? '';
    expect(/Option 2: \(none\) → Support/.test(text) && /Label: \(none\) → Night voicemail/.test(text) && !text.includes(ids.vm) && !text.includes(ids.ivr), `live → draft diff: ${text}`);
    await shot(page, 'editor-diff-live-draft');
    await diff.getByRole('button', { name: 'Show on canvas' }).click();
    await page.getByTestId('diff-legend').waitFor();
    const marked = await page.locator('.react-flow__node.diff-changed').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')).sort());
    expect(JSON.stringify(marked) === JSON.stringify([ids.ivr, ids.vm].sort()), `nodes marked changed: ${marked}`);
    await shot(page, 'editor-diff-canvas');
    await page.getByRole('button', { name: 'Hide changes' }).click();
    await status.getByRole('button', { name: 'Reset to live' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reset draft' }).click();
    await status.filter({ hasText: 'Draft is live (version 3)' }).waitFor();
    await page.locator(`.react-flow__node[data-id="${ids.vm}"]`).filter({ hasText: 'Night voicemail' }).waitFor({ state: 'detached' });
    const menu = (await (await page.request.get(`${url}/api/v1/ivr-menus?limit=100`)).json()).data.find((m) => m.name === 'Main menu');
    expect(JSON.stringify(menu.options) === JSON.stringify({ 1: 'Sales' }), `the menu after the reset: ${JSON.stringify(menu.options)}`);
    await shot(page, 'editor-draft-reset');
  });

  await step('a real call takes the live flow; "Show path" on its CDR row draws its traversal', async () => {
    if (!sipPort) {
      console.log('     skipped: no SIP port (--url without --sip-port)');
      return;
    }
    const api = `${url}/api/v1`;
    // an IP-authenticated trunk from the loopback address SIPp sends from, made in the UI,
    // and the number moved onto it from the Numbers page
    await page.goto(`${url}/trunks`);
    await page.getByRole('button', { name: 'New trunk…' }).click();
    let d = page.getByRole('dialog');
    await d.getByLabel('Name', { exact: true }).fill('Loopback carrier');
    await d.getByLabel('Type').selectOption('ip');
    await d.getByLabel('Allowed hosts').fill('127.0.0.2/32');
    await d.getByRole('button', { name: 'Create trunk' }).click();
    await d.waitFor({ state: 'detached' });
    await page.goto(`${url}/numbers`);
    await page.getByRole('button', { name: 'Edit +61299990000 Main office' }).click();
    d = page.getByRole('dialog');
    await d.getByLabel('Trunk').selectOption({ label: 'Loopback carrier' });
    await d.getByRole('button', { name: 'Save', exact: true }).click();
    await d.waitFor({ state: 'detached' });
    const num = (await (await page.request.get(`${api}/numbers?limit=100`)).json()).data.find((n) => n.number === '+61299990000');
    const flowId = Number(flowUrl.match(/\/flows\/(\d+)$/)[1]);
    expect(num.trunk_id && num.flow_id === flowId && num.flow_entry_node === ids.number, `the number after the edit: ${JSON.stringify(num)}`);
    // the SIP stack's directory follows the store within its refresh interval
    for (const end = Date.now() + 15_000; ; await new Promise((r) => setTimeout(r, 100))) {
      const h = (await (await page.request.get(`${api}/health`)).json()).data;
      if (/[1-9]\d* trusted trunk/.test(h?.components?.sip?.detail ?? '')) break;
      expect(Date.now() < end, `the SIP directory never saw the trunk: ${JSON.stringify(h?.components?.sip)}`);
    }
    let call;
    for (let attempt = 0; attempt < 5; attempt++) {
      call = await sippCall({ from: '127.0.0.2', sipPort, number: '+61299990000' });
      if (call.code === 0) break;
      await new Promise((r) => setTimeout(r, 1000)); // the number's new trunk may not be loaded yet
    }
    expect(call.code === 0, `the call failed (sipp exit ${call.code}): ${call.out}`);
    // the CDR is written when the call ends (batched): wait for it and its flow path
    let cdr;
    for (const end = Date.now() + 10_000; !cdr && Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      const list = (await (await page.request.get(`${api}/cdrs?limit=10`)).json()).data;
      cdr = list.find((c) => c.callee === '+61299990000' && Array.isArray(c.flow_path) && c.flow_path.length > 0);
    }
    expect(cdr, 'no CDR with a flow path for the call');
    const walked = cdr.flow_path.map((p) => (typeof p === 'string' ? p : p.node_id));
    expect(walked[0] === ids.number && walked[1] === ids.ts && cdr.flow_version === 3, `CDR path ${walked} (version ${cdr.flow_version})`);
    await page.goto(`${url}/calls`);
    const row = page.getByRole('row').filter({ hasText: '+61299990000' }).first();
    await row.getByRole('link', { name: 'Show path' }).click();
    await page.waitForURL(new RegExp(`\\?cdr=${cdr.id}$`));
    await page.getByText(/Viewing version 3/).first().waitFor();
    // the traversal plays step by step; wait for the last one
    const want = [...new Set(walked)].sort();
    await page.waitForFunction((n) => document.querySelectorAll('.react-flow__node.on-path').length >= n, want.length);
    const lit = await page.locator('.react-flow__node.on-path').evaluateAll((ns) => ns.map((n) => n.getAttribute('data-id')).sort());
    expect(JSON.stringify(lit) === JSON.stringify(want), `Show path lit ${lit}, the CDR walked ${walked}`);
    await shot(page, 'editor-show-path');
    // the same CDR row's "SIP": the call's messages, the carrier's INVITE first
    await page.goto(`${url}/calls`);
    const sipRow = page.getByRole('row').filter({ hasText: '+61299990000' }).first();
    await sipRow.getByRole('button', { name: 'SIP' }).click();
    const msgs = page.getByRole('list', { name: 'SIP messages' });
    await msgs.waitFor();
    const first = (await msgs.locator('li pre').first().textContent()) ?? '';
    expect(/^INVITE sip:/.test(first), `the first message of the call: ${first}`);
    expect((await msgs.locator('li').count()) >= 4, 'the INVITE, its answers, the BYE');
    await shot(page, 'call-sip-messages');
  });

  await step('settings: what the environment fixes is read-only and named; every error at once', async () => {
    await page.goto(`${url}/settings`);
    const udp = page.getByLabel('SIP UDP port');
    await udp.waitFor();
    expect(await udp.isDisabled(), 'a port the environment fixes is read-only');
    await page.getByText(/Set by FLOWPBX_SIP_UDP_PORT: change it there/).waitFor();
    expect((await page.getByLabel('SIP message log').evaluate((e) => e.tagName)) === 'SELECT', 'the SIP log level is a select');
    await page.getByLabel('SIP TLS port').fill('70000');
    await page.getByLabel('Hang up after silence (s)').fill('0');
    await page.getByRole('button', { name: 'Save settings' }).click();
    const alerts = page.locator('[role=alert]');
    await page.getByText('must be a port number from 1 to 65535').waitFor();
    const all = (await alerts.allTextContents()).join(' | ');
    expect(/whole number from/.test(all) && !/_|expected|`/.test(all), `every error at once, in words: ${all}`);
    await shot(page, 'settings-errors');
    await page.reload();
  });

  await step('settings: a read-only token, the sessions, a password change that ends the others', async () => {
    await page.goto(`${url}/settings`);
    await page.getByLabel('New token name').fill('wallboard');
    await page.getByLabel('Scope').selectOption('read');
    await page.getByLabel('Expires in (days)').fill('30');
    await page.getByRole('button', { name: 'Create token' }).click();
    const jwt = (await page.locator('[role=status] code').textContent())?.trim();
    expect(jwt, 'the token is shown once, when created');
    await page.getByRole('list', { name: 'API tokens' }).getByText('wallboard').waitFor();
    const bearer = { Authorization: `Bearer ${jwt}` };
    expect((await fetch(`${url}/api/v1/extensions`, { headers: bearer })).status === 200, 'a read token reads');
    const write = await fetch(`${url}/api/v1/ring-groups`, { method: 'POST', headers: { ...bearer, 'Content-Type': 'application/json' }, body: '{"name":"x"}' });
    expect(write.status === 403, `a read token wrote: ${write.status}`);
    // another session: listed, and ended by the password change
    const other = await fetch(`${url}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(ADMIN) });
    const cookie = (other.headers.get('set-cookie') ?? '').split(';')[0];
    expect(other.status === 200 && cookie, `the second login answered ${other.status}`);
    await page.reload();
    const sessions = page.getByRole('list', { name: 'Sessions' });
    await sessions.getByText('this session').waitFor();
    expect((await sessions.getByRole('listitem').count()) >= 2, 'both sessions are listed');
    await page.getByLabel(/^Current password/).fill(ADMIN.password);
    await page.getByLabel(/^New password/).fill('e2e-password-456');
    await page.getByLabel(/^Repeat the new password/).fill('e2e-password-456');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText(/^Password changed\./).waitFor();
    expect((await fetch(`${url}/api/v1/extensions`, { headers: { Cookie: cookie } })).status === 401, 'the other session ended');
    expect((await fetch(`${url}/api/v1/extensions`, { headers: bearer })).status === 200, 'tokens live on unless asked');
    await shot(page, 'settings-account');
  });

  // a carrier of our own on loopback: a strict UDP responder that answers OPTIONS and REGISTER
  const carrier = await startSipResponder('127.0.0.1');
  let trunkId;

  await step('a registration trunk to a carrier on 127.0.0.1 turns registered live, without a reload', async () => {
    await page.goto(`${url}/trunks`);
    await page.getByRole('button', { name: 'New trunk…' }).click();
    const d = page.getByRole('dialog');
    await d.getByLabel('Name', { exact: true }).fill('Loopback registrar');
    await d.getByLabel('Registrar host').fill('127.0.0.1');
    await d.getByLabel('Port', { exact: true }).fill(String(carrier.port));
    await d.getByLabel('Username', { exact: true }).fill('e2e-acct');
    await d.getByLabel('Password', { exact: true }).fill('trunk-secret-2');
    await d.getByLabel('Keep-alive every (s)').fill('5');
    await d.getByLabel('Country code').fill('61');
    await d.getByLabel('National prefix', { exact: true }).fill('0');
    await d.getByRole('list', { name: 'E.164 examples' }).getByText('+61212345678').waitFor();
    await d.getByRole('button', { name: 'Create trunk' }).click();
    await d.waitFor({ state: 'detached' });
    const trunks = (await (await page.request.get(`${url}/api/v1/trunks?limit=100`)).json()).data;
    const t = trunks.find((x) => x.name === 'Loopback registrar');
    expect(t && t.options_interval === 5 && t.country_code === '61', `the trunk as saved: ${JSON.stringify(t)}`);
    trunkId = t.id;
    // a mark on the page: it is still there after the status changes, so nothing reloaded
    await page.evaluate(() => (window.__noReload = true));
    const badge = page.getByTestId(`trunk-status-${trunkId}`);
    await badge.waitFor();
    const before = await badge.getAttribute('data-status');
    const t0 = Date.now();
    await page.locator(`[data-testid="trunk-status-${trunkId}"][data-status="registered"]`).waitFor({ timeout: 30_000 });
    console.log(`     ${before} → registered on the page after ${Date.now() - t0} ms`);
    expect(await page.evaluate(() => window.__noReload === true), 'the page reloaded');
    await page.locator(`[data-testid="trunk-status-${trunkId}"]`).getByText(/keep-alive: up, \d+ ms/).waitFor({ timeout: 20_000 });
    // what the carrier saw: a REGISTER for the account, from the PBX on loopback
    const reg = carrier.requests.find((r) => r.method === 'REGISTER');
    expect(reg && /sip:e2e-acct@127\.0\.0\.1/.test(reg.from) && reg.source.startsWith('127.0.0.1:'), `the carrier's requests: ${JSON.stringify(carrier.requests)}`);
    expect(carrier.requests.some((r) => r.method === 'OPTIONS'), 'no OPTIONS keep-alive reached the carrier');
    await shot(page, 'trunks-live-status');
  });

  await step('Test sends OPTIONS and REGISTER and shows the answers with their round trips', async () => {
    const sent = carrier.requests.length;
    await page.getByRole('button', { name: 'Test Loopback registrar' }).click();
    const d = page.getByRole('dialog', { name: 'Loopback registrar' });
    const opts = d.getByTestId('probe-OPTIONS');
    await opts.waitFor({ timeout: 15_000 });
    const optText = (await opts.textContent()) ?? '';
    const regText = (await d.getByTestId('probe-REGISTER').textContent()) ?? '';
    const rtt = /OPTIONS: 200 OK in (\d+) ms/.exec(optText);
    expect(rtt, `OPTIONS result: ${optText}`);
    expect(/REGISTER: 200 OK in \d+ ms/.test(regText) && /accepted the credentials/.test(regText), `REGISTER result: ${regText}`);
    console.log(`     OPTIONS round trip ${rtt[1]} ms; ${regText.match(/in \d+ ms/)?.[0]} for the REGISTER`);
    expect(carrier.requests.slice(sent).filter((r) => r.method === 'OPTIONS' || r.method === 'REGISTER').length >= 2, 'the test reached the carrier');
    await d.locator('dd', { hasText: /^registered$/ }).waitFor();
    await shot(page, 'trunks-test-result');
    await d.getByRole('button', { name: 'Close' }).click();
  });

  await step('the dashboard shows the trunk registered', async () => {
    await page.getByRole('link', { name: 'Dashboard' }).click();
    const row = page.getByRole('list', { name: 'Trunk states' }).getByRole('listitem').filter({ hasText: 'Loopback registrar' });
    await row.getByText('registered').waitFor();
  });

  await step('outbound routes: a bad pattern is refused on its field, a good one saves, the order changes', async () => {
    await page.getByRole('link', { name: 'Outbound routes' }).click();
    await page.getByRole('heading', { name: 'Outbound routes' }).waitFor();
    const table = page.getByRole('table', { name: 'Outbound routes in the order they are tried' });
    await table.getByRole('cell', { name: 'Emergency numbers', exact: true }).waitFor();
    const newRoute = async (name, pattern, klass) => {
      await page.getByRole('button', { name: 'New route…' }).click();
      const d = page.getByRole('dialog');
      await d.getByLabel('Name', { exact: true }).fill(name);
      await d.getByLabel('Class of numbers').selectOption(klass);
      await d.getByLabel('Pattern 1', { exact: true }).fill(pattern);
      await d.getByLabel('Add a trunk').selectOption({ label: 'Loopback registrar' });
      return d;
    };
    let d = await newRoute('International', '_00[5-2]X.', 'international');
    // the hint already doubts it; the server's 422 lands on the pattern
    await d.getByTestId('pattern-hint-0').getByText(/Looks wrong/).waitFor();
    await d.getByRole('button', { name: 'Create route' }).click();
    const p1 = d.getByLabel('Pattern 1', { exact: true });
    await d.getByRole('alert').filter({ hasText: /goes backwards/ }).waitFor();
    expect((await p1.getAttribute('aria-invalid')) === 'true', 'the pattern field is not marked invalid');
    await shot(page, 'outbound-routes-field-error');
    await p1.fill('_00[2-5]X.');
    await d.getByTestId('pattern-hint-0').getByText(/at least 5 characters: starting 00/).waitFor();
    await d.getByLabel('Try a number').fill('00442079460000');
    await d.getByText(/Matches pattern 1/).waitFor();
    await d.getByRole('button', { name: 'Create route' }).click();
    await d.waitFor({ state: 'detached' });
    d = await newRoute('National', '_0[2-9]XXXXXXXX', 'national');
    await d.getByLabel('Strip digits').fill('1');
    await d.getByLabel('Prepend').fill('+61');
    await d.getByTestId('pattern-hint-0').getByText(/sent as \+61/).waitFor();
    await d.getByRole('button', { name: 'Create route' }).click();
    await d.waitFor({ state: 'detached' });
    const order = async () => (await (await page.request.get(`${url}/api/v1/outbound-routes?limit=100`)).json()).data.map((r) => r.name);
    const rows = async () => (await table.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => tr.querySelectorAll('td')[1]?.childNodes[0]?.textContent ?? '')));
    expect(JSON.stringify(await order()) === '["International","National"]', `created in order: ${await order()}`);
    await table.getByText('strip 1, prepend +61').waitFor();
    // the arrows: National first
    await page.getByRole('button', { name: 'Move National up' }).click();
    await page.getByText('Order saved.').waitFor();
    expect(JSON.stringify(await order()) === '["National","International"]', `after moving up: ${await order()}`);
    expect(JSON.stringify(await rows()) === '["Emergency numbers","National","International"]', `rows: ${await rows()}`);
    // dragging a row: International back on top
    await table.locator('tbody tr', { hasText: '_00[2-5]X.' }).dragTo(table.locator('tbody tr', { hasText: '_0[2-9]XXXXXXXX' }));
    for (const end = Date.now() + 10_000; JSON.stringify(await order()) !== '["International","National"]'; await new Promise((r) => setTimeout(r, 100))) {
      expect(Date.now() < end, `after dragging: ${await order()}`);
    }
    await page.reload();
    await table.getByText('National').first().waitFor();
    expect(JSON.stringify(await rows()) === '["Emergency numbers","International","National"]', `rows after a reload: ${await rows()}`);
    await shot(page, 'outbound-routes');
  });

  await step('follow-me: two numbers ringing together are saved, shown after a reload, a bad ring time refused on its row', async () => {
    await page.goto(`${url}/extensions`);
    await page.getByRole('button', { name: 'New extension…' }).click();
    let d = page.getByRole('dialog');
    await d.getByLabel('Extension number').fill('102');
    await d.getByLabel('Name', { exact: true }).fill('Bob');
    await d.getByLabel('SIP password').fill('bob-secret-12345');
    await d.getByRole('button', { name: 'Create extension' }).click();
    await d.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Edit 102 Bob' }).click();
    d = page.getByRole('dialog');
    await d.getByRole('switch', { name: 'Follow me' }).check();
    await d.getByRole('radio', { name: 'Simultaneous' }).check();
    await d.getByRole('button', { name: 'Add number' }).click();
    await d.getByLabel('Number 1', { exact: true }).fill('0412 345 678');
    await d.getByLabel('Delay of number 1 (s)').fill('10');
    await d.getByLabel('Ring time of number 1 (s)').fill('25');
    await d.getByRole('button', { name: 'Add number' }).click();
    await d.getByLabel('Number 2', { exact: true }).fill('+61299990000');
    await d.getByLabel('Ring time of number 2 (s)').fill('40');
    await d.getByTestId('follow-me-when-0').getByText('10–35 s').waitFor();
    await shot(page, 'follow-me-form');
    await d.getByRole('button', { name: 'Save', exact: true }).click();
    await d.waitFor({ state: 'detached' }).catch(async () => {
      throw new Error(`save: ${(await d.getByRole('alert').allTextContents()).join(' / ') || 'the form stayed open'}`);
    });
    const stored = (await (await page.request.get(`${url}/api/v1/extensions?limit=100`)).json()).data.find((x) => x.extension === '102');
    const want = { follow_me_enabled: true, follow_me_mode: 'simultaneous', follow_me_confirm: true,
      follow_me_numbers: [{ number: '0412345678', delay: 10, timeout: 25 }, { number: '+61299990000', delay: 0, timeout: 40 }] };
    const got = { follow_me_enabled: stored?.follow_me_enabled, follow_me_mode: stored?.follow_me_mode, follow_me_confirm: stored?.follow_me_confirm, follow_me_numbers: stored?.follow_me_numbers };
    expect(JSON.stringify(got) === JSON.stringify(want), `stored: ${JSON.stringify(got)}`);
    await page.reload();
    const row = page.locator('tbody tr', { hasText: 'Bob' });
    await row.getByText('follow-me', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Edit 102 Bob' }).click();
    d = page.getByRole('dialog');
    expect(await d.getByRole('switch', { name: 'Follow me' }).isChecked(), 'follow-me is on after a reload');
    expect(await d.getByRole('radio', { name: 'Simultaneous' }).isChecked(), 'simultaneous after a reload');
    expect((await d.getByLabel('Number 1', { exact: true }).inputValue()) === '0412345678', 'number 1 after a reload');
    expect((await d.getByLabel('Number 2', { exact: true }).inputValue()) === '+61299990000', 'number 2 after a reload');
    expect((await d.getByLabel('Delay of number 1 (s)').inputValue()) === '10', 'delay 1 after a reload');
    expect((await d.getByLabel('Ring time of number 2 (s)').inputValue()) === '40', 'ring time 2 after a reload');
    // the server refuses a ring time under 5 s, on that row's field
    const ring2 = d.getByLabel('Ring time of number 2 (s)');
    await ring2.fill('2');
    await d.getByRole('button', { name: 'Save', exact: true }).click();
    await d.getByTestId('follow-me-row-1').getByRole('alert').filter({ hasText: 'Ring time: must be between 5 and 300' }).waitFor();
    expect((await ring2.getAttribute('aria-invalid')) === 'true', 'the ring time field is not marked invalid');
    expect(await ring2.evaluate((el) => el === document.activeElement), 'the field in error does not have the focus');
    expect((await d.getByLabel('Ring time of number 1 (s)').getAttribute('aria-invalid')) === null, 'the other row is marked invalid');
    await shot(page, 'follow-me-field-error');
    await d.getByRole('button', { name: 'Cancel' }).click();
    const after = (await (await page.request.get(`${url}/api/v1/extensions?limit=100`)).json()).data.find((x) => x.extension === '102');
    expect(after?.follow_me_numbers?.[1]?.timeout === 40, `the refused edit changed it: ${JSON.stringify(after?.follow_me_numbers)}`);
  });

  await step('push notifications: a loopback URL is refused on its field, a Gotify target saves, its token never shown', async () => {
    const token = 'gotify-app-token-e2e-7Qx';
    await page.goto(`${url}/extensions`);
    await page.getByRole('button', { name: 'Edit 102 Bob' }).click();
    const d = page.getByRole('dialog');
    const push = d.getByRole('form', { name: 'Push target' });
    await push.getByLabel('Provider').selectOption('gotify');
    const pushUrl = push.getByLabel('Message URL');
    await pushUrl.fill('http://127.0.0.1/message');
    await push.getByLabel('Token (not set)').fill(token);
    await push.getByRole('button', { name: 'Save push target' }).click();
    await push.locator('#push-' + (await bobId()) + '-url-error').waitFor();
    expect((await pushUrl.getAttribute('aria-invalid')) === 'true', 'the URL field is not marked invalid');
    const why = await push.locator('[role=alert]').allTextContents();
    expect(why.some((t) => /loopback/.test(t)), `the refusal names the address class: ${why.join(' / ')}`);
    await pushUrl.fill('https://192.0.2.10/message');
    await push.getByRole('button', { name: 'Save push target' }).click();
    await push.getByRole('status').filter({ hasText: 'Push target saved.' }).waitFor();
    await push.getByRole('group', { name: 'Token: set' }).waitFor();
    expect(!(await page.content()).includes(token), 'the token is in the page');
    const stored = await (await page.request.get(`${url}/api/v1/extensions/${await bobId()}/push`)).json();
    expect(stored.data?.kind === 'gotify' && stored.data?.url === 'https://192.0.2.10/message' && stored.data?.token_set === true, `stored: ${JSON.stringify(stored)}`);
    expect(!JSON.stringify(stored).includes(token), 'the API sent the token back');
    await shot(page, 'push-target');
    await page.reload();
    await page.getByRole('button', { name: 'Edit 102 Bob' }).click();
    const again = page.getByRole('dialog').getByRole('form', { name: 'Push target' });
    expect((await again.getByLabel('Message URL').inputValue()) === 'https://192.0.2.10/message', 'the URL after a reload');
    await again.getByRole('group', { name: 'Token: set' }).waitFor();
    expect(!(await page.content()).includes(token), 'the token is in the page after a reload');
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  });

  async function bobId() {
    return (await (await page.request.get(`${url}/api/v1/extensions?limit=100`)).json()).data.find((x) => x.extension === '102')?.id;
  }

  await step('at 1280×720 "Fit to screen" shows the whole flow', async () => {
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.goto(flowUrl);
    await page.getByTestId('canvas').waitFor();
    await page.locator('.react-flow__node').first().waitFor();
    await page.getByRole('button', { name: 'Fit to screen' }).click();
    await page.waitForTimeout(400);
    const box = await page.getByTestId('canvas').boundingBox();
    const nodes = await page.locator('.react-flow__node').evaluateAll((ns) => ns.map((n) => n.getBoundingClientRect()).map((r) => ({ l: r.left, t: r.top, r: r.right, b: r.bottom })));
    const inside = nodes.every((n) => n.l >= box.x - 1 && n.t >= box.y - 1 && n.r <= box.x + box.width + 1 && n.b <= box.y + box.height + 1);
    expect(nodes.length > 0 && inside, `nodes outside the canvas at 1280x720: ${JSON.stringify({ box, nodes })}`);
    await shot(page, 'editor-1280x720');
  });

  await step('the editor works at tablet width', async () => {
    await page.setViewportSize({ width: 820, height: 1180 });
    await page.goto(flowUrl);
    await page.getByTestId('canvas').waitFor();
    await shot(page, 'editor-tablet');
  });
}

mkdirSync(artifacts, { recursive: true });
let code = 0;
try {
  if (args.includes('--smoke')) await smoke();
  else {
    // 192.0.2.0/24 (TEST-NET-1, never routed) is granted so a push target can be saved
    // without naming a real server; nothing is sent to it (no call reaches that extension)
    const server = arg('--url') ?? (await startBinary({ env: { FLOWPBX_WEBHOOK_ALLOW_NETWORKS: '192.0.2.0/24' } }));
    const sipPort = sipPorts.get(server) ?? (arg('--sip-port') ? Number(arg('--sip-port')) : undefined);
    await scenario(args.includes('--dist') ? await serveDist(server) : server, sipPort);
  }
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
