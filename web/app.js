// batchd's dashboard: polls GET /api/progress about once a second (with
// If-None-Match, so an idle page costs a 304), draws a bar per job, the
// workers, every job a page at a time at #/jobs, and a job's detail at
// #/jobs/{id}. Plain DOM, no framework:
// elements are built once and updated in place, and every text from the
// server goes in through textContent, never as HTML.

import * as api from './api.js';
import * as fmt from './fmt.js';
import { draw as drawChart } from './chart.js';

const POLL_MS = 1000;          // visible tab
const POLL_HIDDEN_MS = 10000;  // hidden tab: slow down
const RETRY_MS = [1000, 2000, 3000, 5000];  // while the server is unreachable
const PAGE = 50;               // task table rows and job list rows per page
const LIST_STALE_MS = 15000;   // the job list is fetched again at least this often
const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const TEMPLATES = {
  sleep: '{"ms": 1500, "steps": 10}',
  cpu: '{"ms": 500, "steps": 5}',
  echo: '{"n": {{i}}}',
  fail: '{"message": "task {{i}} failed"}',
  noop: 'null',
  counter: 'null',
  crash: 'null',
};

const $ = (id) => document.getElementById(id);

// Builds an element: h('a', {href: '#/', class: 'x'}, 'text', child...)
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c != null && c !== false) el.append(c);
  return el;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

const app = {
  progress: null,
  etag: null,
  offset: 0,          // server clock minus ours, ms
  online: null,
  failures: 0,
  retryAt: 0,
  lastOk: 0,
  timer: 0,
  busy: false,
  again: false,
  waitingToken: false,
  route: { view: 'jobs' },
  workerSeen: new Map(),   // slot -> {id, pid}
  events: [],
  handlers: null,
  limits: null,      // what a submission may be (GET /api/handlers)
  jobCards: new Map(),     // id -> card element
};

const serverNow = () => Date.now() + app.offset;

// ---- the poll loop ----

function schedule() {
  clearTimeout(app.timer);
  if (app.waitingToken) return;
  let delay;
  if (app.online === false) {
    delay = RETRY_MS[Math.min(app.failures - 1, RETRY_MS.length - 1)];
    app.retryAt = Date.now() + delay;
    showRetry();
  } else {
    delay = document.hidden ? POLL_HIDDEN_MS : POLL_MS;
  }
  app.timer = setTimeout(tick, delay);
}

async function tick() {
  if (app.busy) {
    app.again = true;
    return;
  }
  app.busy = true;
  clearTimeout(app.timer);
  try {
    const changed = await pollProgress();
    if (app.route.view === 'job') await pollJob();
    if (app.route.view === 'all') await pollList(changed);
    setOnline(true);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 401) {
      askToken(e.message);
    } else if (e instanceof api.NetworkError || (e instanceof api.ApiError && e.status >= 502)) {
      setOnline(false, e.message);
    } else {
      console.error(e);
    }
  } finally {
    app.busy = false;
  }
  if (app.again) {
    app.again = false;
    return tick();
  }
  schedule();
}

// Resolves to whether anything changed since the last poll.
async function pollProgress() {
  const r = await api.get('/api/progress', { etag: app.etag });
  if (r.status === 304) return false;
  app.etag = r.etag;
  app.progress = r.data;
  if (r.data.time) app.offset = Date.parse(r.data.time) - Date.now();
  renderProgress();
  return true;
}

function setOnline(ok, why) {
  const was = app.online;
  app.online = ok;
  if (ok) {
    app.failures = 0;
    app.lastOk = Date.now();
  } else {
    app.failures++;
  }
  $('conn-banner').hidden = ok;
  const live = $('live');
  live.dataset.state = ok ? (document.hidden ? 'paused' : 'live') : 'down';
  setText(live.querySelector('.live-text'), ok ? (document.hidden ? 'Paused' : 'Live') : 'Offline');
  if (!ok) live.title = why || 'unreachable';
  else live.title = 'Live updates every second';
  if (ok && was === false) toast('Connection restored');
}

function showRetry() {
  const left = Math.max(0, Math.ceil((app.retryAt - Date.now()) / 1000));
  const last = app.lastOk ? ` · last update ${fmt.ago(new Date(app.lastOk).toISOString())}` : '';
  setText($('conn-detail'), `(attempt ${app.failures}; next in ${left}s${last})`);
}

setInterval(() => {
  if (app.online === false) showRetry();
}, 500);

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) tick();
  else if (app.online) setOnline(true);
});

// ---- the token ----

function askToken(message) {
  app.waitingToken = true;
  $('live').dataset.state = 'locked';
  setText($('live').querySelector('.live-text'), 'Token needed');
  const d = $('token-dialog');
  const err = $('token-error');
  const had = api.token();
  err.hidden = !had;
  setText(err, had ? `The server refused this token: ${message}` : '');
  if (!d.open) d.showModal();
  $('token-input').focus();
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const v = $('token-input').value.trim();
  if (!v) {
    $('token-error').hidden = false;
    setText($('token-error'), 'Enter the token.');
    return;
  }
  api.setToken(v);
  $('token-dialog').close();
  $('token-input').value = '';
  app.waitingToken = false;
  app.etag = null;
  tick();
});
$('token-dialog').addEventListener('cancel', (ev) => ev.preventDefault());

// ---- toasts ----

