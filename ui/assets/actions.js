// What the buttons do: each a plain API call, as kubectl would make it. Destructive ones ask
// window.confirm first. The result shows up through the watches, not through these answers.

import { request, patchMerge, get } from './api.js';

const core = (ns, res, name) => `/api/v1/namespaces/${encodeURIComponent(ns)}/${res}/${encodeURIComponent(name)}`;
const apps = (ns, res, name) => `/apis/apps/v1/namespaces/${encodeURIComponent(ns)}/${res}/${encodeURIComponent(name)}`;

/** The actions, reporting outcomes through `notify(message, isError)`. */
export function actions(notify, state) {
  const run = async (what, f) => {
    try {
      await f();
      notify(what);
    } catch (e) {
      notify(`${what} failed: ${e.message}`, true);
    }
  };
  return {
    scale(ns, name, value) {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0) {
        notify(`scale ${name}: "${value}" is no replica count`, true);
        return;
      }
      if (n === 0 && !window.confirm(`Scale deployment ${ns}/${name} to 0?`)) return;
      run(`scaled deployment ${ns}/${name} to ${n}`, () =>
        patchMerge(apps(ns, 'deployments', name) + '/scale', { spec: { replicas: n } }));
    },

    restart(kind, ns, name) {
      if (!window.confirm(`Restart every pod of ${kind.toLowerCase()} ${ns}/${name}?`)) return;
      const res = kind === 'DaemonSet' ? 'daemonsets' : 'deployments';
      // kubectl rollout restart: a new template annotation makes a new revision that rolls out.
      const body = { spec: { template: { metadata: { annotations: {
        'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } };
      run(`restarted ${kind.toLowerCase()} ${ns}/${name}`, () => patchMerge(apps(ns, res, name), body));
    },

    deletePod(ns, name) {
      if (!window.confirm(`Delete pod ${ns}/${name}?`)) return;
      run(`deleted pod ${ns}/${name}`, () => request('DELETE', core(ns, 'pods', name)));
    },

    cordon(node, on) {
      const path = `/api/v1/nodes/${encodeURIComponent(node)}`;
      run(`${on ? 'cordoned' : 'uncordoned'} ${node}`, () => patchMerge(path, { spec: { unschedulable: on ? true : null } }));
    },

    drain(node) {
      if (!window.confirm(`Drain ${node}: cordon it and evict every pod not owned by a DaemonSet?`)) return;
      run(`drained ${node}`, async () => {
        await patchMerge(`/api/v1/nodes/${encodeURIComponent(node)}`, { spec: { unschedulable: true } });
        // A fresh list rather than the cache: a pod scheduled a moment ago must go too.
        const pods = await get(`/api/v1/pods?fieldSelector=${encodeURIComponent('spec.nodeName=' + node)}`);
        const victims = (pods.items || []).filter((p) =>
          p.spec.nodeName === node && !p.metadata.deletionTimestamp &&
          !(p.metadata.ownerReferences || []).some((o) => o.kind === 'DaemonSet'));
        const failed = [];
        await Promise.all(victims.map(async (p) => {
          const eviction = { apiVersion: 'policy/v1', kind: 'Eviction',
            metadata: { name: p.metadata.name, namespace: p.metadata.namespace } };
          try {
            await request('POST', core(p.metadata.namespace, 'pods', p.metadata.name) + '/eviction', eviction);
          } catch (e) {
            if (e.code !== 404) failed.push(`${p.metadata.name}: ${e.message}`);
          }
        }));
        if (failed.length) throw new Error(failed.join('; '));
      });
    },

    fault(verb, node) {
      if (!window.confirm(`${verb} lab node ${node}?`)) return;
      run(`${verb} ${node}`, () => request('POST', `/lab/${verb}/${encodeURIComponent(node)}`));
    },

    heal() {
      run('healed the lab', () => request('POST', '/lab/heal'));
    },

    state,
  };
}
