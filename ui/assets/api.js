// The page's only way to the cluster: relative URLs on its own origin (the API, or the lab proxy in
// front of it), with a bearer token when the user gave one. No other origin is ever contacted.

const TOKEN_KEY = 'berth.token';

/** The token from the login form; `null` when the browser's client certificate (or a proxy) authenticates. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An HTTP error with the API's `Status` message. */
export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// Every listener of a 401 (the app shows the login form); set by app.js.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

function headers(extra) {
  const h = Object.assign({ Accept: 'application/json' }, extra || {});
  const t = token();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

async function failure(resp) {
  let message = resp.status + ' ' + resp.statusText;
  try {
    const s = await resp.json();
    if (s && s.message) message = s.message;
  } catch (_) {
    // Not a Status (a proxy's page): the status line says enough.
  }
  if (resp.status === 401) onUnauthorized();
  return new ApiError(resp.status, message);
}

/** One request; resolves to the parsed JSON body (or null), rejects with an ApiError. */
export async function request(method, path, body, contentType) {
  const init = { method, headers: headers(), credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = contentType || 'application/json';
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw await failure(resp);
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request('GET', path);
export const patchMerge = (path, body) => request('PATCH', path, body, 'application/merge-patch+json');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A stream that says nothing for this long is presumed dead (its member partitioned away, say):
// the server sends a BOOKMARK every 10 s, so silence means a broken path, not a quiet cluster.
const SILENCE_MS = 35000;

/**
 * List then watch one collection, forever: the page's picture of `path` in `items` (keyed by
 * namespace/name), `onChange()` after every change. Relists on 410 Gone or a broken stream, with
 * back-off; any member can answer the retry, so the view survives a leader change.
 * `state` is `connecting`, `live`, `reconnecting`, `forbidden` (403: the user may not see it) or `login`.
 */
export class Watcher {
  constructor(path, onChange, onState, opts) {
    this.path = path;
    this.onChange = onChange;
    this.onState = onState;
    this.filter = (opts && opts.filter) || (() => true);
    this.items = new Map();
    this.state = 'connecting';
    this.message = '';
    this.stopped = false;
    this.abort = null;
  }

  setState(s, message) {
    this.message = message || '';
    if (s !== this.state) {
      this.state = s;
      this.onState();
    }
  }

  stop() {
    this.stopped = true;
    if (this.abort) this.abort.abort();
  }

  async run() {
    let backoff = 500;
    let rv = null;
    while (!this.stopped) {
      try {
        if (rv === null) rv = await this.list();
        backoff = 500;
        rv = await this.watch(rv);
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof ApiError && e.code === 410) {
          rv = null; // Too old for the server's event window: start over from a fresh list.
          continue;
        }
        if (e instanceof ApiError && e.code === 401) {
          this.setState('login', e.message);
          return; // The login restarts every watcher.
        }
        if (e instanceof ApiError && e.code === 403) {
          this.setState('forbidden', e.message);
          return;
        }
        // A dropped stream, a member going away, a 5xx: relist after a growing pause, since the
        // events between the drop and the retry may be gone from whichever member answers.
        this.setState('reconnecting', e.message);
        rv = null;
        await sleep(backoff + Math.random() * backoff);
        backoff = Math.min(backoff * 2, 8000);
      }
    }
  }

  async list() {
    const list = await get(this.path);
    const items = new Map();
    for (const o of list.items || []) if (this.filter(o)) items.set(key(o), o);
    this.items = items;
    this.onChange();
    return list.metadata.resourceVersion;
  }

  /** Streams events from `rv`; returns the last resourceVersion seen when the server ends the stream. */
  async watch(rv) {
    const sep = this.path.includes('?') ? '&' : '?';
    const url = this.path + sep + 'watch=1&allowWatchBookmarks=true&resourceVersion=' + encodeURIComponent(rv);
    const ctl = new AbortController();
    this.abort = ctl;
    let timer = setTimeout(() => ctl.abort(), SILENCE_MS);
    const alive = () => {
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(), SILENCE_MS);
    };
    try {
      const resp = await fetch(url, { headers: headers(), credentials: 'same-origin', cache: 'no-store', signal: ctl.signal });
      if (!resp.ok) throw await failure(resp);
      this.setState('live');
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return rv;
        alive();
        buf += dec.decode(value, { stream: true });
        let nl;
        let changed = false;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line);
          if (ev.type === 'ERROR') {
            const s = ev.object || {};
            throw new ApiError(s.code || 500, s.message || 'watch error');
          }
          const o = ev.object;
          if (o && o.metadata && o.metadata.resourceVersion) rv = o.metadata.resourceVersion;
          if (ev.type === 'BOOKMARK') continue;
          if (ev.type === 'DELETED' || !this.filter(o)) this.items.delete(key(o));
          else this.items.set(key(o), o);
          changed = true;
        }
        if (changed) this.onChange();
      }
    } catch (e) {
      if (e.name === 'AbortError' && !this.stopped) throw new ApiError(0, 'watch went silent');
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }
}

export function key(o) {
  const m = o.metadata || {};
  return (m.namespace || '') + '/' + m.name;
}