function toast(text) {
  let box = document.querySelector('.toasts');
  if (!box) {
    box = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = h('div', { class: 'toast' }, text);
  box.append(t);
  setTimeout(() => t.remove(), 3500);
}

// ---- bars ----

function makeBar(big) {
  return h('div', {
    class: big ? 'bar big' : 'bar', role: 'progressbar',
    'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0,
  },
  h('span', { class: 'seg ok' }), h('span', { class: 'seg fail' }),
  h('span', { class: 'seg run' }, h('span', { class: 'run-done' })),
  h('span', { class: 'seg cancel' }));
}

function finished(p) {
  return p.succeeded + p.failed + p.cancelled;
}

// How much of a job is done, from 0 to 1: its finished tasks and the
// progress its running tasks report (a job of a few long tasks moves
// before one of them finishes); never 1 before the end.
function workFraction(p) {
  const done = finished(p);
  if (!p.total) return 0;
  const f = (done + Math.max(0, p.running_progress || 0)) / p.total;
  return done < p.total ? Math.min(f, 0.999) : 1;
}

function updateBar(bar, p, label) {
  const total = p.total || 0;
  const w = (n) => (total ? (n / total) * 100 : 0).toFixed(3) + '%';
  const segs = bar.children;
  segs[0].style.width = w(p.succeeded);
  segs[1].style.width = w(p.failed);
  segs[2].style.width = w(p.running);
  segs[2].firstChild.style.width = p.running
    ? (Math.min(1, Math.max(0, p.running_progress || 0) / p.running) * 100).toFixed(1) + '%' : '0%';
  segs[3].style.width = w(p.cancelled);
  const done = finished(p);
  const now = Math.floor(workFraction(p) * 1000) / 10;
  bar.setAttribute('aria-valuenow', String(now));
  bar.setAttribute('aria-label', label);
  const parts = [`${fmt.int(done)} of ${fmt.int(total)} tasks finished`];
  if (p.failed) parts.push(`${fmt.int(p.failed)} failed`);
  if (p.cancelled) parts.push(`${fmt.int(p.cancelled)} cancelled`);
  if (p.running) parts.push(`${fmt.int(p.running)} running`);
  bar.setAttribute('aria-valuetext', parts.join(', '));
}

function jobTitle(j) {
  return j.name || `${j.handler} job`;
}

// Elapsed seconds: to now while active, to the finish when finished; for
// a job that has not started, the time it has waited.
function elapsed(j) {
  const start = Date.parse(j.started_at || j.created_at);
  const end = j.finished_at ? Date.parse(j.finished_at) : serverNow();
  return Math.max(0, (end - start) / 1000);
}

function isActive(j) {
  return j.state === 'queued' || j.state === 'running';
}

// The figures a tqdm bar shows, as spans: done/total, percent, rate,
// elapsed, ETA; then failures.
function figures(j, fig) {
  const p = j.progress;
  const done = finished(p);
  const active = isActive(j);
  setText(fig.count.firstChild, fmt.int(done));
  setText(fig.count.lastChild, '/' + fmt.int(p.total));
  setText(fig.pct, fmt.percent(workFraction(p)));
  setText(fig.rate, fmt.rate(p.rate));
  fig.rate.title = active ? 'Tasks per second, over the last 10 seconds' : 'Average tasks per second';
  // A finished job's time to the millisecond: "took 14ms" is what makes
  // sense of a short job's rate of thousands a second.
  setText(fig.elapsed.lastChild, fmt.duration(elapsed(j), { ms: !active }));
  setText(fig.elapsedKey, j.started_at ? (active ? 'elapsed' : 'took') : 'waiting');
  const eta = active ? (p.eta_s == null ? '—' : fmt.duration(p.eta_s)) : null;
  fig.eta.hidden = eta == null;
  if (eta != null) setText(fig.eta.lastChild, eta);
  fig.failed.hidden = !p.failed;
  setText(fig.failed, `${fmt.int(p.failed)} failed`);
  fig.cancelled.hidden = !p.cancelled;
  setText(fig.cancelled, `${fmt.int(p.cancelled)} cancelled`);
}

function makeFigures(big) {
  const count = h('span', { class: 'fig count' }, h('b'), h('span'));
  const pct = h('span', { class: 'fig pct' });
  const rate = h('span', { class: 'fig rate' });
  const elapsedKey = h('span', { class: 'k' });
  const el = h('span', { class: 'fig elapsed' }, elapsedKey, ' ', h('span'));
  const eta = h('span', { class: 'fig eta' }, h('span', { class: 'k' }, 'ETA'), ' ', h('span'));
  const failed = h('span', { class: 'fig failed' });
  const cancelled = h('span', { class: 'fig cancelled' });
  const root = h('div', { class: big ? 'figs big' : 'figs' }, count, pct, rate, el, eta, failed, cancelled);
  return { root, count, pct, rate, elapsed: el, elapsedKey, eta, failed, cancelled };
}

// What a job's badge says: a paused job is still queued or running to
// the API, but what matters is that nothing of it starts.
function shownState(j) {
  return j.paused && isActive(j) ? 'paused' : j.state;
}

function badge(el, state) {
  el.className = 'badge ' + state;
  setText(el, state);
}

// ---- the job list ----

// A job's card, kept in cards (id -> element) and updated in place. With
// created, its figures end with the time it was submitted.
function jobCard(j, cards = app.jobCards, created = false) {
  let c = cards.get(j.id);
  if (!c) {
    const link = h('a', { class: 'job-link', href: `#/jobs/${j.id}` });
    const bar = makeBar(false);
    const fig = makeFigures(false);
    const state = h('span', { class: 'badge' });
    c = h('article', { class: 'job', dataset: { id: j.id } },
      h('div', { class: 'job-top' },
        h('span', { class: 'job-id' }, '#' + j.id),
        h('h3', { class: 'job-name' }, link),
        h('span', { class: 'job-handler' }),
        state),
      bar, fig.root);
    c._parts = { link, bar, fig, state, handler: c.querySelector('.job-handler') };
    if (created) {
      c._parts.created = h('span', { class: 'fig created' }, h('span', { class: 'k' }, 'created'), ' ', h('span'));
      fig.root.append(c._parts.created);
    }
    cards.set(j.id, c);
  }
  const parts = c._parts;
  setText(parts.link, jobTitle(j));
  setText(parts.handler, j.name ? j.handler : '');
  parts.handler.hidden = !j.name;
  badge(parts.state, shownState(j));
  c.dataset.state = j.state;
  if (parts.created) {
    setText(parts.created.lastChild, fmt.clock(j.created_at, serverNow()));
    parts.created.title = new Date(j.created_at).toLocaleString();
  }
  if (cards === app.jobCards && app.highlight === j.id) {
    app.highlight = 0;
    c.classList.add('new');
  }
  updateBar(parts.bar, j.progress, `Job ${j.id} progress`);
  figures(j, parts.fig);
  return c;
}

function placeCards(container, cards) {
  // Moves only what is out of place, so the list does not flicker.
  cards.forEach((c, i) => {
    if (container.children[i] !== c) container.insertBefore(c, container.children[i] || null);
  });
  while (container.children.length > cards.length) container.lastChild.remove();
}

function renderJobs() {
  const p = app.progress;
  const active = [], recent = [];
  for (const j of p.jobs) (isActive(j) ? active : recent).push(j);
  const keep = new Set(p.jobs.map((j) => j.id));
  for (const id of app.jobCards.keys()) if (!keep.has(id)) app.jobCards.delete(id);
  placeCards($('active-jobs'), active.map((j) => jobCard(j)));
  placeCards($('recent-jobs'), recent.map((j) => jobCard(j)));
  $('recent-title').hidden = !recent.length;
  $('jobs-empty').hidden = p.jobs.length > 0;
  $('active-title').hidden = !p.jobs.length;
  setText($('active-title'), active.length ? `Active · ${active.length}` : 'Active');
  $('active-none').hidden = active.length > 0 || !p.jobs.length;
  const more = p.totals.active_not_listed || 0;
  $('active-more').hidden = !more;
  setText($('active-more'), `…and ${fmt.int(more)} more active jobs (lower priority) not shown.`);
}

function renderSummary() {
  const t = app.progress.totals;
  // A paused job is queued or running to the API; here it is paused.
  const paused = t.paused_jobs || 0;
  const pausedRunning = app.progress.jobs.filter((j) => j.paused && j.state === 'running').length;
  const chips = [
    [t.jobs.running - Math.min(pausedRunning, t.jobs.running), 'running', 'job'],
    [Math.max(0, t.jobs.queued - (paused - pausedRunning)), 'queued', 'job'],
    [paused, 'paused', 'job'],
  ];
  const box = $('summary');
  const items = [];
  for (const [n, what, unit] of chips) {
    if (n) items.push(h('span', { class: 'chip ' + what }, h('b', {}, fmt.int(n)), ` ${what} ${unit}${n === 1 ? '' : 's'}`));
  }
  const queuedTasks = t.tasks.queued;
  items.push(h('span', { class: 'chip' }, h('b', {}, fmt.rate(t.rate)), ' throughput'));
  if (queuedTasks) items.push(h('span', { class: 'chip' }, h('b', {}, fmt.compact(queuedTasks)), ' tasks waiting'));
  items.push(h('span', { class: 'chip' }, h('b', {}, `${t.workers.busy}/${t.workers.total}`), ' workers busy'));
  box.replaceChildren(...items);
  const running = t.jobs.running + t.jobs.queued;
  if (app.route.view === 'jobs') document.title = running ? `(${running}) batchd` : 'batchd';
}

// ---- workers ----

// The rows of the task and worker tables are built anew at each change,
// every second while jobs run, and the focused control with them: keyboard
// and screen-reader users would be thrown back to the top of the page.
// redraw() is run keeping the focus on the same control of the same row
// (a task's index, a worker's slot, a detail row's id) when it was there.
function rowKey(tr) {
  return tr.dataset.index ?? tr.dataset.slot ?? tr.id;
}

function focusables(tr) {
  return [...tr.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')];
}

function keepFocus(box, redraw) {
  const a = document.activeElement;
  const tr = a && a !== document.body && box.contains(a) ? a.closest('tr') : null;
  const key = tr && { row: rowKey(tr), i: focusables(tr).indexOf(a) };
  redraw();
  if (!key || key.i < 0 || box.contains(document.activeElement)) return;
  for (const row of box.querySelectorAll('tr')) {
    if (rowKey(row) !== key.row) continue;
    const el = focusables(row)[key.i];
    if (el) el.focus({ preventScroll: true });
    return;
  }
}

function renderWorkers() {
  const p = app.progress;
  const now = serverNow();
  const rows = [];
  for (const w of p.workers) {
    // A slot whose worker id changed lost its worker: note it, and name
    // the replacement once it is there (a poll may see the empty slot).
    const seen = app.workerSeen.get(w.slot);
    if (seen && seen.id && seen.id !== w.id) {
      const ev = { at: now, slot: w.slot, old: seen.id, pid: seen.pid, by: w.id };
      app.events.unshift(ev);
      if (!w.id) seen.waiting = ev;
    } else if (seen && !seen.id && w.id && seen.waiting) {
      seen.waiting.by = w.id;
    }
    if (w.id || !seen) app.workerSeen.set(w.slot, { id: w.id, pid: w.pid });
    else seen.id = null;
    const cur = w.job != null
      ? h('div', { class: 'cur' },
        h('a', { href: `#/jobs/${w.job}` }, `job ${w.job} · task ${w.task}`),
        miniBar(w.progress))
      : h('span', { class: 'muted' }, '—');
    rows.push(h('tr', { dataset: { slot: w.slot, id: w.id ?? '' }, class: 'w-' + w.state },
      h('td', {},
        h('div', { class: 'w-id' }, w.id != null ? `#${w.id}` : `slot ${w.slot}`),
        h('div', { class: 'w-sub' }, w.pid ? `pid ${w.pid}` : 'no process'),
        w.handlers.length ? h('div', { class: 'w-sub w-handlers', title: 'Handlers initialized in this worker' },
          w.handlers.join(', ')) : null),
      h('td', {}, h('span', { class: 'badge ' + w.state }, w.state)),
      h('td', {}, cur),
      h('td', { class: 'num' }, fmt.int(w.tasks_done))));
  }
  keepFocus($('worker-rows'), () => $('worker-rows').replaceChildren(...rows));
  app.events.splice(5);
  const t = p.totals.workers;
  // Crashes are news; the workers batchd replaces itself (a cancelled or
  // timed-out task takes its worker along) are only in the tooltip.
  const crashes = t.crashes || 0;
  const note = $('workers-note');
  setText(note, `${t.busy}/${t.total} busy` +
    (crashes ? ` · ${fmt.int(crashes)} crash${crashes === 1 ? '' : 'es'}` : ''));
  note.title = t.restarts
    ? `${fmt.int(t.restarts)} worker${t.restarts === 1 ? '' : 's'} replaced since the server started: ` +
      `${fmt.int(crashes)} crashed, the others stopped by batchd (a cancelled or timed-out task, ` +
      'the memory limit, recycling)'
    : 'No worker replaced since the server started';
  $('worker-events').replaceChildren(...app.events.map((e) => h('li', { class: 'event' },
    h('span', { class: 'ev-dot', 'aria-hidden': 'true' }),
    h('span', {}, `Worker #${e.old}${e.pid ? ` (pid ${e.pid})` : ''} exited`,
      e.by ? `; replaced by #${e.by}` : '; being replaced',
      h('span', { class: 'muted' }, ` · ${fmt.clock(new Date(e.at).toISOString())}`)))));
}

function miniBar(progress, state = 'running') {
  const known = progress != null && progress >= 0;
  const fill = h('span', { class: 'fill' });
  if (known) fill.style.width = (Math.min(progress, 1) * 100).toFixed(1) + '%';
  return h('span', {
    class: (known ? 'mini ' : 'mini indeterminate ') + state, role: 'progressbar',
    'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': known ? String(Math.round(progress * 1000) / 10) : null,
    'aria-label': 'Task progress',
  }, fill);
}

function renderProgress() {
  renderSummary();
  renderJobs();
  renderWorkers();
  renderListFilters();
}

// ---- all jobs ----

// Every job, newest first, a page at a time from GET /api/jobs, which pages
// with a cursor: Older follows the page's next, and the cursors of the
// pages on the way are kept here, so that Newer goes back. The filter and
// the cursors are kept in the history entry too: back, forward and a
// reload return to the same page.
const list = {
  filter: '',
  cursors: [],        // the cursor of each page after the first, oldest last
  key: '',            // the page shown: filter/cursor
  at: 0,              // when it was fetched (Date.now())
  page: null,         // {jobs, next}, as the API answered
  cards: new Map(),   // id -> card element
  toTop: false,
};

const listKey = () => `${list.filter}/${list.cursors.at(-1) || ''}`;

// Keeps what a route comes back to in its history entry.
function saveState(patch) {
  history.replaceState({ ...(history.state || {}), ...patch }, '');
}

function saveList() {
  saveState({ jobs: { filter: list.filter, cursors: list.cursors } });
}

// The page the history entry was on, if it has one; else the last one.
function restoreList() {
  const saved = history.state && history.state.jobs;
  if (saved && Array.isArray(saved.cursors)) {
    list.filter = STATES.includes(saved.filter) ? saved.filter : '';
    list.cursors = saved.cursors.map(String);
  }
  saveList();
}

function goList(filter, cursors) {
  list.filter = filter;
  list.cursors = cursors;
  list.toTop = true;
  list.at = 0;          // fetched even when it is the page shown
  saveList();
  renderListFilters();
  $('all-jobs').setAttribute('aria-busy', 'true');
  tick();
}

async function pollList(changed) {
  const key = listKey();
  // Nothing changed (the progress poll said so): the page shown holds.
  if (key === list.key && !changed && Date.now() - list.at < LIST_STALE_MS) return;
  const q = new URLSearchParams({ limit: PAGE });
  if (list.filter) q.set('state', list.filter);
  if (list.cursors.length) q.set('cursor', list.cursors.at(-1));
  let r;
  try {
    r = await api.get(`/api/jobs?${q}`);
  } catch (e) {
    // Refused: said here. Unreachable, or the token: as for the rest.
    if (!(e instanceof api.ApiError) || e.status === 401 || e.status >= 502) throw e;
    if (key !== listKey()) return;
    setText($('all-error'), `Could not list the jobs: ${e.message}`);
    $('all-jobs').setAttribute('aria-busy', 'false');
    if (list.key !== key) {
      clearList();
      renderPager(null);
    }
    return;
  }
  if (key !== listKey() || app.route.view !== 'all') return;
  // Past the end (the filter's jobs moved on): a page newer.
  if (!r.data.jobs.length && list.cursors.length) {
    list.cursors.pop();
    saveList();
    return pollList(true);
  }
  Object.assign(list, { key, at: Date.now(), page: r.data });
  setText($('all-error'), '');
  renderList();
  if (list.toTop) {
    list.toTop = false;
    window.scrollTo(0, 0);
  }
}

// No page shown (rather than another one than asked for).
function clearList() {
  Object.assign(list, { key: '', page: null });
  list.cards.clear();
  $('all-jobs').replaceChildren();
  $('all-jobs').setAttribute('aria-busy', 'false');
  $('all-empty').hidden = true;
  $('all-pager').hidden = true;
}

function renderList() {
  const jobs = list.page.jobs;
  const box = $('all-jobs');
  box.setAttribute('aria-busy', 'false');
  const keep = new Set(jobs.map((j) => j.id));
  for (const id of list.cards.keys()) if (!keep.has(id)) list.cards.delete(id);
  placeCards(box, jobs.map((j) => jobCard(j, list.cards, true)));
  $('all-empty').hidden = jobs.length > 0;
  setText($('all-empty-title'), list.filter ? `No ${list.filter} jobs` : 'No jobs yet');
  $('all-empty-text').hidden = Boolean(list.filter);
  renderPager(list.page);
}

// The pager under a page ({jobs, next}), or under none when it could not
// be loaded: then only newer pages are there to go to.
function renderPager(pg) {
  const n = list.cursors.length + 1;
  const jobs = pg ? pg.jobs : [];
  $('all-pager').hidden = Boolean(pg) && !jobs.length && n === 1;
  setText($('all-info'), jobs.length ? `Page ${fmt.int(n)} · #${jobs[0].id}–#${jobs.at(-1).id}` : `Page ${fmt.int(n)}`);
  const focused = document.activeElement;
  $('all-newest').disabled = $('all-newer').disabled = n === 1;
  $('all-older').disabled = !(pg && pg.next);
  // A button that went off under the keyboard hands the focus on.
  if (focused && focused.disabled && $('all-pager').contains(focused)) {
    const other = ['all-older', 'all-newer'].map($).find((b) => !b.disabled);
    if (other) other.focus();
  }
}

function renderListFilters() {
  const box = $('all-filters');
  if (!box.children.length) {
    for (const s of ['', ...STATES]) {
      box.append(h('button', {
        type: 'button', class: 'filter', dataset: { state: s },
        onclick: () => goList(s, []),
      }, h('span', { class: 'f-name' }, s || 'all'), ' ', h('span', { class: 'f-count' })));
    }
  }
  // The counts of the header's totals: every job, by state.
  const t = app.progress && app.progress.totals.jobs;
  for (const b of box.children) {
    const s = b.dataset.state;
    const n = !t ? null : s ? t[s] : STATES.reduce((sum, x) => sum + (t[x] || 0), 0);
    setText(b.querySelector('.f-count'), n == null ? '' : fmt.compact(n || 0));
    b.setAttribute('aria-pressed', String(s === list.filter));
  }
}

$('all-newest').addEventListener('click', () => goList(list.filter, []));
$('all-newer').addEventListener('click', () => {
  if (list.cursors.length) goList(list.filter, list.cursors.slice(0, -1));
});
// Older follows the page shown: not while another one loads.
$('all-older').addEventListener('click', () => {
  if (list.key === listKey() && list.page && list.page.next) {
    goList(list.filter, [...list.cursors, String(list.page.next)]);
  }
});
// From the main page, the list starts at the newest.
$('all-jobs-link').addEventListener('click', () => {
  list.filter = '';
  list.cursors = [];
});

function gotoSay(text) {
  setText($('goto-msg'), text);
  $('goto-input').setAttribute('aria-invalid', String(Boolean(text)));
}

// Go to job #N: checked with GET /api/jobs/{id} before the page changes.
$('goto-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('goto-input');
  const raw = input.value.trim().replace(/^#\s*/, '');
  const id = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(Number.isSafeInteger(id) && id >= 1)) {
    gotoSay('A job id is a positive whole number, like 42.');
    input.focus();
    return;
  }
  const go = $('goto-go');
  go.disabled = true;
  try {
    await api.get(`/api/jobs/${id}`);
    gotoSay('');
    input.value = '';
    location.hash = `#/jobs/${id}`;
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 401) askToken(e.message);
    else if (e instanceof api.ApiError && e.status === 404) gotoSay(`There is no job ${id}.`);
    else gotoSay(e instanceof api.NetworkError ? `The server is unreachable: ${e.message}` : e.message);
    input.focus();
  } finally {
    go.disabled = false;
  }
});
$('goto-input').addEventListener('input', () => gotoSay(''));

