// What the browser tests share: starting the real batchd on an ephemeral
// port with a temporary directory, talking to its API, and starting
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// with a fresh profile. Waits are on conditions with deadlines, never on
// fixed sleeps. CommonJS and node >= 18 only.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = process.env.BATCHD_BIN || path.join(ROOT, 'build', 'asan', 'batchd');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, 'artifacts');
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

const temps = new Set();
const servers = new Set();

function tempDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.add(d);
  return d;
}

function removeTemps() {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
  temps.clear();
}

const nap = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn until it returns a truthy value (returned) or the deadline.
async function until(what, fn, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await nap(50);
  }
}

// A batchd process of the test's own. start() runs it (again, on the same
// database and port once it has one).
class Server {
  constructor(args = []) {
    this.args = args;
    this.dir = tempDir('batchd-browser-');
    this.db = path.join(this.dir, 'batchd.db');
    this.log = path.join(this.dir, 'server.log');
    this.port = 0;
    this.proc = null;
    this.token = null;
    servers.add(this);
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    const fd = fs.openSync(this.log, 'a');
    const before = fs.statSync(this.log).size;
    const env = {
      ...process.env,
      ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0:exitcode=23',
      UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=1',
    };
    this.proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${this.port}`, '--db', this.db, ...this.args], {
      stdio: ['ignore', fd, fd], env,
    });
    fs.closeSync(fd);
    const proc = this.proc;
    proc.exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
    let gone = null;
    proc.exited.then((r) => { gone = r; });
    const port = await until('batchd to listen', () => {
      if (gone) throw new Error(`batchd exited during start-up (${JSON.stringify(gone)}):\n${this.logTail()}`);
      const text = fs.readFileSync(this.log, 'utf8').slice(before);
      const m = text.match(/msg=listening addr=127\.0\.0\.1:(\d+)/);
      return m ? Number(m[1]) : 0;
    }, 30000).catch((e) => {
      if (!gone) proc.kill('SIGKILL');
      throw e;
    });
    this.port = port;
    return this;
  }

  // SIGTERM, then waits; a sanitizer report or any failure to exit
  // cleanly fails the test.
  async stop() {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    p.kill('SIGTERM');
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), 60000); });
    const r = await Promise.race([p.exited, late]);
    clearTimeout(timer);
    if (!r) {
      p.kill('SIGKILL');
      throw new Error('batchd did not stop within 60 s of SIGTERM');
    }
    if (r.code !== 0) throw new Error(`batchd exited with ${JSON.stringify(r)}:\n${this.logTail()}`);
  }

  kill() {
    if (this.proc) this.proc.kill('SIGKILL');
    this.proc = null;
  }

  logTail(n = 30) {
    try {
      return fs.readFileSync(this.log, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
    } catch {
      return '(no log)';
    }
  }

  // One API request: resolves to {status, body (parsed when JSON)}.
  request(method, p, body) {
    const data = body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = {};
    if (data != null) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(data);
    }
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.port, method, path: p, headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode, headers: res.headers, body: json, text });
        });
      });
      req.on('error', reject);
      req.setTimeout(30000, () => req.destroy(new Error(`${method} ${p}: no answer in 30 s`)));
      if (data != null) req.write(data);
      req.end();
    });
  }

  async api(method, p, body, want) {
    const r = await this.request(method, p, body);
    const ok = want ? r.status === want : r.status >= 200 && r.status < 300;
    if (!ok) throw new Error(`${method} ${p}: ${r.status} ${r.text}`);
    return r.body;
  }

  async submit(job) {
    return (await this.api('POST', '/api/jobs', job, 201)).id;
  }

  async waitJob(id, states, timeoutMs = 90000) {
    const want = states.split('|');
    return until(`job ${id} to be ${states}`, async () => {
      const j = await this.api('GET', `/api/jobs/${id}`);
      return want.includes(j.state) ? j : null;
    }, timeoutMs);
  }
}

async function stopServers() {
  const errors = [];
  for (const s of servers) {
    try {
      await s.stop();
    } catch (e) {
      errors.push(e);
    }
  }
  servers.clear();
  return errors;
}

// Headless Chromium with a fresh profile of its own.
async function browser({ width = 1280, height = 800, colorScheme = 'light' } = {}) {
  const { chromium } = require('playwright-core');
  const profile = tempDir('batchd-chromium-');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width, height },
    colorScheme,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
  ctx.setDefaultTimeout(60000);
  return ctx;
}

async function screenshot(page, name, opts = {}) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, ...opts });
  return file;
}

module.exports = {
  ROOT, BIN, CHROMIUM, ARTIFACTS, Server, browser, screenshot, until, nap,
  tempDir, removeTemps, stopServers,
};
