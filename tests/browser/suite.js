// The dashboard's end-to-end tests: each starts a real batchd (the
// sanitized build) on an ephemeral port with a temporary directory, drives
// the page in headless Chromium, and saves a screenshot under artifacts/.
// A tiny runner (no framework): tests run one after another, each with a
// deadline; the last line says "N passed, N failed" for tests/run.
//
//   node suite.js [NAME-SUBSTRING...]
'use strict';

const assert = require('assert/strict');
const fs = require('fs');
const path = require('path');
const lib = require('./lib');

const { Server, browser, screenshot, until } = lib;
const TEST_DEADLINE_MS = 240000;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

// Opens the dashboard in a fresh browser, failing the test on any page
// error, console error or CSP violation.
async function open(t, server, opts = {}) {
  const ctx = await browser(opts);
  t.cleanup.push(() => ctx.close());
  const page = ctx.pages()[0] || await ctx.newPage();
  t.page = page;
  page.on('pageerror', (e) => t.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|401 \(Unauthorized\)|net::ERR/.test(m.text())) {
      t.problems.push(`console error: ${m.text()}`);
    }
  });
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await page.goto(server.url + (opts.hash || '/'));
  return page;
}

async function live(page) {
  await page.waitForSelector('#live[data-state="live"]');
}

function jobCard(id) {
  return `#view-jobs .job[data-id="${id}"]`;
}

async function text(page, sel) {
  return (await page.textContent(sel)).trim();
}

// ---- the tests ----

// A fresh server (args), and its page with the New job form open on
// handler.
async function formFor(t, handler, args = ['--workers', '2']) {
  const s = await new Server(args).start();
  const page = await open(t, s);
  await live(page);
  await page.click('#new-job');
  await page.waitForSelector(`#f-handler option[value="${handler}"]`, { state: 'attached' });
  await page.selectOption('#f-handler', handler);
  return { s, page };
}

// Opens task idx's detail on a job's page; the text of its blocks (input,
// then error or result).
async function taskBlocks(page, idx) {
  await page.click(`.task-row[data-index="${idx}"] button`);
  await page.waitForSelector(`#task-${idx}-detail .kv pre`);
  return page.$$eval(`#task-${idx}-detail .kv pre`, (els) => els.map((e) => e.textContent));
}

test('page loads from the binary, strict CSP, 304 while idle', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const seen = [];
  const page = await open(t, s);
  page.on('response', (r) => {
    if (r.url().endsWith('/api/progress')) seen.push(r.status());
  });
  await live(page);
  await page.waitForSelector('#jobs-empty:not([hidden])');
  // An idle dashboard costs a 304 per poll.
  await until('a 304 from /api/progress', () => seen.includes(304));
  const headers = (await s.request('GET', '/')).headers;
  assert.match(headers['content-security-policy'], /script-src 'self'; style-src 'self'/);
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  // Every script and style came from batchd itself.
  const external = await page.evaluate(() => performance.getEntriesByType('resource')
    .map((e) => e.name).filter((u) => !u.startsWith(location.origin)));
  assert.deepEqual(external, []);
  // Numbers for people.
  const f = await page.evaluate(async () => {
    const m = await import('/static/fmt.js');
    return [m.rate(1234), m.rate(12.34), m.rate(0.5), m.rate(0.05), m.rate(0.01), m.duration(200),
      m.duration(3725), m.duration(42), m.compact(1234), m.int(1234567),
      m.percent(0.9996), m.percent(1), m.duration(0.25, { ms: true }),
      m.bytes(512), m.bytes(1536), m.bytes(5 * 1048576)];
  });
  assert.deepEqual(f, ['1.2k/s', '12.3/s', '0.5/s', '3/min', '36/h', '3m 20s', '1h 02m', '42s',
    '1.2k', '1,234,567', '99.9%', '100%', '250ms', '512 B', '1.5 KiB', '5.0 MiB']);
  await screenshot(page, 'empty');
  // The tab hidden: polling slows down and the indicator says so.
  await page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await page.waitForSelector('#live[data-state="paused"]');
});