// ---- the job detail ----

const detail = {
  id: 0,
  job: null,
  filter: '',
  offset: 0,
  downloading: false,
  tasksKey: '',
  tasksText: '',       // the task page last drawn, as the API answered it
  tasks: null,
  open: new Map(),     // task index -> fetched task (with input), or null while loading
  sig: '',
  chartAt: 0,
  chartJob: null,
  chartData: null,
  figs: makeFigures(true),
  confirmTimer: 0,
  from: 'jobs',        // the list it was opened from: 'jobs' or 'all'
};
$('job-figs').replaceWith(detail.figs.root);
detail.figs.root.id = 'job-figs';
{
  const bar = makeBar(true);
  bar.id = 'job-bar';
  $('job-bar').replaceWith(bar);
}

function resetDetail(id) {
  Object.assign(detail, {
    id, job: null, filter: '', offset: 0, tasksKey: '', tasksText: '', tasks: null, sig: '',
    chartAt: 0, chartJob: null, chartData: null, missing: false,
  });
  detail.open = new Map();
  $('job-detail').hidden = true;
  $('job-missing').hidden = true;
  setText($('job-action-msg'), '');
  $('chart').replaceChildren();
  $('task-rows').replaceChildren();
  disarmCancel();
}

// Whether the page moved on from job id while an answer about it was on
// its way: to another job, or off the job pages (where the answer would
// draw the old job into the new detail, or set the old job's title).
function leftJob(id) {
  return app.route.view !== 'job' || id !== detail.id;
}

