#!/usr/bin/env python3
"""Drives a berth API server with the official Python `kubernetes` client: create, list, patch
(strategic, merge, JSON, apply), scale, status, watch and delete a Deployment.

Usage: python_client.py KUBECONFIG  (HTTPS with a client certificate, as a cluster user has)
"""
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def main(kubeconfig):
    api = config.new_client_from_config(config_file=kubeconfig)
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    ns = "default"

    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pyweb", "labels": {"app": "pyweb"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "pyweb"}},
            "template": {
                "metadata": {"labels": {"app": "pyweb"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    created = apps.create_namespaced_deployment(ns, body)
    assert created.metadata.name == "pyweb", created.metadata
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"

    try:
        apps.create_namespaced_deployment(ns, body)
        raise AssertionError("duplicate create succeeded")
    except ApiException as e:
        assert e.status == 409, e

    listed = apps.list_namespaced_deployment(ns, label_selector="app=pyweb")
    assert [d.metadata.name for d in listed.items] == ["pyweb"], listed.items
    assert listed.metadata.resource_version

    # Paging with limit/_continue.
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": "cm%d" % i}})
    page = core.list_namespaced_config_map(ns, limit=2)
    assert len(page.items) == 2 and page.metadata._continue, page.metadata
    rest = core.list_namespaced_config_map(ns, limit=2, _continue=page.metadata._continue)
    assert len(rest.items) == 1, rest.items

    # Strategic merge patch (a dict), JSON patch (a list), merge patch, server-side apply.
    p = apps.patch_namespaced_deployment("pyweb", ns, {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "nginx:1.28"}]}}}})
    assert p.spec.template.spec.containers[0].image == "nginx:1.28"
    assert p.metadata.generation == 2
    p = apps.patch_namespaced_deployment("pyweb", ns, [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert p.spec.replicas == 4
    p = apps.patch_namespaced_deployment("pyweb", ns, {"metadata": {"labels": {"tier": "fe"}}},
                                         _content_type="application/merge-patch+json")
    assert p.metadata.labels["tier"] == "fe"
    p = apps.patch_namespaced_deployment("pyweb", ns, {"apiVersion": "apps/v1", "kind": "Deployment",
                                                       "metadata": {"name": "pyweb"}, "spec": {"replicas": 3}},
                                         field_manager="py", _content_type="application/apply-patch+yaml")
    assert p.spec.replicas == 3

    # Scale (the client sends a strategic merge patch) and the status subresource.
    s = apps.patch_namespaced_deployment_scale("pyweb", ns, {"spec": {"replicas": 5}})
    assert s.spec.replicas == 5
    st = apps.read_namespaced_deployment_status("pyweb", ns)
    assert st.metadata.name == "pyweb"

    # Replace with the current resourceVersion.
    cur = apps.read_namespaced_deployment("pyweb", ns)
    cur.spec.replicas = 1
    r = apps.replace_namespaced_deployment("pyweb", ns, cur)
    assert r.spec.replicas == 1

    # Watch without a resourceVersion: the current object arrives as ADDED.
    w = watch.Watch()
    seen = []
    for ev in w.stream(apps.list_namespaced_deployment, ns, timeout_seconds=2):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["object"].metadata.name == "pyweb":
            w.stop()
    assert ("ADDED", "pyweb") in seen, seen

    status = apps.delete_namespaced_deployment("pyweb", ns)
    try:
        apps.read_namespaced_deployment("pyweb", ns)
        raise AssertionError("deployment still there after delete: %s" % status)
    except ApiException as e:
        assert e.status == 404, e
    print("python client: ok")


if __name__ == "__main__":
    main(sys.argv[1])