test('submit a job through the form and watch its bar reach 100%', async (t) => {
  const { s, page } = await formFor(t, 'sleep');
  // Refused by the API: its message is shown next to the form.
  await page.fill('#f-tasks', '[{"ms": 100}, {"ms": "soon"}]');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-error:not([hidden])');
  assert.match(await text(page, '#submit-error'), /tasks\[1\]\.ms/);
  await screenshot(page, 'submit-refused');
  // The generator: 12 tasks from a template.
  await page.fill('#f-count', '12');
  await page.fill('#f-template', '{"ms": 300, "steps": 3}');
  await page.click('#f-generate');
  assert.equal(JSON.parse(await page.inputValue('#f-tasks')).length, 12);
  await page.fill('#f-name', 'thumbnails from the form');
  await page.fill('#f-attempts', '2');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-dialog', { state: 'hidden' });
  const card = jobCard(1);
  await page.waitForSelector(`${card} .job-name >> text=thumbnails from the form`);
  await page.waitForSelector(`${card} [role="progressbar"][aria-valuenow="100"]`, { timeout: 90000 });
  await page.waitForSelector(`${card} .badge.succeeded`);
  assert.equal(await text(page, `${card} .fig.count`), '12/12');
  assert.equal(await text(page, `${card} .fig.pct`), '100%');
  assert.match(await page.getAttribute(`${card} [role="progressbar"]`, 'aria-valuetext'), /12 of 12 tasks finished/);
  const job = await s.api('GET', '/api/jobs/1');
  assert.equal(job.max_attempts, 2);
  assert.equal(job.progress.succeeded, 12);
  // A finished job's time to a tenth of a second under 10 s, from its
  // own start and finish.
  const took = (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000;
  assert.ok(took < 10);
  assert.equal(await text(page, `${card} .fig.elapsed`), `took ${parseFloat(took.toFixed(1))}s`);
  await screenshot(page, 'submitted-done');
});

test('tasks from a file or typed as JSON Lines: a small file into the box, a large one held apart', async (t) => {
  const { s, page } = await formFor(t, 'echo');
  const file = (name, text) => page.setInputFiles('#f-file',
    { name, mimeType: 'application/x-ndjson', buffer: Buffer.from(text) });
  // A small file goes into the box as it is, blank lines too (a text
  // box keeps its lines with \n alone).
  const small = '{"a": 1}\r\n\n[2]\n"x"\n';
  await file('small.jsonl', small);
  // The file is read after setInputFiles returns: wait for it in the box.
  await until('the small file in the box', async () =>
    (await page.inputValue('#f-tasks')) === small.replace('\r', '') &&
    (await text(page, '#f-tasks-info')) === '3 tasks', 10000);
  // Two values on a line: refused by its number, the box left as it was.
  await file('two.jsonl', '{"a": 1}\n{"b": 2} {"c": 3}\n');
  await page.waitForSelector('#submit-error:not([hidden])');
  assert.match(await text(page, '#submit-error'), /^two\.jsonl: line 2 is not one JSON value/);
  assert.equal(await page.inputValue('#f-tasks'), small.replace('\r', ''));
  // A large file is held apart: its name, count and size instead of the box.
  const lines = [];
  for (let i = 0; i < 30000; i++) lines.push(JSON.stringify({ n: i, pad: 'x'.repeat(20) }));
  const big = lines.join('\n') + '\n';
  await file('big.jsonl', big);
  await page.waitForSelector('#f-file-shown:not([hidden])');
  assert.ok(await page.isHidden('#f-tasks'));
  assert.ok(await page.isHidden('#submit-error'));
  assert.equal(await text(page, '#f-file-info'),
    `big.jsonl: 30,000 tasks (${(big.length / 1048576).toFixed(1)} MiB)`);
  await page.fill('#f-name', 'from a file');
  await screenshot(page, 'submit-from-file');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-dialog', { state: 'hidden' });
  await page.waitForSelector(`${jobCard(1)} .badge.succeeded`, { timeout: 60000 });
  assert.equal((await s.api('GET', '/api/jobs/1')).progress.succeeded, 30000);
  assert.deepEqual((await s.api('GET', '/api/jobs/1/tasks/29999')).input, { n: 29999, pad: 'x'.repeat(20) });
  // Cleared, the box is back with what it held; typed JSON Lines count
  // and go as they are.
  await page.click('#new-job');
  assert.ok(await page.isVisible('#f-file-shown'));
  await page.click('#f-file-clear');
  assert.ok(await page.isHidden('#f-file-shown'));
  assert.equal(await page.inputValue('#f-tasks'), small.replace('\r', ''));
  await page.fill('#f-tasks', '{"k": 1}\n\n{"k": 2}');
  assert.equal(await text(page, '#f-tasks-info'), '2 tasks');
  await page.fill('#f-tasks', '{"k": 1}\n{"k": ');
  assert.match(await text(page, '#f-tasks-info'), /^Not valid yet: line 2 is not one JSON value/);
  // One value over several lines, as pasted from a pretty printer: one task.
  await page.fill('#f-tasks', '{\n  "k": 1\n}');
  assert.equal(await text(page, '#f-tasks-info'), '1 task');
  await page.fill('#f-tasks', '{"k": 1}\n{"k": 2}');
  await page.fill('#f-name', 'typed lines');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-dialog', { state: 'hidden' });
  await page.waitForSelector(`${jobCard(2)} .badge.succeeded`, { timeout: 60000 });
  assert.deepEqual((await s.api('GET', '/api/jobs/2/tasks/1')).input, { k: 2 });
});

test('a mistake in a JSON array or one value over several lines is found by its line and column', async (t) => {
  const { s, page } = await formFor(t, 'echo');
  // A comma missing in a pretty-printed array: line 4, where the third
  // element starts, not line 1 as if it were JSON Lines.
  await page.fill('#f-tasks', '[\n  {"n": 1},\n  {"n": 2}\n  {"n": 3}\n]');
  assert.match(await text(page, '#f-tasks-info'), /^Not valid yet: not valid JSON at line 4, column 3 \(.+\)\.$/);
  await page.click('#submit-go');
  await page.waitForSelector('#submit-error:not([hidden])');
  assert.match(await text(page, '#submit-error'), /^Tasks: not valid JSON at line 4, column 3 \(.+\)\.$/);
  // One value over several lines, after blank lines: counted from the
  // top of the box.
  await page.fill('#f-tasks', '\n\n{\n  "k": 1\n  "j": 2\n}');
  assert.match(await text(page, '#f-tasks-info'), /^Not valid yet: not valid JSON at line 5, column 3 /);
  // From a file too.
  await page.setInputFiles('#f-file', { name: 'pretty.json', mimeType: 'application/json',
    buffer: Buffer.from('[\n  1,\n  2\n  3\n]\n') });
  await page.waitForFunction(() => document.querySelector('#submit-error').textContent.startsWith('pretty.json'));
  assert.match(await text(page, '#submit-error'), /^pretty\.json: not valid JSON at line 4, column 3 /);
  // A message with no position (a trailing comma, to Chromium) is the
  // whole text's still.
  await page.fill('#f-tasks', '[\n  1,\n  2,\n]');
  assert.match(await text(page, '#f-tasks-info'), /^Not valid yet: not valid JSON( at line 4, column 1)? \(/);
  // JSON Lines whose values are arrays are still JSON Lines, and a bad
  // line of them is named by its number.
  await page.fill('#f-tasks', '[1]\n[2, 3]');
  assert.equal(await text(page, '#f-tasks-info'), '2 tasks');
  await page.fill('#f-tasks', '[1]\n[2, 3');
  assert.match(await text(page, '#f-tasks-info'), /^Not valid yet: line 2 is not one JSON value/);
  assert.deepEqual((await s.api('GET', '/api/jobs')).jobs, []);
});

test('numbers go to the server and come back on the page as they were typed', async (t) => {
  const { s, page } = await formFor(t, 'echo');
  // 9007199254740993 is no double: parsed and printed again, it would go
  // as ...992; 1.0 would go as 1.
  await page.fill('#f-tasks', '{"id": 9007199254740993, "f": 1.0}\n[1E22, -0.0]');
  assert.equal(await text(page, '#f-tasks-info'), '2 tasks');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-dialog', { state: 'hidden' });
  await s.waitJob(1, 'succeeded');
  const stored = (await s.request('GET', '/api/jobs/1/results?input=true')).text;
  assert.match(stored, /"result":\{"id":9007199254740993,"f":1\.0\},"error":null,"input":\{"id":9007199254740993,"f":1\.0\}\}\n/);
  assert.match(stored, /"input":\[1E22,-0\.0\]\}\n/);
  // The task's detail shows them as written too. The list, which shows
  // no result, asks for none.
  const lists = [];
  page.on('request', (q) => { if (/\/api\/jobs\/1\/tasks\?/.test(q.url())) lists.push(q.url()); });
  await page.goto(`${s.url}/#/jobs/1`);
  await page.waitForSelector('#job-state.badge.succeeded');
  const want = '{\n  "id": 9007199254740993,\n  "f": 1.0\n}';
  assert.deepEqual(await taskBlocks(page, 0), [want, want]);	// input, result
  const second = '[\n  1E22,\n  -0.0\n]';
  assert.deepEqual(await taskBlocks(page, 1), [second, second]);
  assert.ok(lists.length > 0 && lists.every((u) => /[?&]result=false(&|$)/.test(u)), lists.join(' '));
});