async function pollJob() {
  const id = detail.id;
  let r;
  // A job that is not there never comes back (ids are not reused): it is
  // asked once, not every second for as long as the page stays open.
  if (detail.missing) return;
  try {
    r = await api.get(`/api/jobs/${id}`);
  } catch (e) {
    if (e instanceof api.ApiError && e.status === 404) {
      if (leftJob(id)) return;
      detail.missing = true;
      $('job-detail').hidden = true;
      $('job-missing').hidden = false;
      setText($('job-missing-text'), `There is no job ${id}: it may have been deleted.`);
      document.title = 'No such job — batchd';
      return;
    }
    throw e;
  }
  if (leftJob(id)) return;
  const j = r.data;
  detail.job = j;
  renderJob(j);
  const p = j.progress;
  const sig = [j.state, p.succeeded, p.failed, p.cancelled, p.running].join('/');
  const changed = sig !== detail.sig;
  detail.sig = sig;
  const active = isActive(j);
  const key = `${detail.filter}/${detail.offset}`;
  if (changed || active || key !== detail.tasksKey) await loadTasks();
  if (leftJob(id)) return;
  await loadRunning(active);
  if (leftJob(id)) return;
  // After loadRunning, not in it: the poll that sees the job end is the
  // one that brings its last tasks' results.
  refreshStaleOpen();
  const now = Date.now();
  if (detail.chartJob !== sig && (!active || now - detail.chartAt > 3000 || !detail.chartData)) {
    detail.chartAt = now;
    detail.chartJob = active ? null : sig;
    const t = await api.get(`/api/jobs/${id}/throughput`);
    if (leftJob(id)) return;
    detail.chartData = t.data;
    renderChart();
  }
}

