// Numbers and times formatted for people: 1,234 · 12.3k · 4.5/s · 3m 20s.
// Pure functions, no DOM: app.js renders with them, and the browser tests
// check them directly.

const grouped = new Intl.NumberFormat('en-US');

// 1234 -> "1,234"
export function int(n) {
  if (n == null || !isFinite(n)) return '—';
  return grouped.format(Math.round(n));
}

// 950 -> "950", 1234 -> "1.2k", 12345 -> "12k", 1234567 -> "1.2M"
export function compact(n) {
  if (n == null || !isFinite(n)) return '—';
  const a = Math.abs(n);
  const units = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [size, unit] of units) {
    if (a >= size) {
      const v = n / size;
      return (Math.abs(v) < 10 ? trim(v.toFixed(1)) : String(Math.round(v))) + unit;
    }
  }
  return a < 10 && n !== Math.round(n) ? trim(n.toFixed(1)) : String(Math.round(n));
}

// 512 -> "512 B", 1536 -> "1.5 KiB", 5242880 -> "5.0 MiB"
export function bytes(n) {
  if (n == null || !isFinite(n) || n < 0) return '—';
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function trim(s) {
  return s.endsWith('.0') ? s.slice(0, -2) : s;
}

// Tasks per second, the way tqdm would say it: "1.2k/s", "34/s", "4.5/s",
// "0.25/s"; slow rates per minute or hour ("12/min", "3/h"); "—" unknown.
export function rate(r) {
  if (r == null || !isFinite(r) || r <= 0) return '—';
  if (r >= 1000) return compact(r) + '/s';
  if (r >= 100) return Math.round(r) + '/s';
  if (r >= 10) return digits(r, 1) + '/s';
  if (r >= 0.1) return digits(r, 2) + '/s';
  if (r * 60 >= 1) return digits(r * 60, r * 60 < 10 ? 1 : 0) + '/min';
  return digits(r * 3600, r * 3600 < 10 ? 1 : 0) + '/h';
}

// v with at most n decimals, trailing zeros dropped: 4.50 -> "4.5".
function digits(v, n) {
  return String(parseFloat(v.toFixed(n)));
}

// Seconds as "850ms", "42s", "3m 20s", "1h 05m", "2d 4h"; "—" unknown.
export function duration(s, { ms = false } = {}) {
  if (s == null || !isFinite(s) || s < 0) return '—';
  if (ms && s < 1) return Math.round(s * 1000) + 'ms';
  if (s < 60) return (s < 10 && ms ? digits(s, 1) : Math.floor(s)) + 's';
  const t = Math.floor(s);
  const d = Math.floor(t / 86400), h = Math.floor(t / 3600) % 24;
  const m = Math.floor(t / 60) % 60, sec = t % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${pad(m)}m`;
  return `${m}m ${pad(sec)}s`;
}

function pad(n) {
  return n < 10 ? '0' + n : String(n);
}

// A fraction as a percentage that never says 100% before the end:
// 0.2468 -> "24.6%", 0.9996 -> "99.9%", 1 -> "100%".
export function percent(f) {
  if (f == null || !isFinite(f)) return '—';
  if (f >= 1) return '100%';
  if (f <= 0) return '0%';
  return (Math.floor(f * 1000) / 10).toFixed(1) + '%';
}

// An RFC 3339 time as the local clock time (with the date when it is not
// today): "14:02:11" or "Mar 3, 14:02".
export function clock(iso, now = Date.now()) {
  if (!iso) return '—';
  const t = new Date(iso);
  if (isNaN(t)) return '—';
  const today = new Date(now);
  const sameDay = t.toDateString() === today.toDateString();
  if (sameDay) {
    return t.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }
  return t.toLocaleDateString('en-US', { month: 'short', day: 'numeric' }) + ', ' +
    t.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
}

// "3m ago" from an RFC 3339 time and the current time in ms.
export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const s = (now - Date.parse(iso)) / 1000;
  if (!isFinite(s)) return '—';
  if (s < 5) return 'just now';
  return duration(s) + ' ago';
}

// Seconds as a timeout: "1h", "30s", "1.5s"
export function timeout(s) {
  if (s == null || !isFinite(s)) return '—';
  if (s % 3600 === 0) return s / 3600 + 'h';
  if (s % 60 === 0 && s >= 60) return s / 60 + 'm';
  return digits(s, 3) + 's';
}