test('the form says what the server would refuse before sending it', async (t) => {
  const { s, page } = await formFor(t, 'echo', ['--workers', '2', '--max-body', '1M', '--max-tasks', '1000']);
  const posts = [];
  page.on('request', (q) => { if (q.method() === 'POST') posts.push(q.url()); });
  const file = (name, text) => page.setInputFiles('#f-file',
    { name, mimeType: 'application/x-ndjson', buffer: Buffer.from(text) });
  const lines = (n, pad) => Array.from({ length: n }, (_, i) => JSON.stringify({ i, pad })).join('\n');
  await file('many.jsonl', lines(1500, ''));
  await page.waitForSelector('#submit-error:not([hidden])');
  assert.equal(await text(page, '#submit-error'),
    'many.jsonl: 1,500 tasks; this server takes at most 1,000 in one job (its --max-tasks).');
  // 900 tasks of 1.2 KiB: more than the 1 MiB the server reads.
  await file('big.jsonl', lines(900, 'x'.repeat(1200)));
  await page.waitForFunction(() => document.querySelector('#submit-error').textContent.startsWith('big.jsonl'));
  assert.match(await text(page, '#submit-error'),
    /^big\.jsonl: 1\.0 MiB to send; this server takes requests of at most 1\.0 MiB \(its --max-body\)\.$/);
  assert.ok(await page.isHidden('#f-file-shown'));
  // Typed or generated: checked as the job is submitted.
  await page.fill('#f-count', '1001');
  await page.click('#f-generate');
  await page.click('#submit-go');
  await page.waitForFunction(() => document.querySelector('#submit-error').textContent.startsWith('Not sent'));
  assert.equal(await text(page, '#submit-error'),
    'Not sent: 1,001 tasks; this server takes at most 1,000 in one job (its --max-tasks).');
  assert.deepEqual(posts, []);
  assert.deepEqual((await s.api('GET', '/api/jobs')).jobs, []);
  // At the limit, it goes.
  await page.fill('#f-count', '1000');
  await page.click('#f-generate');
  await page.click('#submit-go');
  await page.waitForSelector('#submit-dialog', { state: 'hidden' });
  assert.equal((await s.waitJob(1, 'succeeded')).progress.total, 1000);
  assert.equal(posts.length, 1);
});

test("an open task's detail is drawn once, not again with every redraw of the list", async (t) => {
  const s = await new Server(['--workers', '2']).start();
  // Task 0 ends at once; the others keep the job running, and its list
  // redrawn every second, for a few seconds.
  const tasks = [{ ms: 1 }, ...Array.from({ length: 60 }, () => ({ ms: 300 }))];
  await s.submit({ handler: 'sleep', tasks });
  const page = await open(t, s, { hash: '/#/jobs/1' });
  await live(page);
  await page.waitForSelector('.task-row[data-index="0"][data-state="succeeded"]');
  assert.deepEqual(await taskBlocks(page, 0), ['{\n  "ms": 1\n}', 'null']);
  await page.$eval('#task-0-detail', (e) => { e.dataset.mark = 'first'; });
  const done = () => page.$$eval('.task-row[data-state="succeeded"]', (els) => els.length);
  const before = await done();
  await until('the list redrawn twice as tasks finish', async () => (await done()) >= before + 4, 30000);
  assert.equal(await page.$eval('#task-0-detail', (e) => e.dataset.mark || ''), 'first');
});

test('a job opened again, after going back to the list, shows its tasks again', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const id = await s.submit({ handler: 'echo', name: 'seen twice', tasks: [1, 2] });
  await s.waitJob(id, 'succeeded');
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  const rows = () => page.$$eval('.task-row', (els) => els.length);
  await until('the two tasks listed', async () => (await rows()) === 2, 30000);
  await page.click('#job-back');
  await page.waitForSelector('#view-jobs', { state: 'visible' });
  await page.click(`${jobCard(id)} .job-link`);
  await page.waitForSelector('#job-title >> text=seen twice');
  await page.waitForSelector('#job-state.badge.succeeded');
  // The same page of tasks as before, drawn again in the emptied table.
  await until('the two tasks listed again', async () => (await rows()) === 2, 10000);
  assert.match(await text(page, '#pg-info'), /^1–2 of 2 /);
});

test("an open task's detail shows its result when its end finishes the job", async (t) => {
  const s = await new Server(['--workers', '1']).start();
  const id = await s.submit({ handler: 'sleep', tasks: [{ ms: 5000, steps: 4 }] });
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('.task-row[data-index="0"][data-state="running"]');
  assert.deepEqual(await taskBlocks(page, 0), ['{\n  "ms": 5000,\n  "steps": 4\n}']);
  await page.waitForSelector('#job-state.badge.succeeded', { timeout: 30000 });
  await page.waitForSelector('.task-row[data-index="0"][data-state="succeeded"]');
  // The last poll saw the job finish: the open task is fetched again.
  await until("the task's result in its detail", async () =>
    (await page.$$eval('#task-0-detail .kv .k', (els) => els.map((e) => e.textContent))).includes('Result'), 10000);
  assert.match(await text(page, '#task-0-detail p.muted'), /finished /);
});

// Holds the first request whose path is path until the returned release()
// is called; later ones go at once. held resolves when it is held, done
// when its answer has reached the page.
async function holdOnce(page, path) {
  let release, seen, done;
  const gate = new Promise((r) => { release = r; });
  const held = new Promise((r) => { seen = r; });
  const finished = new Promise((r) => { done = r; });
  let first = true;
  await page.route((u) => u.pathname === path, async (route) => {
    if (!first) return route.continue();
    first = false;
    seen();
    await gate;
    const q = route.request();
    page.on('requestfinished', (f) => { if (f === q) done(); });
    await route.continue();
  });
  return { held, release, done: finished };
}

// The contrast of text with what is behind it (WCAG 2), for the elements
// that match sel: [{ text, ratio }], the background found up the tree.
async function contrasts(page, sel) {
  return page.$$eval(sel, (els) => els.map((el) => {
    const rgb = (c) => c.match(/[\d.]+/g).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    }).reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    let bg = el;
    while (bg && rgb(getComputedStyle(bg).backgroundColor)[3] === 0) bg = bg.parentElement;
    const a = lum(rgb(getComputedStyle(el).color));
    const b = lum(rgb(getComputedStyle(bg || document.body).backgroundColor));
    return { text: el.textContent.trim(), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) };
  }));
}

test('state badges, counts and links can be read: 4.5:1 in light and dark', async (t) => {
  // No grace at the end: the last job's task would hold the stop 10 s.
  const s = await new Server(['--workers', '1', '--grace', '0']).start();
  await s.submit({ handler: 'echo', tasks: [1] });
  await s.waitJob(1, 'succeeded');
  await s.submit({ handler: 'fail', tasks: [{}] });
  await s.waitJob(2, 'failed');
  const c = await s.submit({ handler: 'sleep', tasks: [{ ms: 60000 }, { ms: 1 }] });
  await until('the sleep to run', async () => (await s.api('GET', `/api/jobs/${c}`)).progress.running === 1);
  await s.api('POST', `/api/jobs/${c}/cancel`);
  await s.submit({ handler: 'sleep', tasks: [{ ms: 60000 }] });
  for (const colorScheme of ['light', 'dark']) {
    const page = await open(t, s, { colorScheme });
    await live(page);
    await page.waitForSelector('.badge.running');
    await page.waitForSelector('.badge.cancelled');
    const seen = await contrasts(page, '.badge, .figs .failed, .figs .cancelled, #all-jobs-link, #worker-rows a');
    for (const x of seen) {
      assert.ok(x.ratio >= 4.5, `${colorScheme}: "${x.text}" at ${x.ratio.toFixed(2)}:1`);
    }
    assert.ok(seen.length >= 8, `only ${seen.length} elements checked`);
  }
});