function renderChart() {
  if (!detail.chartData) return;
  setText($('chart-note'), drawChart($('chart'), detail.chartData));
}

let resizeTimer = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(renderChart, 150);
});

function renderJob(j) {
  $('job-detail').hidden = false;
  $('job-missing').hidden = true;
  const title = $('job-title');
  title.replaceChildren(h('span', { class: 'job-id' }, '#' + j.id), ' ', jobTitle(j));
  badge($('job-state'), shownState(j));
  const p = j.progress;
  updateBar($('job-bar'), p, `Job ${j.id} progress`);
  figures(j, detail.figs);
  const meta = [
    ['Handler', j.handler], ['Priority', String(j.priority)],
    ['Timeout', fmt.timeout(j.timeout_s)], ['Attempts', String(j.max_attempts)],
    ['Submitted', fmt.clock(j.created_at, serverNow())],
    ['Started', fmt.clock(j.started_at, serverNow())],
    ['Finished', fmt.clock(j.finished_at, serverNow())],
  ];
  $('job-meta').replaceChildren(...meta.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
  const active = isActive(j);
  $('job-cancel').disabled = !active;
  const pause = $('job-pause');
  pause.disabled = !active;
  setText(pause, j.paused && active ? 'Resume' : 'Pause');
  pause.title = j.paused && active ? 'Start its tasks again'
    : 'Let the running tasks finish and start no other until resumed';
  $('job-retry').disabled = !(p.failed + p.cancelled);
  setText($('job-retry'), p.failed + p.cancelled
    ? `Retry ${fmt.int(p.failed + p.cancelled)} failed` : 'Retry failed');
  $('job-retry').title = 'Queue the failed and cancelled tasks again';
  document.title = `#${j.id} ${jobTitle(j)} · ${fmt.percent(workFraction(p))} — batchd`;
  renderFilters(j);
}

function renderFilters(j) {
  const p = j.progress;
  const counts = { '': p.total, ...Object.fromEntries(STATES.map((s) => [s, p[s]])) };
  const box = $('task-filters');
  if (!box.children.length) {
    for (const s of ['', ...STATES]) {
      box.append(h('button', {
        type: 'button', class: 'filter', dataset: { state: s },
        onclick: () => {
          detail.filter = s;
          detail.offset = 0;
          tick();
          renderFilters(detail.job);
        },
      }, h('span', { class: 'f-name' }, s || 'all'), ' ', h('span', { class: 'f-count' })));
    }
  }
  for (const b of box.children) {
    const s = b.dataset.state;
    setText(b.querySelector('.f-count'), fmt.compact(counts[s] || 0));
    b.setAttribute('aria-pressed', String(s === detail.filter));
  }
  renderDownload(j, counts[detail.filter] || 0);
}

// The download link takes the tasks the table shows (all, or the filter's
// state) as JSON lines, from GET /api/jobs/{id}/results. A plain link lets
// the browser stream a large export to disk; with a token the page fetches
// it instead (a link cannot send the header) and offers the file once whole.
function renderDownload(j, count) {
  const a = $('job-download');
  const s = detail.filter;
  const q = s ? `?state=${s}` : '';
  const href = `/api/jobs/${j.id}/results${q}`;
  if (a.getAttribute('href') !== href) a.setAttribute('href', href);
  a.setAttribute('download', `batchd-job-${j.id}${s ? '-' + s : ''}.jsonl`);
  setText(a, s ? `Download ${fmt.int(count)} ${s}` : 'Download results');
  a.title = `The ${s ? s + ' ' : ''}tasks as JSON lines: index, state, result or error, times`;
  a.setAttribute('aria-disabled', String(!count || detail.downloading));
}

$('job-download').addEventListener('click', async (ev) => {
  const a = $('job-download');
  if (a.getAttribute('aria-disabled') === 'true') {
    ev.preventDefault();
    return;
  }
  if (!api.hasToken()) return;	// the browser downloads it
  ev.preventDefault();
  const msg = $('job-action-msg');
  const name = a.getAttribute('download');
  const id = detail.id;
  msg.className = 'action-msg';
  detail.downloading = true;
  a.setAttribute('aria-disabled', 'true');
  setText(msg, 'Downloading…');
  try {
    const blob = await api.download(a.getAttribute('href'), 'application/x-ndjson', (bytes, lines) => {
      if (detail.id === id) setText(msg, `Downloading… ${fmt.int(lines)} tasks, ${fmt.bytes(bytes)}`);
    });
    const url = URL.createObjectURL(blob);
    const link = h('a', { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    // The browser has taken the file once the click is handled.
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    if (detail.id === id) setText(msg, `Downloaded ${name}.`);
  } catch (e) {
    if (detail.id === id) {
      msg.className = 'action-msg err';
      setText(msg, `Download failed: ${e.message}`);
    }
  } finally {
    detail.downloading = false;
    if (detail.job) renderFilters(detail.job);
  }
});

async function loadTasks() {
  const id = detail.id;
  // The list shows no result: they may be large, and this page comes
  // every second while the job runs. A task's detail fetches its own.
  const q = new URLSearchParams({ limit: PAGE, result: 'false' });
  if (detail.filter) q.set('state', detail.filter);
  // The filtered page shown, again (every second while the job runs): from
  // its first task on, which the server finds directly, where an offset
  // would have it skip the filter's tasks before the page one by one.
  const again = detail.filter && detail.offset > 0 && detail.tasks &&
    detail.tasks.tasks.length && detail.tasksKey === `${detail.filter}/${detail.offset}`;
  if (again) q.set('from', detail.tasks.tasks[0].index);
  else q.set('offset', detail.offset);
  const r = await api.get(`/api/jobs/${id}/tasks?${q}`);
  if (leftJob(id)) return;
  // Its tasks all moved on (a queued page ran): by the offset once more.
  if (again && !r.data.tasks.length) {
    detail.tasksKey = '';
    return loadTasks();
  }
  // Past the end (the filter's count shrank): go to the last page.
  if (!r.data.tasks.length && r.data.total && detail.offset >= r.data.total) {
    detail.offset = Math.floor((r.data.total - 1) / PAGE) * PAGE;
    return loadTasks();
  }
  detail.tasksKey = `${detail.filter}/${detail.offset}`;
  const text = JSON.stringify(r.data);
  if (text === detail.tasksText) return;
  detail.tasksText = text;
  detail.tasks = r.data;
  renderTasks();
}

function taskDuration(t) {
  if (!t.started_at) return null;
  const end = t.finished_at ? Date.parse(t.finished_at) : serverNow();
  return Math.max(0, (end - Date.parse(t.started_at)) / 1000);
}

function renderTasks() {
  const d = detail.tasks;
  const rows = [];
  for (const t of d.tasks) {
    const open = detail.open.has(t.index);
    const toggle = () => toggleTask(t.index);
    const text = t.state === 'failed' || (t.error && t.state === 'queued') ? t.error : t.message;
    rows.push(h('tr', {
      class: 'task-row' + (open ? ' open' : ''), dataset: { index: t.index, state: t.state },
      onclick: (ev) => {
        if (!ev.target.closest('button, a')) toggle();
      },
    },
    h('td', {}, h('button', {
      type: 'button', class: 'linkish', 'aria-expanded': String(open),
      'aria-controls': `task-${t.index}-detail`, onclick: toggle,
    }, fmt.int(t.index))),
    h('td', {}, h('span', { class: 'badge ' + t.state }, t.state),
      t.retry_at ? h('span', { class: 'muted small' }, ` retry ${fmt.clock(t.retry_at, serverNow())}`) : null),
    h('td', { class: 'num' }, String(t.attempts)),
    h('td', {}, t.state === 'running' || (t.progress != null && t.state !== 'queued')
      ? miniBar(t.state === 'succeeded' ? 1 : t.progress, t.state) : h('span', { class: 'muted' }, '—')),
    h('td', { class: 'num' }, t.worker != null ? '#' + t.worker : '—'),
    h('td', { class: 'num' }, fmt.duration(taskDuration(t), { ms: true })),
    h('td', { class: 'msg' + (t.state === 'failed' ? ' err' : '') }, text || '')));
    if (open) rows.push(taskDetailRow(t));
  }
  keepFocus($('task-rows'), () => $('task-rows').replaceChildren(...rows));
  $('tasks-empty').hidden = d.tasks.length > 0;
  const pages = Math.max(1, Math.ceil(d.total / PAGE));
  const page = Math.floor(detail.offset / PAGE) + 1;
  const from = d.total ? detail.offset + 1 : 0;
  const to = Math.min(detail.offset + d.tasks.length, d.total);
  setText($('pg-info'), `${fmt.int(from)}–${fmt.int(to)} of ${fmt.int(d.total)} · page ${fmt.int(page)} of ${fmt.int(pages)}`);
  $('pg-first').disabled = $('pg-prev').disabled = page <= 1;
  $('pg-next').disabled = $('pg-last').disabled = page >= pages;
  $('pg-input').max = String(pages);
  $('pager').hidden = d.total <= PAGE;
}

function pretty(v) {
  if (v === undefined) return '';
  return JSON.stringify(v, null, 2);
}

function taskDetailRow(t) {
  const full = detail.open.get(t.index);
  // Built once for each fetch of the task: the list is drawn again every
  // second while its job runs, and an input or a result may be megabytes.
  if (full && full.row) return full.row;
  const body = [];
  if (!full) {
    body.push(h('p', { class: 'muted' }, 'Loading…'));
  } else {
    const blocks = [['Input', pretty(full.input)]];
    if (full.error) blocks.push(['Error', full.error]);
    if (full.result !== null && full.result !== undefined) blocks.push(['Result', pretty(full.result)]);
    else if (full.state === 'succeeded') blocks.push(['Result', 'null']);
    for (const [k, v] of blocks) {
      body.push(h('div', { class: 'kv' + (k === 'Error' ? ' err' : '') },
        h('div', { class: 'k' }, k), h('pre', {}, v)));
    }
    const facts = [
      `attempts ${full.attempts}`,
      full.worker != null ? `worker #${full.worker}` : null,
      full.started_at ? `started ${fmt.clock(full.started_at, serverNow())}` : null,
      full.finished_at ? `finished ${fmt.clock(full.finished_at, serverNow())}` : null,
      full.retry_at ? `retry at ${fmt.clock(full.retry_at, serverNow())}` : null,
      full.message ? `last message “${full.message}”` : null,
    ].filter(Boolean);
    body.push(h('p', { class: 'muted small' }, facts.join(' · ')));
  }
  const row = h('tr', { class: 'task-detail', id: `task-${t.index}-detail` },
    h('td', { colspan: 7 }, h('div', { class: 'task-detail-body' }, ...body)));
  if (full) full.row = row;
  return row;
}

async function toggleTask(idx) {
  if (detail.open.has(idx)) {
    detail.open.delete(idx);
    renderTasks();
    return;
  }
  detail.open.set(idx, null);
  renderTasks();
  await refreshOpen(idx);
}

async function refreshOpen(idx) {
  const id = detail.id;
  try {
    const r = await api.get(`/api/jobs/${id}/tasks/${idx}`, { exact: true });
    if (leftJob(id) || !detail.open.has(idx)) return;
    detail.open.set(idx, r.data);
    renderTasks();
  } catch (e) {
    if (leftJob(id)) return;
    if (detail.open.get(idx) === null) detail.open.delete(idx);
    toast(`Could not load task ${idx}: ${e.message}`);
  }
}

// Open tasks whose state moved on are fetched again (their result came).
function refreshStaleOpen() {
  if (!detail.tasks) return;
  for (const t of detail.tasks.tasks) {
    const full = detail.open.get(t.index);
    if (full && (full.state !== t.state || full.attempts !== t.attempts)) refreshOpen(t.index);
  }
}

async function loadRunning(active) {
  const list = $('running-list');
  if (!active) {
    $('running-card').hidden = true;
    return;
  }
  $('running-card').hidden = false;
  const id = detail.id;
  const r = await api.get(`/api/jobs/${id}/tasks?state=running&limit=50`);
  if (leftJob(id)) return;
  const items = r.data.tasks.map((t) => h('li', { class: 'run-item', dataset: { index: t.index } },
    h('div', { class: 'run-top' },
      h('span', { class: 'run-idx' }, `Task ${fmt.int(t.index)}`),
      h('span', { class: 'muted' }, t.worker != null ? `worker #${t.worker}` : ''),
      h('span', { class: 'muted run-time' }, fmt.duration(taskDuration(t), { ms: true }))),
    miniBar(t.progress),
    h('div', { class: 'run-msg' }, t.message || (t.progress != null ? '' : 'no progress reported'))));
  list.replaceChildren(...items);
  $('running-none').hidden = items.length > 0;
  setText($('running-count'), r.data.total > items.length
    ? `${fmt.int(r.data.total)} (first ${items.length} shown)` : fmt.int(r.data.total));
}

function page(to) {
  if (!detail.tasks) return;
  const pages = Math.max(1, Math.ceil(detail.tasks.total / PAGE));
  const p = Math.min(Math.max(1, to), pages);
  detail.offset = (p - 1) * PAGE;
  tick();
}

const curPage = () => Math.floor(detail.offset / PAGE) + 1;
$('pg-first').addEventListener('click', () => page(1));
$('pg-prev').addEventListener('click', () => page(curPage() - 1));
$('pg-next').addEventListener('click', () => page(curPage() + 1));
$('pg-last').addEventListener('click', () => page(Infinity));
$('pg-jump').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const n = parseInt($('pg-input').value, 10);
  if (n > 0) page(n);
});

// Cancel asks twice: a second click within a few seconds confirms.
function disarmCancel() {
  clearTimeout(detail.confirmTimer);
  const b = $('job-cancel');
  b.classList.remove('armed');
  setText(b, 'Cancel job');
}

$('job-cancel').addEventListener('click', async () => {
  const b = $('job-cancel');
  if (!b.classList.contains('armed')) {
    b.classList.add('armed');
    setText(b, 'Click again to cancel');
    detail.confirmTimer = setTimeout(disarmCancel, 4000);
    return;
  }
  disarmCancel();
  await action('cancel', (j) => `Cancelled: ${fmt.int(j.progress.cancelled)} tasks will not run.`);
});

$('job-pause').addEventListener('click', () => {
  const j = detail.job;
  if (!j) return;
  if (j.paused) action('resume', () => 'Resumed: its tasks start again.');
  else action('pause', (r) => r.progress.running
    ? `Paused: ${fmt.int(r.progress.running)} running ${r.progress.running === 1 ? 'task finishes' : 'tasks finish'}, no other starts.`
    : 'Paused: no task of it starts until it is resumed.');
});

$('job-retry').addEventListener('click', () => action('retry',
  () => 'Failed and cancelled tasks are queued again.'));

async function action(what, say) {
  const msg = $('job-action-msg');
  msg.className = 'action-msg';
  try {
    const r = await api.post(`/api/jobs/${detail.id}/${what}`);
    setText(msg, say(r.data));
    detail.sig = '';
    detail.chartJob = null;
  } catch (e) {
    msg.className = 'action-msg err';
    setText(msg, e.message);
  }
  tick();
}

// ---- the submit form ----

const dlg = $('submit-dialog');
// A file larger than this is held apart rather than put in the box, which
// would be slow to draw and to edit.
const FILE_IN_BOX_MAX = 256 * 1024;
// The tasks of such a file: {name, bytes, count, text} (parseTasks); null
// when the box holds the tasks.
let fileTasks = null;

// The tasks in text: a JSON array, or JSON Lines (one JSON value on each
// non-empty line, as batchd submit reads them). {count, text} with text
// the tasks as one JSON array, or {error}. The text is what was written,
// never parsed and printed again: that would send 9007199254740993 as
// 9007199254740992, and 1.0 as 1.
function parseTasks(text) {
  const whole = text.trim();
  if (!whole) return { error: 'there are none' };
  let wholeError;
  try {
    const v = JSON.parse(whole);
    // An array is the tasks; any other one value is one task, however
    // many lines it takes (as batchd submit --handler reads a file).
    if (Array.isArray(v)) return { count: v.length, text: whole };
    return { count: 1, text: `[${whole}]` };
  } catch (e) {
    wholeError = e;   // JSON Lines, then.
  }
  const tasks = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      JSON.parse(line);
    } catch (e) {
      // The first value goes on past its line (an array, or one value,
      // spread over lines): not JSON Lines, so the mistake is where the
      // whole text says, not on this line.
      if (!tasks.length) return { error: jsonError(text, wholeError) };
      return { error: `line ${fmt.int(i + 1)} is not one JSON value (${e.message})` };
    }
    tasks.push(line);
  }
  if (!tasks.length) return { error: 'there are none' };
  return { count: tasks.length, text: `[${tasks.join(',')}]` };
}

