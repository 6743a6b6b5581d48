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

// A merged stream that ends sooner than this after opening is treated as a failure, so a server
// that keeps closing it at once is retried with back-off rather than in a tight loop.
const SHORT_STREAM_MS = 2000;

/**
 * List every kind, then watch them all through ONE merged stream (`/berth/v1/watch`), forever: a
 * browser keeps at most six HTTP/1.1 connections per host, so one long-lived watch per kind would
 * leave some queued forever. `items[kind]` is the page's picture of that kind (keyed by
 * namespace/name); `onChange(kind)` follows every change. Any end of the stream (an ERROR such as
 * 410 Gone, the server's timeout, silence) relists every kind and reconnects, with back-off; any
 * member can answer, so the view survives a leader change.
 *
 * `kinds` maps a resource's plural (as the stream tags lines) to `{ path, filter }`.
 * `state` is `connecting`, `live` (every list answered and the stream is open), `reconnecting`
 * or `login`. `denied` holds the messages of kinds whose list answered 403: they are left out
 * of the stream, which would otherwise be refused as a whole.
 */
export class MultiWatcher {
  constructor(kinds, onChange, onState) {
    this.kinds = kinds;
    this.onChange = onChange;
    this.onState = onState;
    this.items = {};
    for (const k of Object.keys(kinds)) this.items[k] = new Map();
    this.denied = [];
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
    while (!this.stopped) {
      try {
        const rvs = await this.listAll();
        if (this.stopped) return;
        if (Object.keys(rvs).length === 0) {
          // Nothing the user may watch: the page is as live as it can be; look again later, in
          // case a role is granted.
          this.setState('live');
          await sleep(30000);
          continue;
        }
        backoff = 500;
        const opened = Date.now();
        await this.watch(rvs);
        if (Date.now() - opened < SHORT_STREAM_MS) throw new ApiError(0, 'watch ended at once');
      } catch (e) {
        if (this.stopped) return;
        if (e instanceof ApiError && e.code === 410) continue; // Too old for the event window: relist now.
        if (e instanceof ApiError && e.code === 401) {
          this.setState('login', e.message);
          return; // The login restarts the watcher.
        }
        // A dropped stream, a member going away, a 5xx: relist after a growing pause, since the
        // events between the drop and the retry may be gone from whichever member answers.
        this.setState('reconnecting', e.message);
        await sleep(backoff + Math.random() * backoff);
        backoff = Math.min(backoff * 2, 8000);
      }
    }
  }

  /** Lists every kind in parallel (short requests); resolves to the revision of each listed kind. */
  async listAll() {
    const kinds = Object.keys(this.kinds);
    const results = await Promise.all(kinds.map(async (k) => {
      try {
        return { list: await get(this.kinds[k].path) };
      } catch (e) {
        if (e instanceof ApiError && e.code === 403) return { denied: e.message };
        throw e;
      }
    }));
    if (this.stopped) return {};
    const rvs = {};
    const denied = [];
    kinds.forEach((k, i) => {
      const r = results[i];
      const items = new Map();
      if (r.denied) denied.push(r.denied);
      else {
        const filter = this.kinds[k].filter || (() => true);
        for (const o of r.list.items || []) if (filter(o)) items.set(key(o), o);
        rvs[k] = r.list.metadata.resourceVersion;
      }
      this.items[k] = items;
    });
    const deniedChanged = denied.join('\n') !== this.denied.join('\n');
    this.denied = denied;
    for (const k of kinds) this.onChange(k);
    if (deniedChanged) this.onState();
    return rvs;
  }

  /** Streams the merged events from each kind's revision until the server ends the stream. */
  async watch(rvs) {
    const resources = Object.entries(rvs).map(([k, rv]) => k + ':' + rv).join(',');
    const url = '/berth/v1/watch?allowWatchBookmarks=true&resources=' + encodeURIComponent(resources);
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
        if (done) return;
        alive();
        buf += dec.decode(value, { stream: true });
        let nl;
        const changed = new Set();
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const ev = JSON.parse(line);
          if (ev.type === 'ERROR') {
            const s = ev.object || {};
            throw new ApiError(s.code || 500, (ev.resource ? ev.resource + ': ' : '') + (s.message || 'watch error'));
          }
          const items = this.items[ev.resource];
          if (!items || ev.type === 'BOOKMARK') continue;
          const o = ev.object;
          const filter = this.kinds[ev.resource].filter || (() => true);
          if (ev.type === 'DELETED' || !filter(o)) {
            if (!items.delete(key(o))) continue;
          } else items.set(key(o), o);
          changed.add(ev.resource);
        }
        for (const k of changed) this.onChange(k);
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