test('the keyboard focus stays on its control while the tables are redrawn', async (t) => {
  const s = await new Server(['--workers', '2', '--grace', '0']).start();
  const id = await s.submit({ handler: 'sleep', tasks: [{ ms: 30000, steps: 30 }, { ms: 30000, steps: 30 }] });
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('.task-row[data-index="1"][data-state="running"]');
  await page.waitForSelector('#worker-rows a');
  // Counts the redraws of each table from now on.
  await page.evaluate(() => {
    window.__redraws = { 'task-rows': 0, 'worker-rows': 0 };
    for (const id of Object.keys(window.__redraws)) {
      new MutationObserver(() => { window.__redraws[id]++; })
        .observe(document.getElementById(id), { childList: true });
    }
  });
  const redrawn = async (box, from) =>
    (await page.evaluate((b) => window.__redraws[b], box)) >= from + 2;
  // A task's index in the table.
  await page.focus('.task-row[data-index="1"] button');
  await until('the task table redrawn twice', () => redrawn('task-rows', 0), 15000);
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.index), '1');
  // Tab goes on from there, not from the top of the page.
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.closest('tr')?.dataset.index), '0');
  // A worker's task link.
  await page.focus('#worker-rows tr:last-child a');
  const before = await page.evaluate(() => window.__redraws['worker-rows']);
  await until('the worker table redrawn twice', () => redrawn('worker-rows', before), 15000);
  assert.equal(await page.evaluate(() => document.activeElement.closest('#worker-rows tr')?.dataset.slot),
    await page.evaluate(() => document.querySelector('#worker-rows tr:last-child').dataset.slot));
});

test('a job deleted while its page is open: said once, and asked no more', async (t) => {
  const s = await new Server(['--workers', '1']).start();
  const id = await s.submit({ handler: 'echo', name: 'soon gone', tasks: [1] });
  await s.waitJob(id, 'succeeded');
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('#job-title >> text=soon gone');
  let asked = 0, polls = 0;
  page.on('request', (q) => {
    const p = new URL(q.url()).pathname;
    if (p === `/api/jobs/${id}`) asked++;
    if (p === '/api/progress') polls++;
  });
  await s.api('DELETE', `/api/jobs/${id}`);
  await page.waitForSelector(`#job-missing-text >> text=There is no job ${id}: it may have been deleted.`);
  assert.equal(await page.title(), 'No such job — batchd');
  // The poll goes on (two more rounds of it), the job is not asked again.
  const [seen, from] = [asked, polls];
  await until('two more polls', async () => polls >= from + 2, 15000);
  assert.equal(asked, seen, `the deleted job was asked ${asked - seen} more times`);
});

test("a late answer about the job left is not drawn on the next page", async (t) => {
  const s = await new Server(['--workers', '2']).start();
  // Two jobs that end alike (the same counts), each with its own chart.
  const a = await s.submit({ handler: 'echo', name: 'job left', tasks: [1, 2] });
  const b = await s.submit({ handler: 'echo', name: 'job shown', tasks: [3, 4] });
  await s.waitJob(a, 'succeeded');
  await s.waitJob(b, 'succeeded');
  const page = await open(t, s);
  await live(page);
  const charts = [];
  page.on('request', (q) => {
    const m = new URL(q.url()).pathname.match(/^\/api\/jobs\/(\d+)\/throughput$/);
    if (m) charts.push(Number(m[1]));
  });
  // Job a's tasks come late, after the page went on to job b.
  const tasks = await holdOnce(page, `/api/jobs/${a}/tasks`);
  await page.evaluate((id) => { location.hash = `#/jobs/${id}`; }, a);
  await tasks.held;
  await page.evaluate((id) => { location.hash = `#/jobs/${id}`; }, b);
  tasks.release();
  await page.waitForSelector('#job-title >> text=job shown');
  // Job b's own chart, not job a's: job a's poll stops once it sees the
  // page moved on, and draws nothing more.
  await until(`job ${b}'s throughput fetched`, () => charts.includes(b), 10000);
  assert.deepEqual(charts, [b]);
  await until("job b's tasks listed", async () =>
    (await page.$$eval('.task-row', (els) => els.length)) === 2, 10000);
  // Leaving a job page while its job is on its way: the main page keeps
  // its own title.
  const job = await holdOnce(page, `/api/jobs/${a}`);
  await page.evaluate((id) => { location.hash = `#/jobs/${id}`; }, a);
  await job.held;
  await page.click('#job-back');
  await page.waitForSelector('#view-jobs', { state: 'visible' });
  job.release();
  await job.done;
  // Two polls after that answer, so that it had its chance to draw.
  for (let i = 0; i < 2; i++) await page.waitForResponse((r) => r.url().endsWith('/api/progress'));
  assert.equal(await page.title(), 'batchd');
});

test("a failing task's error, in the job's deep-linked detail", async (t) => {
  const s = await new Server(['--workers', '2']).start();
  await s.submit({ handler: 'fail', name: 'import invoices', tasks: [
    { message: 'disk on fire: /var/spool/invoices' }, { message: 'second failure' }] });
  await s.submit({ handler: 'echo', tasks: [1, 2, 3] });
  await s.waitJob(1, 'failed');
  const page = await open(t, s, { hash: '/#/jobs/1' });
  await live(page);
  await page.waitForSelector('#job-state.badge.failed');
  assert.match(await text(page, '#job-title'), /import invoices/);
  assert.equal(await page.getAttribute('#job-bar', 'aria-valuenow'), '100');
  await page.click('#task-filters .filter[data-state="failed"]');
  await page.waitForSelector('.task-row[data-index="0"][data-state="failed"]');
  assert.match(await text(page, '.task-row[data-index="0"] .msg'), /disk on fire/);
  await page.click('.task-row[data-index="0"]');
  await page.waitForSelector('#task-0-detail .kv.err pre');
  assert.equal(await text(page, '#task-0-detail .kv.err pre'), 'disk on fire: /var/spool/invoices');
  await screenshot(page, 'failed-task-error', { fullPage: true });
  // The other job's result, on click.
  await page.goto(`${s.url}/#/jobs/2`);
  await page.waitForSelector('#job-state.badge.succeeded');
  assert.deepEqual(await taskBlocks(page, 2), ['3', '3']);	// input, result
});

// Saves the file the click starts and reads it back as JSON lines.
async function downloaded(page, sel) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(sel)]);
  const file = await dl.path();
  assert.ok(file, `the download failed: ${await dl.failure()}`);
  const body = fs.readFileSync(file, 'utf8');
  assert.ok(body === '' || body.endsWith('\n'), 'the last line is whole');
  return { name: dl.suggestedFilename(), lines: body.split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

test("download a job's results, all or one state's", async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const tasks = [1, 2, { n: 3 }, 4, 5];
  const id = await s.submit({ handler: 'echo', name: 'to export', tasks });
  await s.waitJob(id, 'succeeded');
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('#job-state.badge.succeeded');
  assert.equal(await text(page, '#job-download'), 'Download results');
  const all = await downloaded(page, '#job-download');
  assert.equal(all.name, `batchd-job-${id}.jsonl`);
  assert.deepEqual(all.lines.map((l) => [l.index, l.state, l.result]),
    tasks.map((x, i) => [i, 'succeeded', x]));
  assert.ok(all.lines.every((l) => l.attempts === 1 && l.finished_at));
  // The filter picks the state: none failed here, so nothing to take.
  await page.click('#task-filters .filter[data-state="failed"]');
  await page.waitForSelector('#job-download[aria-disabled="true"]');
  assert.equal(await text(page, '#job-download'), 'Download 0 failed');
  await page.click('#task-filters .filter[data-state="succeeded"]');
  await page.waitForSelector('#job-download[aria-disabled="false"]');
  const ok = await downloaded(page, '#job-download');
  assert.equal(ok.name, `batchd-job-${id}-succeeded.jsonl`);
  assert.equal(ok.lines.length, 5);
  // A job of failures: the failed ones alone, with their errors.
  const bad = await s.submit({ handler: 'fail', name: 'half bad',
    tasks: [{ message: 'no such file: a.png' }, { message: 'no such file: b.png' }] });
  await s.waitJob(bad, 'failed');
  await page.goto(`${s.url}/#/jobs/${bad}`);
  await page.waitForSelector('#job-state.badge.failed');
  await page.click('#task-filters .filter[data-state="failed"]');
  await page.waitForSelector('#job-download >> text=Download 2 failed');
  const failed = await downloaded(page, '#job-download');
  assert.equal(failed.name, `batchd-job-${bad}-failed.jsonl`);
  assert.deepEqual(failed.lines.map((l) => [l.index, l.state, l.error]),
    [[0, 'failed', 'no such file: a.png'], [1, 'failed', 'no such file: b.png']]);
});