// What is wrong with text as one JSON value, from e, the error JSON.parse
// threw for it trimmed: by line and column when the message gives a
// position ("at position 28", as Chromium's does).
function jsonError(text, e) {
  const m = /at position (\d+)/.exec(e.message);
  if (!m) return `not valid JSON (${e.message})`;
  const at = Math.min(text.length, Number(m[1]) + text.length - text.trimStart().length);
  const before = text.slice(0, at);
  const line = before.split('\n').length;
  const column = at - before.lastIndexOf('\n');
  return `not valid JSON at line ${fmt.int(line)}, column ${fmt.int(column)} (${e.message})`;
}

// Why the server would refuse a job of count tasks in a body of bytes
// bytes, or null. Said before sending: a browser sends a body whole before
// it reads a 413, and one far past the limit is cut off with the
// connection, which would show as the server being unreachable.
function overLimits(count, bytes) {
  const l = app.limits;
  if (!l) return null;
  if (count > l.max_tasks) {
    return `${fmt.int(count)} tasks; this server takes at most ${fmt.int(l.max_tasks)} in one job (its --max-tasks)`;
  }
  if (bytes > l.max_body) {
    return `${fmt.bytes(bytes)} to send; this server takes requests of at most ${fmt.bytes(l.max_body)} (its --max-body)`;
  }
  return null;
}

