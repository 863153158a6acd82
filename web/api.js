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

// Sends one request. body: a value to send as JSON, or a string already
// JSON. etag: sent as If-None-Match; a 304 answers {status: 304}.
// Resolves to {status, data, etag}; rejects with ApiError or NetworkError.
export async function request(method, path, { body, etag } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token() || memoryToken;
  if (t) headers.Authorization = 'Bearer ' + t;
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
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(res.status, err ? err.code : 'http_' + res.status,
      err ? err.message : `${res.status} ${res.statusText}`);
  }
  return { status: res.status, data, etag: res.headers.get('ETag') };
}

export const get = (path, opts) => request('GET', path, opts);
export const post = (path, body) => request('POST', path, { body });