test('cancel a running job', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const id = await s.submit({ handler: 'sleep', name: 'long sleeps',
    tasks: Array.from({ length: 6 }, () => ({ ms: 120000, steps: 120 })) });
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('#job-state.badge.running');
  await page.waitForSelector('#running-list .run-item');
  // What the running tasks report of their own progress moves the job's
  // percentage and fills part of the running segment before any of them
  // finishes.
  await until('the job percentage to move', async () =>
    (await text(page, '#job-figs .fig.pct')) !== '0%');
  assert.equal(await text(page, '#job-figs .fig.count'), '0/6');
  assert.ok(Number(await page.getAttribute('#job-bar', 'aria-valuenow')) > 0);
  await until('the running segment to fill', () =>
    page.$eval('#job-bar .run-done', (e) => e.getBoundingClientRect().width > 0));
  await page.click('#job-cancel');
  await page.waitForSelector('#job-cancel.armed');
  await page.click('#job-cancel');
  await page.waitForSelector('#job-state.badge.cancelled');
  await page.waitForSelector('#job-figs .fig.cancelled:not([hidden])');
  assert.equal(await text(page, '#job-figs .fig.cancelled'), '6 cancelled');
  assert.ok(await page.isDisabled('#job-cancel'));
  assert.ok(!(await page.isDisabled('#job-retry')));
  await screenshot(page, 'cancelled');
  const j = await s.api('GET', `/api/jobs/${id}`);
  assert.equal(j.progress.cancelled, 6);
  // The two workers stopped their tasks and live on: the same two, idle,
  // each with the stopped task counted; none replaced, none crashed.
  await until('the same two workers to be idle again', () =>
    page.$$eval('#worker-rows tr', (rows) => rows.length === 2 && rows.every((r) =>
      ['1', '2'].includes(r.dataset.id) && r.classList.contains('w-idle') &&
      r.lastElementChild.textContent.trim() === '1')));
  assert.equal(await page.getAttribute('#workers-note', 'title'),
    'No worker replaced since the server started');
  assert.doesNotMatch(await page.textContent('#workers-note'), /crash/);
});

test('pause a job, then resume it', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const id = await s.submit({ handler: 'sleep', name: 'nightly export',
    tasks: Array.from({ length: 20 }, () => ({ ms: 600, steps: 6 })) });
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('#job-state.badge.running');
  assert.equal(await text(page, '#job-pause'), 'Pause');
  await page.click('#job-pause');
  await page.waitForSelector('#job-state.badge.paused');
  assert.equal(await text(page, '#job-pause'), 'Resume');
  assert.match(await text(page, '#job-action-msg'), /^Paused: /);
  // The running tasks finish; no other starts.
  await until('the running tasks to finish', async () =>
    (await s.api('GET', `/api/jobs/${id}`)).progress.running === 0);
  const held = await s.api('GET', `/api/jobs/${id}`);
  assert.equal(held.paused, true);
  assert.ok(held.progress.queued > 0);
  // Paused, it has no ETA.
  await page.waitForSelector('#job-figs .fig.eta >> text=ETA —');
  await screenshot(page, 'paused');
  await page.goto(`${s.url}/#/`);
  await page.waitForSelector(`${jobCard(id)} .badge.paused`);
  assert.equal(await text(page, `${jobCard(id)} .badge`), 'paused');
  // The header counts it as paused, not as running.
  await page.waitForSelector('#summary .chip.paused >> text=1 paused job');
  assert.equal(await page.$('#summary .chip.running'), null);
  await page.goto(`${s.url}/#/jobs/${id}`);
  await page.waitForSelector('#job-pause >> text=Resume');
  await page.click('#job-pause');
  await page.waitForSelector('#job-action-msg >> text=Resumed');
  await page.waitForSelector('#job-state.badge.succeeded', { timeout: 60000 });
  assert.ok(await page.isDisabled('#job-pause'));
  assert.equal(await text(page, '#job-pause'), 'Pause');
  const done = await s.api('GET', `/api/jobs/${id}`);
  assert.equal(done.progress.succeeded, 20);
  assert.equal(done.paused, false);
});

test('retry the failed tasks of a job', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const id = await s.submit({ handler: 'fail', name: 'flaky uploads', tasks: [{}, {}, {}] });
  await s.waitJob(id, 'failed');
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  await live(page);
  await page.waitForSelector('#job-state.badge.failed');
  await page.waitForSelector('.task-row[data-index="0"]');
  assert.equal(await text(page, '.task-row[data-index="0"] td:nth-child(3)'), '1');
  assert.match(await text(page, '#job-retry'), /Retry 3 failed/);
  await page.click('#job-retry');
  await page.waitForSelector('#job-action-msg >> text=queued again');
  // Each task ran once more: two attempts, failed again.
  await until('the retried tasks to run', async () => {
    const j = await s.api('GET', `/api/jobs/${id}/tasks`);
    return j.tasks.every((x) => x.attempts === 2 && x.state === 'failed');
  });
  await page.waitForSelector('.task-row[data-index="2"] td:nth-child(3) >> text=2');
  await page.waitForSelector('#job-state.badge.failed');
  await screenshot(page, 'retried');
});