const byteLength = (text) => new Blob([text]).size;

// Holds file's tasks apart from the box (null: back to the box).
function useFile(file) {
  fileTasks = file;
  $('f-tasks').hidden = !!file;
  $('f-file-shown').hidden = !file;
  if (file) {
    $('f-tasks').dataset.touched = '1';
    setText($('f-file-info'), `${file.name}: ${fmt.int(file.count)} task${file.count === 1 ? '' : 's'} (${fmt.bytes(file.bytes)})`);
  }
  tasksInfo();
}

async function loadFile() {
  const f = $('f-file').files[0];
  $('f-file').value = '';   // the same file may be chosen again
  if (!f) return;
  let text;
  try {
    text = await f.text();
  } catch (e) {
    showSubmitError(`Could not read ${f.name}: ${e.message}`);
    return;
  }
  const r = parseTasks(text);
  if (r.error) {
    showSubmitError(`${f.name}: ${r.error}.`);
    return;
  }
  const over = overLimits(r.count, byteLength(r.text));
  if (over) {
    showSubmitError(`${f.name}: ${over}.`);
    return;
  }
  $('submit-error').hidden = true;
  if (text.length > FILE_IN_BOX_MAX) {
    useFile({ name: f.name, bytes: f.size, count: r.count, text: r.text });
    return;
  }
  $('f-tasks').value = text;
  $('f-tasks').dataset.touched = '1';
  useFile(null);
}

