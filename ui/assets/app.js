// berth's live view: every kind is listed, then watched through one merged stream that keeps a cache
// per kind (api.js); every change re-renders the affected panels (views.js), buttons call the API
// (actions.js). Nothing polls except node usage and the members list, which the API cannot watch,
// and those are short requests: the page holds one long-lived connection, the merged watch.

import { MultiWatcher, get, token, setToken, setUnauthorizedHandler, ApiError } from './api.js';
import { h, text } from './dom.js';
import { actions } from './actions.js';
import { renderNodes, renderWorkloads, renderServices, renderEvents, renderMembers } from './views.js';

// Keys are the resources' plurals, as the merged watch tags its lines. Every list is cluster-wide,
// as the merged watch is, so a list's revision is a valid start for its kind's stream.
const KINDS = {
  nodes: { path: '/api/v1/nodes' },
  pods: { path: '/api/v1/pods' },
  services: { path: '/api/v1/services' },
  endpoints: { path: '/api/v1/endpoints' },
  deployments: { path: '/apis/apps/v1/deployments' },
  daemonsets: { path: '/apis/apps/v1/daemonsets' },
  jobs: { path: '/apis/batch/v1/jobs' },
  events: { path: '/api/v1/events' },
  // Only the control plane's leader Lease matters; the agents' Leases in kube-node-lease change
  // every few seconds and are dropped on arrival.
  leases: { path: '/apis/coordination.k8s.io/v1/leases', filter: (o) => o.metadata && o.metadata.namespace === 'kube-system' },
};

// Which panels each kind feeds, so a pod event does not redraw the services.
const PANELS = {
  nodes: ['nodes'], pods: ['nodes'], services: ['services'], endpoints: ['services'],
  deployments: ['workloads'], daemonsets: ['workloads'], jobs: ['workloads'], events: ['events'],
  leases: ['members'],
};

const state = { usage: undefined, members: null, membersError: '' };
for (const k of Object.keys(KINDS)) state[k] = new Map();

let watcher = null;
let loggedOut = false;
const dirty = new Set();
let renderTimer = null;

function notify(message, isError) {
  const el = document.getElementById('toast');
  text(el, message);
  el.className = isError ? 'error' : 'ok';
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { el.className = 'hidden'; }, isError ? 10000 : 4000);
}

const act = actions(notify, state);

function schedule(...panels) {
  for (const p of panels) dirty.add(p);
  // Coalesce a burst of events (a rollout, a relist) into one redraw.
  if (!renderTimer) renderTimer = setTimeout(render, 30);
}

function render() {
  renderTimer = null;
  const d = new Set(dirty);
  dirty.clear();
  if (d.has('nodes')) renderNodes(state, act);
  if (d.has('workloads')) renderWorkloads(state, act);
  if (d.has('services')) renderServices(state);
  if (d.has('events')) renderEvents(state);
  if (d.has('members')) renderMembers(state);
}

/** `live` only while every kind the user may read was listed and the merged watch is streaming. */
function updateStatus() {
  const ws = watcher ? watcher.state : 'connecting';
  const s = loggedOut || ws === 'login' ? 'login' : ws;
  const el = document.getElementById('status');
  text(el, s);
  el.dataset.state = s;
  const denied = watcher ? watcher.denied : [];
  text(document.getElementById('denied'), denied.length ? 'Not shown: ' + denied.join('; ') : '');
  if (s === 'login') showLogin();
  if (s === 'live' && !updateStatus.wasLive) refreshMembers();
  updateStatus.wasLive = s === 'live';
}

function start() {
  stop();
  loggedOut = false;
  document.getElementById('login').classList.add('hidden');
  document.getElementById('logout').classList.toggle('hidden', !token());
  const w = new MultiWatcher(KINDS, (kind) => {
    // A watcher stopped by a log-out or log-in must not put its stale cache back.
    if (w.stopped) return;
    // The watcher replaces a kind's map on every relist; the views read through state.
    state[kind] = w.items[kind];
    if (kind === 'leases') leaderMaybeChanged();
    schedule(...PANELS[kind]);
  }, updateStatus);
  watcher = w;
  for (const kind of Object.keys(KINDS)) state[kind] = w.items[kind];
  updateStatus();
  w.run();
  pollUsage();
  refreshMembers();
}

function stop() {
  if (watcher) watcher.stop();
  watcher = null;
}

function showLogin() {
  stop();
  loggedOut = true;
  const el = document.getElementById('status');
  text(el, 'login');
  el.dataset.state = 'login';
  document.getElementById('login').classList.remove('hidden');
  document.getElementById('login-token').focus();
}

setUnauthorizedHandler(() => {
  if (!loggedOut) showLogin();
});

let lastLeader = null;
function leaderMaybeChanged() {
  const lease = state.leases.get('kube-system/berth-leader');
  const holder = lease && lease.spec && lease.spec.holderIdentity;
  if (holder !== lastLeader) {
    lastLeader = holder;
    refreshMembers();
  }
}

// Membership is not an API object, so it cannot be watched: it is read again when the leader
// Lease changes, when the watches come back, and every 15 s for the members' roles in between.
async function refreshMembers() {
  clearTimeout(refreshMembers.timer);
  refreshMembers.timer = setTimeout(refreshMembers, 15000);
  if (loggedOut) return;
  try {
    state.members = await get('/berth/v1/members');
    state.membersError = '';
  } catch (e) {
    state.membersError = e instanceof ApiError && e.code === 403 ? e.message : `members unavailable: ${e.message}`;
  }
  schedule('members');
}

// metrics.k8s.io is computed from the agents' samples on request and cannot be watched, so it is
// the one thing polled, every 5 s. A 404 means no metrics API: the usage numbers are hidden.
async function pollUsage() {
  clearTimeout(pollUsage.timer);
  if (loggedOut) return;
  try {
    const list = await get('/apis/metrics.k8s.io/v1beta1/nodes');
    state.usage = new Map((list.items || []).map((m) => [m.metadata.name, m.usage || {}]));
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) {
      state.usage = null;
      schedule('nodes');
      return;
    }
  }
  schedule('nodes');
  pollUsage.timer = setTimeout(pollUsage, 5000);
}

/** The lab proxy's fault verbs: only `berthctl lab ui` answers /lab/info. */
async function labInfo() {
  let info;
  try {
    const resp = await fetch('/lab/info', { credentials: 'same-origin', cache: 'no-store' });
    if (resp.status !== 200) return;
    info = await resp.json();
  } catch (_) {
    return;
  }
  const panel = document.getElementById('lab');
  text(document.getElementById('lab-name'), info.name || 'lab');
  const list = document.getElementById('lab-nodes');
  list.replaceChildren(...(info.nodes || []).map((n) => h('li', { class: 'lab-node', 'data-node': n.name },
    h('span', { class: 'lname' }, n.name), h('span', { class: 'lrole' }, n.role || ''),
    ...['kill', 'restart', 'partition'].map((verb) =>
      h('button', { class: 'fault', type: 'button', 'data-verb': verb, 'data-node': n.name,
        onclick: () => act.fault(verb, n.name) }, verb)))));
  document.querySelector('button.fault-heal').addEventListener('click', () => act.heal());
  panel.classList.remove('hidden');
}

document.getElementById('login').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = document.getElementById('login-token').value.trim();
  if (!t) return;
  setToken(t);
  document.getElementById('login-token').value = '';
  start();
});

document.getElementById('logout').addEventListener('click', (e) => {
  e.preventDefault();
  setToken(null);
  showLogin();
});

// Ages in the events list move with time, not only with new events.
setInterval(() => schedule('events'), 10000);

start();
labInfo();
