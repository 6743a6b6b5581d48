#!/usr/bin/env python3
"""Records the protobuf bodies stock kubectl POSTs/DELETEs, as fixtures for api/protobuf.rs tests.

Usage: python3 capture_protobuf.py OUTDIR   (listens on 127.0.0.1 only; needs `kubectl` on PATH)
Runs `kubectl create namespace|configmap|secret generic|deployment|service clusterip|nodeport` and a
`kubectl drain` whose server lacks pods/eviction (so drain DELETEs with a protobuf DeleteOptions body),
then writes each request body to OUTDIR/<name>.bin.
"""
import json, os, subprocess, sys, tempfile, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AGG = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

def res(name, kind, scope, short, group="", singular=None):
    return {"resource": name, "responseKind": {"group": group, "version": "v1", "kind": kind},
            "scope": scope, "singularResource": singular or kind.lower(), "shortNames": short, "verbs": VERBS}

CORE = {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
        "items": [{"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
            res("namespaces", "Namespace", "Cluster", ["ns"]),
            res("nodes", "Node", "Cluster", ["no"]),
            res("pods", "Pod", "Namespaced", ["po"]),
            res("configmaps", "ConfigMap", "Namespaced", ["cm"]),
            res("secrets", "Secret", "Namespaced", []),
            res("services", "Service", "Namespaced", ["svc"])]}]}]}
APPS = {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
        "items": [{"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
            res("deployments", "Deployment", "Namespaced", ["deploy"], "apps"),
            res("replicasets", "ReplicaSet", "Namespaced", ["rs"], "apps")]}]}]}
LEGACY_V1 = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": VERBS},
    {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node", "verbs": VERBS}]}
NODE = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node1", "uid": "n-uid"}, "spec": {}}
POD = {"kind": "Pod", "apiVersion": "v1",
       "metadata": {"name": "web-1", "namespace": "default", "uid": "p-uid",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                         "uid": "rs-uid", "controller": True}]},
       "spec": {"nodeName": "node1", "containers": [{"name": "a", "image": "busybox"}]},
       "status": {"phase": "Running"}}

captured = []
deleted = set()

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, code, obj, ctype="application/json"):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        p = self.path.split("?")[0]
        if p == "/version":
            return self.send(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0"})
        if p == "/api":
            return self.send(200, CORE, AGG)
        if p == "/apis":
            return self.send(200, APPS, AGG)
        if p == "/api/v1":
            return self.send(200, LEGACY_V1)
        if p == "/api/v1/nodes/node1":
            return self.send(200, NODE)
        if p == "/api/v1/pods":
            return self.send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"},
                                   "items": [] if "web-1" in deleted else [POD]})
        if p == "/api/v1/namespaces/default/pods/web-1":
            if "web-1" in deleted:
                return self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                       "reason": "NotFound", "code": 404, "message": "pods \"web-1\" not found"})
            return self.send(200, POD)
        self.send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})

    def do_PATCH(self):
        self.body()
        self.send(200, dict(NODE, spec={"unschedulable": True}))

    def do_POST(self):
        data = self.body()
        captured.append((self.path.split("?")[0], self.headers.get("Content-Type"), data))
        self.send(201, {"kind": "Status", "apiVersion": "v1", "metadata": {"name": "x"}})

    def do_DELETE(self):
        data = self.body()
        captured.append(("DELETE " + self.path.split("?")[0], self.headers.get("Content-Type"), data))
        deleted.add("web-1")
        self.send(200, POD)

def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    server = "http://127.0.0.1:%d" % srv.server_address[1]
    cache = tempfile.mkdtemp()
    blob = os.path.join(cache, "blob.bin")
    with open(blob, "wb") as f:
        f.write(bytes([0, 1, 2, 255]))
    cmds = {
        "namespace": ["create", "namespace", "foo"],
        "configmap": ["create", "configmap", "cfg", "--from-literal=a=1", "--from-literal=b=two"],
        "secret": ["create", "secret", "generic", "sec", "--from-literal=user=admin", "--from-literal=pw=s3cr3t"],
        "deployment": ["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2", "--port=80"],
        "service_clusterip": ["create", "service", "clusterip", "web", "--tcp=80:8080"],
        "service_nodeport": ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
        "deployment_multi": ["create", "deployment", "multi", "--image=busybox", "--image=nginx", "--replicas=0"],
        "configmap_binary": ["create", "configmap", "bin", "--from-file=blob=" + blob],
        "secret_docker": ["create", "secret", "docker-registry", "reg", "--docker-server=registry.local",
                          "--docker-username=u", "--docker-password=p"],
        "service_externalname": ["create", "service", "externalname", "ext", "--external-name=example.com"],
        "drain": ["drain", "node1", "--force", "--grace-period=10", "--timeout=20s"],
    }
    for name, args in cmds.items():
        before = len(captured)
        r = subprocess.run(["kubectl", "--server", server, "--cache-dir", cache, "-n", "default"] + args,
                           capture_output=True, text=True, timeout=60)
        new = captured[before:]
        print(name, "rc", r.returncode, r.stderr.strip()[:200])
        for k, ctype, data in new:
            with open(os.path.join(out, name + ".bin"), "wb") as f:
                f.write(data)
            print("  ", k, ctype, len(data))
    srv.shutdown()

if __name__ == "__main__":
    main()
