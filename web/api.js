// The batchd API as the page uses it: JSON in and out, the token (when the
// server has one) from this tab's session storage, and two kinds of
// failure the page tells apart: the server said no (ApiError, with its
// status, code and message), or it could not be reached (NetworkError).

const TOKEN_KEY = 'batchd.token';
const TIMEOUT_MS = 10000;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class NetworkError extends Error {}

// Used when session storage is unavailable.
let memoryToken = '';

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the token lives as long as the page.
  }
  memoryToken = t;
}

function authHeaders(accept) {
  const headers = { Accept: accept };
  const t = token() || memoryToken;
  if (t) headers.Authorization = 'Bearer ' + t;
  return headers;
}

// Whether requests carry a token (a plain link would not).
export const hasToken = () => Boolean(token() || memoryToken);

// The body of an error answer as an ApiError.
function apiError(res, text) {
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = null;
  }
  const err = data && data.error;
  return new ApiError(res.status, err ? err.code : 'http_' + res.status,
    err ? err.message : `${res.status} ${res.statusText}`);
}

// Fetches a streamed answer whole, as a Blob, calling progress(bytes,
// lines) as it arrives. The timeout covers the answer's start only: a large
// export may take a while to stream. A stream the server cut short (its
// final chunk missing) rejects, so no partial file is offered as the whole.
export async function download(path, accept, progress) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  let res;
  try {
    res = await fetch(path, {
      headers: authHeaders(accept), cache: 'no-store', credentials: 'same-origin', signal: ctrl.signal,
    });
  } catch (e) {
    throw new NetworkError(e.name === 'AbortError' ? 'the server did not answer in time' : e.message);
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok) throw apiError(res, await res.text().catch(() => ''));
  const parts = [];
  let bytes = 0, lines = 0;
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      bytes += value.length;
      for (let i = value.indexOf(10); i !== -1; i = value.indexOf(10, i + 1)) lines++;
      if (progress) progress(bytes, lines);
    }
  } catch (e) {
    throw new NetworkError(`the download was cut short: ${e.message}`);
  }
  return new Blob(parts, { type: res.headers.get('Content-Type') || 'application/octet-stream' });
}

// JSON.parse, keeping each number that a double would change
// (9007199254740993, 1.0, 1E22) as written: it becomes JSON.rawJSON of its
// text, which JSON.stringify writes back unchanged. For what users sent
// and handlers returned, shown as they wrote it. A browser without
// JSON.rawJSON gets plain numbers.
export function parseExact(text) {
  if (typeof JSON.rawJSON !== 'function') return JSON.parse(text);
  return JSON.parse(text, (key, v, ctx) =>
    (typeof v === 'number' && ctx && typeof ctx.source === 'string' && ctx.source !== String(v)
      ? JSON.rawJSON(ctx.source) : v));
}

// Sends one request. body: a value to send as JSON, or a string already
// JSON. etag: sent as If-None-Match; a 304 answers {status: 304}. exact:
// numbers in the answer as parseExact keeps them.
// Resolves to {status, data, etag}; rejects with ApiError or NetworkError.
export async function request(method, path, { body, etag, exact } = {}) {
  const headers = authHeaders('application/json');
  if (etag) headers['If-None-Match'] = etag;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
  let res, text;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      // The validators are ours: never let the HTTP cache answer instead.
      cache: 'no-store',
      credentials: 'same-origin',
      signal: ctrl.signal,
    });
    text = res.status === 304 ? '' : await res.text();
  } catch (e) {
    throw new NetworkError(e.name === 'AbortError' ? 'the server did not answer in time' : e.message);
  } finally {
    clearTimeout(timer);
  }
  if (res.status === 304) return { status: 304, data: null, etag };
  if (!res.ok) throw apiError(res, text);
  let data = null;
  if (text) {
    try {
      data = exact ? parseExact(text) : JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return { status: res.status, data, etag: res.headers.get('ETag') };
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body) => request('POST', path, { body });