async function openSubmit() {
  $('submit-error').hidden = true;
  dlg.showModal();
  if (!app.handlers) {
    try {
      const r = await api.get('/api/handlers');
      app.handlers = r.data.handlers;
      app.limits = r.data.limits || null;
    } catch (e) {
      showSubmitError(`Could not load the handlers: ${e.message}`);
      return;
    }
    const sel = $('f-handler');
    sel.replaceChildren(...app.handlers.map((hd) => h('option', { value: hd.name },
      hd.kind === 'builtin' ? hd.name : `${hd.name} (${hd.kind})`)));
    const pick = app.handlers.find((hd) => hd.name === 'sleep') || app.handlers[0];
    if (pick) sel.value = pick.name;
    onHandler();
  }
  $('f-handler').focus();
}

function onHandler() {
  const name = $('f-handler').value;
  const tpl = $('f-template');
  if (!tpl.dataset.touched) tpl.value = TEMPLATES[name] ?? '{"item": {{i}}}';
  if (!$('f-tasks').dataset.touched) generate();
}

function generate() {
  const n = parseInt($('f-count').value, 10);
  const tpl = $('f-template').value.trim() || 'null';
  if (!(n >= 1 && n <= 100000)) {
    showSubmitError('Count must be a whole number from 1 to 100,000.');
    return false;
  }
  try {
    JSON.parse(tpl.replaceAll('{{i}}', '0'));
  } catch (e) {
    showSubmitError(`The template is not JSON once {{i}} is replaced: ${e.message}`);
    return false;
  }
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(tpl.replaceAll('{{i}}', String(i)));
  $('f-tasks').value = n <= 200 ? '[\n  ' + parts.join(',\n  ') + '\n]' : '[' + parts.join(', ') + ']';
  $('submit-error').hidden = true;
  useFile(null);
  return true;
}

function tasksInfo() {
  const info = $('f-tasks-info');
  info.hidden = !!fileTasks;
  if (fileTasks) return;
  const r = parseTasks($('f-tasks').value);
  if (!$('f-tasks').value.trim()) setText(info, 'No tasks yet.');
  else setText(info, r.error ? `Not valid yet: ${r.error}.` :
    `${fmt.int(r.count)} task${r.count === 1 ? '' : 's'}`);
}

function showSubmitError(text) {
  const e = $('submit-error');
  e.hidden = false;
  setText(e, text);
}

$('new-job').addEventListener('click', openSubmit);
$('new-job-2').addEventListener('click', openSubmit);
$('submit-close').addEventListener('click', () => dlg.close());
$('submit-cancel').addEventListener('click', () => dlg.close());
$('f-handler').addEventListener('change', onHandler);
$('f-template').addEventListener('input', () => { $('f-template').dataset.touched = '1'; });
$('f-tasks').addEventListener('input', () => {
  $('f-tasks').dataset.touched = '1';
  tasksInfo();
});
$('f-generate').addEventListener('click', () => {
  if (generate()) $('f-tasks').dataset.touched = '';
});
$('f-file-pick').addEventListener('click', () => $('f-file').click());
$('f-file').addEventListener('change', loadFile);
$('f-file-clear').addEventListener('click', () => {
  useFile(null);
  $('f-tasks').focus();
});

$('submit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const given = fileTasks || parseTasks($('f-tasks').value);
  if (given.error) {
    showSubmitError(`Tasks: ${given.error}.`);
    return;
  }
  const body = { handler: $('f-handler').value };
  const name = $('f-name').value.trim();
  if (name) body.name = name;
  for (const [id, key] of [['f-timeout', 'timeout_s'], ['f-attempts', 'max_attempts'], ['f-priority', 'priority']]) {
    const v = $(id).value.trim();
    if (v !== '') body[key] = Number(v);
  }
  // The fields, then the tasks as written.
  const head = JSON.stringify(body);
  const text = `${head.slice(0, -1)},"tasks":${given.text}}`;
  const over = overLimits(given.count, byteLength(text));
  if (over) {
    showSubmitError(`Not sent: ${over}.`);
    return;
  }
  const go = $('submit-go');
  go.disabled = true;
  setText(go, 'Submitting…');
  try {
    const r = await api.post('/api/jobs', text);
    dlg.close();
    $('f-name').value = '';
    toast(`Job #${r.data.id} submitted: ${fmt.int(r.data.progress.total)} tasks`);
    app.highlight = r.data.id;
    location.hash = '#/';
    tick();
  } catch (e) {
    showSubmitError(e instanceof api.NetworkError ? `The server is unreachable: ${e.message}` : e.message);
  } finally {
    go.disabled = false;
    setText(go, 'Submit job');
  }
});

// ---- routing ----

// #/ the main page, #/jobs every job, #/jobs/{id} a job.
function route() {
  const prev = app.route.view;
  const m = location.hash.match(/^#\/jobs\/(\d+)/);
  if (m) {
    const id = Number(m[1]);
    if (app.route.view !== 'job' || app.route.id !== id) resetDetail(id);
    app.route = { view: 'job', id };
    routeBack(prev);
  } else if (/^#\/jobs\/?$/.test(location.hash)) {
    app.route = { view: 'all' };
    restoreList();
    // Another page than the one shown last: not a glimpse of that one.
    if (listKey() !== list.key) clearList();
    list.at = 0;
    renderListFilters();
    document.title = 'All jobs — batchd';
  } else {
    app.route = { view: 'jobs' };
    document.title = 'batchd';
  }
  $('view-jobs').hidden = app.route.view !== 'jobs';
  $('view-all').hidden = app.route.view !== 'all';
  $('view-job').hidden = app.route.view !== 'job';
  if (app.progress) renderProgress();
  tick();
}

// The detail's way back: to the list it was opened from, kept in its
// history entry.
function routeBack(prev) {
  let from = history.state && history.state.from;
  if (from !== 'all' && from !== 'jobs') {
    from = prev === 'all' || (prev === 'job' && detail.from === 'all') ? 'all' : 'jobs';
    saveState({ from });
  }
  detail.from = from;
  const back = $('job-back');
  back.setAttribute('href', from === 'all' ? '#/jobs' : '#/');
  setText(back, from === 'all' ? '← All jobs' : '← Jobs');
}

window.addEventListener('hashchange', () => {
  route();
  window.scrollTo(0, 0);
});
// Two entries of #/jobs side by side: going between them changes no hash.
window.addEventListener('popstate', () => {
  if (app.route.view === 'all' && /^#\/jobs\/?$/.test(location.hash)) route();
});
$('conn-retry').addEventListener('click', () => tick());
route();