test('a crashed worker is shown and replaced', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const page = await open(t, s);
  await live(page);
  await page.waitForSelector('#worker-rows tr[data-id="2"]');
  const before = await page.$$eval('#worker-rows tr', (rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(before.sort(), ['1', '2']);
  const id = await s.submit({ handler: 'crash', name: 'segfaulting plugin', tasks: [null] });
  await page.waitForSelector('#workers-note >> text=1 crash');
  await page.waitForSelector('#worker-rows tr[data-id="3"]');
  await page.waitForSelector('#worker-events .event >> text=replaced by #3');
  assert.match(await text(page, '#worker-events .event'), /Worker #[12] \(pid \d+\) exited; replaced by #3/);
  await screenshot(page, 'worker-crashed');
  await page.goto(`${s.url}/#/jobs/${id}`);
  await page.waitForSelector('.task-row[data-index="0"][data-state="failed"]');
  assert.match(await text(page, '.task-row[data-index="0"] .msg'), /killed by signal 11 \(SIGSEGV\)/);
});

test('connection lost: a banner, then recovery when the server is back', async (t) => {
  const s = await new Server(['--workers', '1']).start();
  await s.submit({ handler: 'echo', name: 'before the outage', tasks: [1] });
  await s.waitJob(1, 'succeeded');
  const page = await open(t, s);
  await live(page);
  await page.waitForSelector(jobCard(1));
  assert.ok(await page.isHidden('#conn-banner'));
  await s.stop();
  await page.waitForSelector('#conn-banner', { state: 'visible' });
  assert.match(await text(page, '#conn-banner'), /Connection lost — retrying/);
  await page.waitForSelector('#live[data-state="down"]');
  // What was known stays on the page.
  assert.ok(await page.isVisible(jobCard(1)));
  await screenshot(page, 'connection-lost');
  await s.start();	// the same port and database
  await page.waitForSelector('#conn-banner', { state: 'hidden' });
  await live(page);
  await s.submit({ handler: 'echo', name: 'after the outage', tasks: [1] });
  await page.waitForSelector(`${jobCard(2)} .badge.succeeded`);
  await screenshot(page, 'connection-restored');
});

test('with a token: the page asks for it once per session', async (t) => {
  const s = await new Server(['--workers', '1', '--token', 'open-sesame-42']).start();
  const page = await open(t, s);
  await page.waitForSelector('#token-dialog[open]');
  await screenshot(page, 'token-prompt');
  await page.fill('#token-input', 'not-the-token');
  await page.click('#token-go');
  await page.waitForSelector('#token-error:not([hidden])');
  assert.match(await text(page, '#token-error'), /wrong token/);
  await page.fill('#token-input', 'open-sesame-42');
  await page.click('#token-go');
  await page.waitForSelector('#token-dialog', { state: 'hidden' });
  await live(page);
  s.token = 'open-sesame-42';
  await s.submit({ handler: 'echo', name: 'with a token', tasks: [1, 2] });
  await page.waitForSelector(`${jobCard(1)} .badge.succeeded`);
  // Kept for the session: a reload does not ask again.
  await page.reload();
  await live(page);
  assert.ok(await page.isHidden('#token-dialog'));
  await page.waitForSelector(jobCard(1));
  // A link cannot carry the token: the page fetches the results with it
  // and offers the file once it is whole.
  await page.goto(`${s.url}/#/jobs/1`);
  await page.waitForSelector('#job-state.badge.succeeded');
  const got = await downloaded(page, '#job-download');
  assert.equal(got.name, 'batchd-job-1.jsonl');
  assert.deepEqual(got.lines.map((l) => l.result), [1, 2]);
  await page.waitForSelector('#job-action-msg >> text=Downloaded batchd-job-1.jsonl.');
  // The server gone: said, and no file offered.
  await s.stop();
  let offered = false;
  page.once('download', () => { offered = true; });
  await page.click('#job-download');
  await page.waitForSelector('#job-action-msg.err >> text=Download failed');
  assert.equal(offered, false);
});

test('a 100,000-task job pages without loading it whole', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  const tasks = '[' + Array.from({ length: 100000 }, (_, i) => String(i)).join(',') + ']';
  const id = await s.submit(`{"handler": "echo", "name": "one hundred thousand", "tasks": ${tasks}}`);
  const asked = [];
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.endsWith('/tasks')) asked.push(Number(u.searchParams.get('limit')));
  });
  await live(page);
  await page.waitForSelector('#pg-info >> text=of 100,000');
  assert.equal(await page.$$eval('.task-row', (r) => r.length), 50);
  await page.click('#pg-last');
  await page.waitForSelector('.task-row[data-index="99999"]');
  assert.equal(await page.getAttribute('.task-row:first-child', 'data-index'), '99950');
  assert.match(await text(page, '#pg-info'), /99,951–100,000 of 100,000 · page 2,000 of 2,000/);
  await page.fill('#pg-input', '1000');
  await page.click('#pg-jump button');
  await page.waitForSelector('.task-row[data-index="49950"]');
  await page.click('#pg-prev');
  await page.waitForSelector('.task-row[data-index="49900"]');
  await screenshot(page, 'large-job');
  assert.ok(asked.length > 0 && asked.every((n) => n > 0 && n <= 100), `limits asked: ${asked}`);
});

test('a deep page of a filter follows a running job by index, not by offset', async (t) => {
  const s = await new Server(['--workers', '1']).start();
  // 300 quick tasks, then slow ones: the job runs on with a deep page of
  // its succeeded tasks to follow.
  const tasks = [...Array(300).fill({ ms: 1 }), ...Array(20).fill({ ms: 3000 })];
  const id = await s.submit({ handler: 'sleep', name: 'long tail', tasks });
  await until('300 tasks done', async () => (await s.api('GET', `/api/jobs/${id}`)).progress.succeeded >= 300, 60000);
  const asked = [];
  const page = await open(t, s, { hash: `/#/jobs/${id}` });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname.endsWith('/tasks') && u.searchParams.get('state') === 'succeeded') asked.push(u.search);
  });
  await live(page);
  await page.click('#task-filters .filter[data-state="succeeded"]');
  await page.waitForSelector('#pg-info >> text=page 1 of');
  await page.click('#pg-next');
  await page.waitForSelector('.task-row[data-index="50"]');
  // The page is asked for by its offset once, then again from its first task.
  await until('the page asked for again from task 50', async () => asked.some((q) => /[?&]from=50(&|$)/.test(q)), 30000);
  assert.ok(asked.some((q) => /[?&]offset=50(&|$)/.test(q)), `asked: ${asked.join(' ')}`);
  assert.equal(await page.getAttribute('.task-row:first-child', 'data-index'), '50');
  assert.match(await text(page, '#pg-info'), /^51–100 of /);
  await s.api('POST', `/api/jobs/${id}/cancel`);
});

// ---- all jobs ----

const listIds = (page) => page.$$eval('#all-jobs .job', (els) => els.map((e) => Number(e.dataset.id)));
// ids from hi down to lo
const down = (hi, lo) => Array.from({ length: hi - lo + 1 }, (_, i) => hi - i);

// Waits until the All jobs list shows exactly these jobs, in this order.
async function listShows(page, ids, what) {
  let got;
  await until(what || `the list to show #${ids[0]}…#${ids.at(-1)}`, async () => {
    got = await listIds(page);
    return got.length === ids.length && got.every((id, i) => id === ids[i]);
  }, 30000).catch((e) => {
    throw new Error(`${e.message}; it shows ${JSON.stringify(got)}`);
  });
}

