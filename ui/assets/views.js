// Renders the watched state into the DOM. Pure with respect to the cluster: it reads the caches the
// watchers fill and calls `act` (actions.js) from buttons; the data-* hooks are the contract the
// browser tests rely on, so keep their names and values.

import { h, attr, text, sync, quantity, cpu, bytes, age } from './dom.js';

const STACK_LABEL = 'com.docker.stack.namespace';
const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown'];

const byName = (a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
const nsName = (o) => (o.metadata.namespace || '') + '/' + o.metadata.name;
const byNsName = (a, b) => (nsName(a) < nsName(b) ? -1 : nsName(a) > nsName(b) ? 1 : 0);

export function nodeReady(n) {
  const c = ((n.status || {}).conditions || []).find((c) => c.type === 'Ready');
  if (!c) return 'unknown';
  return c.status === 'True' ? 'true' : c.status === 'False' ? 'false' : 'unknown';
}

function podPhase(p) {
  const ph = (p.status || {}).phase;
  return PHASES.includes(ph) ? ph : 'Unknown';
}

function podBox(p, act) {
  const del = h('button', { class: 'delete-pod', title: 'delete pod', type: 'button' }, '×');
  del.addEventListener('click', (e) => {
    e.stopPropagation();
    const el = e.currentTarget.closest('.pod');
    act.deletePod(el.dataset.namespace, el.dataset.pod);
  });
  return h('div', { class: 'pod' }, h('span', { class: 'pod-name' }), del);
}

function updatePod(el, p) {
  const phase = podPhase(p);
  const term = p.metadata.deletionTimestamp ? 'true' : 'false';
  attr(el, 'data-pod', p.metadata.name);
  attr(el, 'data-namespace', p.metadata.namespace);
  attr(el, 'data-phase', phase);
  attr(el, 'data-terminating', term);
  const statuses = (p.status || {}).containerStatuses || [];
  const ready = statuses.filter((c) => c.ready).length;
  const restarts = statuses.reduce((n, c) => n + (c.restartCount || 0), 0);
  const waiting = statuses.map((c) => c.state && c.state.waiting && c.state.waiting.reason).find(Boolean);
  attr(el, 'title', `${p.metadata.namespace}/${p.metadata.name}\n${term === 'true' ? 'Terminating' : waiting || phase}` +
    ` ${ready}/${statuses.length || (p.spec.containers || []).length} ready, ${restarts} restarts` +
    `${(p.status || {}).podIP ? '\nIP ' + p.status.podIP : ''}\nage ${age(p.metadata.creationTimestamp)}`);
  text(el.querySelector('.pod-name'), p.metadata.name);
}

function nodeColumn(n, act) {
  const cordon = h('button', { class: 'cordon', type: 'button' });
  cordon.addEventListener('click', (e) => {
    const el = e.currentTarget.closest('.node');
    act.cordon(el.dataset.node, el.dataset.unschedulable !== 'true');
  });
  const drain = h('button', { class: 'drain', type: 'button' }, 'drain');
  drain.addEventListener('click', (e) => act.drain(e.currentTarget.closest('.node').dataset.node));
  return h('section', { class: 'node' },
    h('header', {},
      h('h3', { class: 'node-name' }),
      h('div', { class: 'node-conds' }, h('span', { class: 'cond' }), h('span', { class: 'sched' })),
      h('div', { class: 'usage' }),
      h('div', { class: 'node-actions' }, cordon, drain)),
    h('div', { class: 'pods' }));
}

function updateNode(el, n, pods, usage, act) {
  const ready = nodeReady(n);
  const unsched = n.spec && n.spec.unschedulable ? 'true' : 'false';
  attr(el, 'data-node', n.metadata.name);
  attr(el, 'data-ready', ready);
  attr(el, 'data-unschedulable', unsched);
  text(el.querySelector('.node-name'), n.metadata.name);
  const cond = el.querySelector('.cond');
  text(cond, ready === 'true' ? 'Ready' : ready === 'false' ? 'NotReady' : 'Unknown');
  attr(cond, 'class', 'cond cond-' + ready);
  text(el.querySelector('.sched'), unsched === 'true' ? 'SchedulingDisabled' : '');
  text(el.querySelector('button.cordon'), unsched === 'true' ? 'uncordon' : 'cordon');
  const alloc = (n.status || {}).allocatable || (n.status || {}).capacity || {};
  const u = usage && usage.get(n.metadata.name);
  const cores = quantity(alloc.cpu);
  const mem = quantity(alloc.memory);
  text(el.querySelector('.usage'), u
    ? `cpu ${cpu(quantity(u.cpu))}/${cpu(cores)} · mem ${bytes(quantity(u.memory))}/${bytes(mem)}`
    : usage === null ? '' : `cpu ${cpu(cores)} · mem ${bytes(mem)}`);
  sync(el.querySelector('.pods'), pods, nsName, (p) => podBox(p, act), updatePod);
}

/** Nodes as columns with their pods; pods bound to no (known) node go to `#pending`. */
export function renderNodes(state, act) {
  const nodes = [...state.nodes.values()].sort(byName);
  const known = new Set(nodes.map((n) => n.metadata.name));
  const onNode = new Map(nodes.map((n) => [n.metadata.name, []]));
  const pending = [];
  for (const p of [...state.pods.values()].sort(byNsName)) {
    const node = (p.spec || {}).nodeName;
    if (node && known.has(node)) onNode.get(node).push(p);
    else if (!node) pending.push(p);
    else pending.push(p); // Bound to a Node object that is gone: still worth seeing.
  }
  sync(document.getElementById('nodes'), nodes, (n) => n.metadata.name, (n) => nodeColumn(n, act),
    (el, n) => updateNode(el, n, onNode.get(n.metadata.name), state.usage, act));
  sync(document.getElementById('pending'), pending, nsName, (p) => podBox(p, act), updatePod);
  text(document.getElementById('pending-count'), pending.length ? `(${pending.length})` : '');
}

function readyOf(kind, o) {
  const s = o.status || {};
  const spec = o.spec || {};
  if (kind === 'Deployment') return [s.readyReplicas || 0, spec.replicas === undefined ? 1 : spec.replicas];
  if (kind === 'DaemonSet') return [s.numberReady || 0, s.desiredNumberScheduled || 0];
  return [s.succeeded || 0, spec.completions === undefined || spec.completions === null ? 1 : spec.completions];
}

function workloadRow(w, act) {
  const kids = [h('span', { class: 'kind' }), h('span', { class: 'wname' }), h('span', { class: 'ready' }),
    h('span', { class: 'detail' })];
  if (w.kind === 'Deployment') {
    const input = h('input', { class: 'scale-replicas', type: 'number', min: '0', step: '1', 'aria-label': 'replicas' });
    input.addEventListener('input', () => { input.dataset.dirty = 'true'; });
    const apply = h('button', { class: 'scale-apply', type: 'button' }, 'scale');
    apply.addEventListener('click', (e) => {
      const el = e.currentTarget.closest('.workload');
      delete input.dataset.dirty;
      act.scale(el.dataset.namespace, el.dataset.name, input.value);
    });
    kids.push(input, apply);
  }
  if (w.kind === 'Deployment' || w.kind === 'DaemonSet') {
    const restart = h('button', { class: 'restart', type: 'button' }, 'restart');
    restart.addEventListener('click', (e) => {
      const el = e.currentTarget.closest('.workload');
      act.restart(el.dataset.kind, el.dataset.namespace, el.dataset.name);
    });
    kids.push(restart);
  }
  return h('div', { class: 'workload' }, ...kids);
}

function updateWorkload(el, w) {
  const o = w.obj;
  const [ready, desired] = readyOf(w.kind, o);
  attr(el, 'data-kind', w.kind);
  attr(el, 'data-name', o.metadata.name);
  attr(el, 'data-namespace', o.metadata.namespace);
  text(el.querySelector('.kind'), w.kind);
  text(el.querySelector('.wname'), o.metadata.name);
  const r = el.querySelector('.ready');
  text(r, `${ready}/${desired}`);
  attr(r, 'class', 'ready' + (ready >= desired ? ' ok' : ' short'));
  const s = o.status || {};
  text(el.querySelector('.detail'), w.kind === 'Deployment'
    ? `up-to-date ${s.updatedReplicas || 0} available ${s.availableReplicas || 0}`
    : w.kind === 'Job' ? `active ${s.active || 0} failed ${s.failed || 0}` : `scheduled ${s.currentNumberScheduled || 0}`);
  const input = el.querySelector('input.scale-replicas');
  // Never overwrite what the user is typing; follow the cluster otherwise.
  if (input && document.activeElement !== input && !input.dataset.dirty) {
    const v = String(desired);
    if (input.value !== v) input.value = v;
  }
}

/** Deployments, DaemonSets and Jobs grouped by stack (the Compose stack label, else the namespace). */
export function renderWorkloads(state, act) {
  const all = [];
  for (const [kind, m] of [['Deployment', state.deployments], ['DaemonSet', state.daemonsets], ['Job', state.jobs]]) {
    for (const o of m.values()) all.push({ kind, obj: o });
  }
  const groups = new Map();
  for (const w of all) {
    const labels = w.obj.metadata.labels || {};
    const g = labels[STACK_LABEL] || w.obj.metadata.namespace;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(w);
  }
  const keyOf = (w) => `${w.kind}/${w.obj.metadata.namespace}/${w.obj.metadata.name}`;
  const names = [...groups.keys()].sort();
  sync(document.getElementById('workloads'), names, (g) => g,
    (g) => h('div', { class: 'stack' }, h('h3', {}, g), h('div', { class: 'stack-items' })),
    (el, g) => {
      attr(el, 'data-stack', g);
      const items = groups.get(g).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
      sync(el.querySelector('.stack-items'), items, keyOf, (w) => workloadRow(w, act), updateWorkload);
    });
}

function portText(p) {
  let s = `${p.port}`;
  if (p.targetPort !== undefined && String(p.targetPort) !== String(p.port)) s += `→${p.targetPort}`;
  if (p.nodePort) s += ` (node ${p.nodePort})`;
  return s + '/' + (p.protocol || 'TCP');
}

/** Services with type, ClusterIP, ports and their ready endpoints. */
export function renderServices(state) {
  const svcs = [...state.services.values()].sort(byNsName);
  sync(document.getElementById('services'), svcs, nsName,
    () => h('div', { class: 'service' }, h('span', { class: 'sname' }), h('span', { class: 'stype' }),
      h('span', { class: 'sip' }), h('span', { class: 'sports' }), h('span', { class: 'sendpoints' })),
    (el, s) => {
      attr(el, 'data-name', s.metadata.name);
      attr(el, 'data-namespace', s.metadata.namespace);
      const spec = s.spec || {};
      text(el.querySelector('.sname'), `${s.metadata.namespace}/${s.metadata.name}`);
      text(el.querySelector('.stype'), spec.type || 'ClusterIP');
      text(el.querySelector('.sip'), spec.clusterIP || '');
      text(el.querySelector('.sports'), (spec.ports || []).map(portText).join(', '));
      const ep = state.endpoints.get(nsName(s));
      const ready = [];
      let notReady = 0;
      for (const sub of (ep && ep.subsets) || []) {
        for (const a of sub.addresses || []) ready.push(a.ip + (a.targetRef ? ` (${a.targetRef.name})` : ''));
        notReady += (sub.notReadyAddresses || []).length;
      }
      const e = el.querySelector('.sendpoints');
      text(e, `${ready.length} ready${notReady ? `, ${notReady} not ready` : ''}`);
      attr(e, 'title', ready.join('\n'));
      attr(el, 'data-ready-endpoints', ready.length);
    });
}

const MAX_EVENTS = 100;

function eventTime(e) {
  return e.lastTimestamp || e.eventTime || (e.series && e.series.lastObservedTime) || e.firstTimestamp ||
    e.metadata.creationTimestamp || '';
}

/** The newest events first, at most MAX_EVENTS. */
export function renderEvents(state) {
  const evs = [...state.events.values()]
    .sort((a, b) => (eventTime(a) < eventTime(b) ? 1 : eventTime(a) > eventTime(b) ? -1 : 0))
    .slice(0, MAX_EVENTS);
  sync(document.getElementById('events'), evs, (e) => e.metadata.uid || nsName(e),
    () => h('li', { class: 'event' }, h('span', { class: 'etime' }), h('span', { class: 'etype' }),
      h('span', { class: 'eobj' }), h('span', { class: 'ereason' }), h('span', { class: 'emsg' })),
    (el, e) => {
      const io = e.involvedObject || e.regarding || {};
      attr(el, 'data-type', e.type || 'Normal');
      text(el.querySelector('.etime'), age(eventTime(e)));
      text(el.querySelector('.etype'), e.type || 'Normal');
      text(el.querySelector('.eobj'), `${(io.kind || '').toLowerCase()}/${io.name || ''}`);
      text(el.querySelector('.ereason'), e.reason || '');
      text(el.querySelector('.emsg'), (e.message || e.note || '') + (e.count > 1 ? ` (×${e.count})` : ''));
    });
}

/** Leader and members. The Lease names the leader as watched; the members endpoint adds the rest. */
export function renderMembers(state) {
  const lease = state.leases.get('kube-system/berth-leader');
  const leader = (lease && lease.spec && lease.spec.holderIdentity) || (state.members && state.members.leader) || '';
  text(document.getElementById('leader'), leader || 'none');
  const list = (state.members && state.members.members) || [];
  const names = list.length ? list : leader ? [{ name: leader }] : [];
  sync(document.getElementById('members'), names, (m) => m.name,
    () => h('li', { class: 'member' }, h('span', { class: 'mname' }), h('span', { class: 'mrole' }),
      h('span', { class: 'maddr' })),
    (el, m) => {
      const isLeader = m.name === leader;
      attr(el, 'data-name', m.name);
      attr(el, 'data-leader', isLeader ? 'true' : 'false');
      text(el.querySelector('.mname'), m.name + (m.self ? ' (answering)' : ''));
      text(el.querySelector('.mrole'), isLeader ? 'leader' : m.role === 'leader' ? 'leader?' : m.role || '');
      text(el.querySelector('.maddr'), m.apiAddress || m.peerAddress || '');
    });
  text(document.getElementById('members-note'), state.membersError || '');
}
