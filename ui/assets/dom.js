// DOM helpers. Every text from the cluster goes in through textContent, never parsed as markup: object
// names and event messages are user data, and the CSP forbids inline script anyway.

/** `h('div', {class: 'x', 'data-a': 1, onclick: f}, child, 'text')` */
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Sets an attribute only when it changed (keeps the DOM quiet for watchers of mutations). */
export function attr(el, name, value) {
  const v = String(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

export function text(el, value) {
  const v = String(value);
  if (el.textContent !== v) el.textContent = v;
}

/**
 * Keyed update of `container`'s children that carry `data-key`: reuses the element of each key
 * (so a pod box keeps its identity, a focused input its caret), creates missing ones, removes
 * stale ones and moves only what is out of order. Children without `data-key` stay first.
 */
export function sync(container, items, keyOf, create, update) {
  const old = new Map();
  let fixed = 0;
  for (const el of Array.from(container.children)) {
    if (el.dataset.key !== undefined) old.set(el.dataset.key, el);
    else fixed++;
  }
  const wanted = items.map((item) => {
    const k = keyOf(item);
    let el = old.get(k);
    if (el) old.delete(k);
    else {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    return el;
  });
  for (const el of old.values()) el.remove();
  wanted.forEach((el, i) => {
    const at = container.children[fixed + i] || null;
    if (at !== el) container.insertBefore(el, at);
  });
}

/** Quantity (`250m`, `2`, `1Gi`, `123456Ki`, `5e3`) as a number of base units. */
export function quantity(q) {
  if (q === undefined || q === null) return NaN;
  const m = /^([0-9.]+(?:e[0-9]+)?)([a-zA-Z]*)$/.exec(String(q).trim());
  if (!m) return NaN;
  const scale = {
    n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12,
    Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
  }[m[2]];
  return scale === undefined ? NaN : parseFloat(m[1]) * scale;
}

export function cpu(cores) {
  if (!isFinite(cores)) return '?';
  return cores < 1 ? Math.round(cores * 1000) + 'm' : cores.toFixed(cores < 10 ? 1 : 0);
}

export function bytes(b) {
  if (!isFinite(b)) return '?';
  const units = ['B', 'Ki', 'Mi', 'Gi', 'Ti'];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) {
    b /= 1024;
    i++;
  }
  return (b < 10 && i > 0 ? b.toFixed(1) : Math.round(b)) + units[i];
}

/** `3s`, `5m`, `2h`, `4d` since an RFC 3339 time. */
export function age(ts) {
  const t = Date.parse(ts || '');
  if (!isFinite(t)) return '';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 120) return s + 's';
  if (s < 7200) return Math.round(s / 60) + 'm';
  if (s < 172800) return Math.round(s / 3600) + 'h';
  return Math.round(s / 86400) + 'd';
}