test('all jobs: every job a page at a time, newest first, older and newer, by state', async (t) => {
  const s = await new Server(['--workers', '2']).start();
  // 57 one-task jobs; two of them fail, one on each page.
  const failing = [3, 40];
  for (let id = 1; id <= 57; id++) {
    const got = failing.includes(id)
      ? await s.submit({ handler: 'fail', name: `broken import ${id}`, tasks: [{ message: 'bad row' }] })
      : await s.submit({ handler: 'noop', tasks: [null] });
    assert.equal(got, id);
  }
  await until('the 57 jobs to finish', async () => {
    const j = (await s.api('GET', '/api/progress')).totals.jobs;
    return j.succeeded === 55 && j.failed === 2;
  });
  const page = await open(t, s);
  await live(page);
  // The main page lists ten finished jobs, and the way to all of them.
  await page.waitForSelector(jobCard(57));
  assert.equal(await page.$$eval('#recent-jobs .job', (els) => els.length), 10);
  assert.equal(await text(page, '#all-jobs-link'), 'All jobs →');
  await page.click('#all-jobs-link');
  await page.waitForSelector('#view-all', { state: 'visible' });
  assert.equal(new URL(page.url()).hash, '#/jobs');
  assert.ok(await page.isHidden('#view-jobs'));
  // The first page: 50 jobs, the newest first, each a card like the main
  // page's, with a link to the job.
  await listShows(page, down(57, 8));
  const row = '#all-jobs .job[data-id="56"]';
  assert.equal(await text(page, `${row} .job-name`), 'noop job');
  assert.equal(await text(page, `${row} .badge`), 'succeeded');
  assert.equal(await text(page, `${row} .fig.count`), '1/1');
  assert.match(await text(page, `${row} .fig.elapsed`), /^took \d/);
  assert.match(await text(page, `${row} .fig.created`), /^created ([A-Z][a-z]+ \d+, )?\d\d:\d\d(:\d\d)?$/);
  assert.equal(await page.getAttribute(`${row} [role="progressbar"]`, 'aria-valuenow'), '100');
  assert.equal(await page.getAttribute(`${row} a.job-link`, 'href'), '#/jobs/56');
  assert.equal(await text(page, '#all-jobs .job[data-id="40"] .badge'), 'failed');
  assert.match(await text(page, '#all-info'), /^Page 1 · #57–#8$/);
  assert.ok(await page.isDisabled('#all-newer'));
  assert.ok(!(await page.isDisabled('#all-older')));
  await screenshot(page, 'all-jobs');
  // Older, from the keyboard: the rest, and nothing older than that (the
  // focus moves on to Newer).
  await page.focus('#all-older');
  await page.keyboard.press('Enter');
  await listShows(page, down(7, 1));
  await page.waitForSelector('#all-older:disabled');
  assert.ok(!(await page.isDisabled('#all-newer')));
  assert.equal(await page.evaluate(() => document.activeElement.id), 'all-newer');
  assert.match(await text(page, '#all-info'), /^Page 2 · #7–#1$/);
  assert.equal(await text(page, '#all-jobs .job[data-id="3"] .badge'), 'failed');
  // Newer: back to the first page.
  await page.keyboard.press('Enter');
  await listShows(page, down(57, 8));
  await page.waitForSelector('#all-newer:disabled');
  // The page is refreshed while shown, and stays where the user is: a
  // new job does not move page 2, and page 1 shows it run, then stop.
  await page.click('#all-older');
  await listShows(page, down(7, 1));
  const asked = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/api/jobs') asked.push(u.searchParams.get('cursor'));
  });
  const slow = await s.submit({ handler: 'sleep', name: 'slow one', tasks: [{ ms: 120000, steps: 120 }] });
  assert.equal(slow, 58);
  await until('page 2 to be fetched again twice', () => asked.filter((c) => c === '8').length >= 2);
  assert.deepEqual(await listIds(page), down(7, 1));
  assert.match(await text(page, '#all-info'), /^Page 2 /);
  await page.click('#all-newer');
  await listShows(page, down(58, 9));
  await page.waitForSelector('#all-jobs .job[data-id="58"] .badge.running');
  await s.api('POST', '/api/jobs/58/cancel');
  await page.waitForSelector('#all-jobs .job[data-id="58"] .badge.cancelled');
  // A row opens its job; back returns to the page it was on.
  await page.click('#all-older');
  await listShows(page, down(8, 1));
  await page.click('#all-jobs .job[data-id="3"] .job-link');
  await page.waitForSelector('#job-state.badge.failed');
  assert.equal(new URL(page.url()).hash, '#/jobs/3');
  assert.match(await text(page, '#job-title'), /broken import 3/);
  assert.equal(await text(page, '#job-back'), '← All jobs');
  await page.goBack();
  await page.waitForSelector('#view-all', { state: 'visible' });
  await listShows(page, down(8, 1));
  assert.match(await text(page, '#all-info'), /^Page 2 /);
  await page.goForward();
  await page.waitForSelector('#job-title >> text=broken import 3');
  await page.goBack();
  await listShows(page, down(8, 1));
  await page.goBack();	// the main page
  await page.waitForSelector('#view-jobs', { state: 'visible' });
  await page.goForward();
  await listShows(page, down(8, 1));
  // A reload keeps the page too.
  await page.reload();
  await live(page);
  await listShows(page, down(8, 1));
  // By state: the filter asks the server, from the newest.
  await page.click('#all-filters .filter[data-state="failed"]');
  await listShows(page, [40, 3]);
  assert.equal(await page.getAttribute('#all-filters .filter[data-state="failed"]', 'aria-pressed'), 'true');
  assert.equal(await text(page, '#all-filters .filter[data-state="failed"] .f-count'), '2');
  assert.ok(await page.isDisabled('#all-newer'));
  assert.ok(await page.isDisabled('#all-older'));
  const states = await page.$$eval('#all-jobs .job .badge', (els) => els.map((e) => e.textContent));
  assert.deepEqual(states, ['failed', 'failed']);
  await screenshot(page, 'all-jobs-failed');
  await page.click('#all-filters .filter[data-state="cancelled"]');
  await listShows(page, [58]);
  await page.click('#all-filters .filter[data-state="running"]');
  await page.waitForSelector('#all-empty:not([hidden])');
  assert.equal(await text(page, '#all-empty-title'), 'No running jobs');
  assert.deepEqual(await listIds(page), []);
  assert.ok(await page.isHidden('#all-pager'));
  await page.click('#all-filters .filter[data-state=""]');
  await listShows(page, down(58, 9));
  // At a phone's width, it fits.
  const phone = await open(t, s, { width: 390, height: 844, hash: '/#/jobs' });
  await live(phone);
  await listShows(phone, down(58, 9));
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width}px wide at a 390px viewport`);
  await screenshot(phone, 'phone-all-jobs');
});

test('all jobs: empty, go to a job by number, errors inline', async (t) => {
  const s = await new Server(['--workers', '1']).start();
  const page = await open(t, s, { hash: '/#/jobs' });
  await live(page);
  await page.waitForSelector('#all-empty:not([hidden])');
  assert.equal(await text(page, '#all-empty-title'), 'No jobs yet');
  assert.ok(await page.isHidden('#all-pager'));
  assert.equal(await page.title(), 'All jobs — batchd');
  // Go to job #: what is not a job id, and a job that is not there.
  const say = async (value) => {
    await page.fill('#goto-input', value);
    await page.press('#goto-input', 'Enter');
  };
  for (const bad of ['abc', '0', '-3', '1.5', '']) {
    await say(bad);
    await page.waitForSelector('#goto-msg >> text=A job id is a positive whole number');
    assert.equal(await page.getAttribute('#goto-input', 'aria-invalid'), 'true');
    assert.equal(new URL(page.url()).hash, '#/jobs');
  }
  await say('1');
  await page.waitForSelector('#goto-msg >> text=There is no job 1.');
  await page.fill('#goto-input', '2');	// typing clears the message
  await page.waitForSelector('#goto-msg:empty', { state: 'attached' });
  const id = await s.submit({ handler: 'echo', name: 'found by number', tasks: [1] });
  await say(`#${id}`);
  await page.waitForSelector('#job-title >> text=found by number');
  assert.equal(new URL(page.url()).hash, `#/jobs/${id}`);
  // The list's own errors are said on the page: a cursor the server
  // refuses (as a stale history entry might hold).
  await page.goBack();
  await listShows(page, [id]);
  await page.evaluate(() => history.replaceState({ jobs: { filter: '', cursors: ['not-a-cursor'] } }, ''));
  await page.reload();
  await live(page);
  await page.waitForSelector('#all-error >> text=Could not list the jobs: cursor must be');
  await screenshot(page, 'all-jobs-error');
  // The way back to the newest still works.
  await page.click('#all-newest');
  await listShows(page, [id]);
  assert.equal(await text(page, '#all-error'), '');
});

test('the dashboard with running jobs (README screenshot), phone and dark', async (t) => {
  const s = await new Server(['--workers', '4']).start();
  await s.submit({ handler: 'echo', name: 'resize March photos',
    tasks: Array.from({ length: 2000 }, (_, i) => ({ photo: i })) });
  await s.submit({ handler: 'fail', name: 'import invoices (bad credentials)', tasks: [{}, {}, {}] });
  const cancelled = await s.submit({ handler: 'sleep', name: 'old backfill',
    tasks: Array.from({ length: 40 }, () => ({ ms: 150 })) });
  await s.waitJob(2, 'failed');
  await until('the backfill to get going', async () =>
    (await s.api('GET', `/api/jobs/${cancelled}`)).progress.succeeded >= 12);
  await s.api('POST', `/api/jobs/${cancelled}/cancel`);
  // A job whose slow tasks time out: green, red and running together.
  const mixed = await s.submit({ handler: 'sleep', name: 'transcode lecture videos', timeout_s: 2.5,
    tasks: Array.from({ length: 400 }, (_, i) => (i % 9 === 4 ? { ms: 20000 } : { ms: 250 + (i * 37) % 300, steps: 5 })) });
  await until('the first job to use its workers', async () => {
    const j = await s.api('GET', `/api/jobs/${mixed}`);
    return j.progress.succeeded >= 30 && j.progress.failed >= 1;
  }, 120000);
  // A higher priority job takes the workers as they free up: both run.
  const urgent = await s.submit({ handler: 'sleep', name: 'score rows with model v7', priority: 5,
    tasks: Array.from({ length: 300 }, () => ({ ms: 600, steps: 6 })) });
  await s.submit({ handler: 'sleep', name: 'nightly thumbnails', tasks: Array.from({ length: 500 }, () => ({ ms: 500 })) });
  await until('both jobs to make progress', async () => {
    const j = await s.api('GET', `/api/jobs/${urgent}`);
    return j.progress.succeeded >= 16;
  }, 120000);
  const page = await open(t, s);
  await live(page);
  await page.waitForSelector(`${jobCard(urgent)} .badge.running`);
  await page.waitForSelector('#worker-rows .badge.busy');
  // Workers that live on collect handlers (echo, sleep, fail here) and
  // hundreds of tasks: their table still fits its panel.
  await page.waitForSelector('#worker-rows .w-handlers >> text=/,.*,/');
  const over = await page.$eval('table.workers', (t) => t.parentElement.scrollWidth - t.parentElement.clientWidth);
  assert.ok(over <= 0, `the workers table is ${over}px wider than its panel`);
  const png = await screenshot(page, 'dashboard');
  // The README's picture: refreshed by `make screenshot` (BATCHD_SCREENSHOT=1),
  // not by every test run, so that a run leaves the tree as it found it.
  if (process.env.BATCHD_SCREENSHOT === '1') {
    fs.mkdirSync(path.join(lib.ROOT, 'docs', 'img'), { recursive: true });
    fs.copyFileSync(png, path.join(lib.ROOT, 'docs', 'img', 'dashboard.png'));
  }
  await page.goto(`${s.url}/#/jobs/${mixed}`);
  await page.waitForSelector('#chart svg');
  await page.waitForSelector('.task-row');
  await screenshot(page, 'detail', { fullPage: true });

  // The same at a phone's width, and in the dark.
  const phone = await open(t, s, { width: 390, height: 844 });
  await live(phone);
  await phone.waitForSelector(jobCard(urgent));
  await screenshot(phone, 'phone');
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width}px wide at a 390px viewport`);
  await phone.goto(`${s.url}/#/jobs/${mixed}`);
  await phone.waitForSelector('#chart svg');
  await screenshot(phone, 'phone-detail');
  const dark = await open(t, s, { colorScheme: 'dark' });
  await live(dark);
  await dark.waitForSelector(jobCard(urgent));
  await screenshot(dark, 'dashboard-dark');
  await dark.goto(`${s.url}/#/jobs/${urgent}`);
  await dark.waitForSelector('#chart svg');
  await screenshot(dark, 'detail-dark');
});

// ---- the runner ----

async function runOne(tc, n) {
  const t = { cleanup: [], page: null, problems: [] };
  const started = Date.now();
  let error = null, timer;
  try {
    await Promise.race([
      tc.fn(t),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`test took longer than ${TEST_DEADLINE_MS / 1000} s`)), TEST_DEADLINE_MS);
      }),
    ]);
    if (t.page) {
      const csp = await t.page.evaluate(() => window.__csp || []);
      if (csp.length) throw new Error(`CSP violations: ${csp.join('; ')}`);
    }
    if (t.problems.length) throw new Error(t.problems.join('\n'));
  } catch (e) {
    error = e;
    if (t.page) {
      await screenshot(t.page, `FAILED-${n}`, { fullPage: true }).catch(() => {});
    }
  } finally {
    clearTimeout(timer);
  }
  for (const f of t.cleanup.reverse()) await f().catch(() => {});
  const stopErrors = await lib.stopServers();
  if (!error && stopErrors.length) error = stopErrors[0];
  lib.removeTemps();
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (error) {
    console.log(`not ok ${n} - ${tc.name} (${secs}s)`);
    console.log(String(error.stack || error).split('\n').map((l) => '    ' + l).join('\n'));
  } else {
    console.log(`ok ${n} - ${tc.name} (${secs}s)`);
  }
  return !error;
}

async function main() {
  const only = process.argv.slice(2);
  const chosen = only.length ? tests.filter((x) => only.some((o) => x.name.includes(o))) : tests;
  let passed = 0, failed = 0;
  if (!fs.existsSync(lib.BIN)) {
    console.log(`no batchd binary at ${lib.BIN} (build it with make test-build, or set BATCHD_BIN)`);
    console.log(`0 passed, ${chosen.length} failed`);
    process.exit(1);
  }
  for (const [i, tc] of chosen.entries()) {
    if (await runOne(tc, i + 1)) passed++;
    else failed++;
  }
  console.log(`screenshots: ${path.relative(process.cwd(), lib.ARTIFACTS) || lib.ARTIFACTS}/`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

process.on('SIGINT', () => {
  for (const x of [lib.stopServers]) x().finally(() => process.exit(130));
});

main().catch((e) => {
  console.error(e);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
