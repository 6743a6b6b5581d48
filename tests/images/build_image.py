#!/usr/bin/env python3
"""Builds berth/busybox:latest as an OCI image layout and a docker-save tar from busybox-static.

Two layers, so importers exercise layer sharing and whiteouts: layer 1 is the busybox rootfs,
layer 2 deletes /etc/motd-old with a `.wh.` whiteout and adds /etc/berth-release.
Everything is deterministic (fixed mtimes, sorted entries), so digests are stable across runs.
"""
import argparse, gzip, hashlib, io, json, os, shutil, subprocess, tarfile

MTIME = 1700000000
REF = "berth/busybox:latest"


def add_dir(tf, name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, MTIME
    tf.addfile(ti)


def add_file(tf, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, MTIME
    tf.addfile(ti, io.BytesIO(data))


def add_link(tf, name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, MTIME
    tf.addfile(ti)


def layer1(busybox):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for d in ["bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin", "var", "var/www"]:
            add_dir(tf, d)
        add_dir(tf, "tmp", 0o1777)
        with open(busybox, "rb") as f:
            add_file(tf, "bin/busybox", f.read(), 0o755)
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
        for a in sorted(set(applets)):
            if a != "busybox":
                add_link(tf, "bin/" + a, "busybox")
        add_file(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        add_file(tf, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_file(tf, "etc/motd-old", b"this file is deleted by a whiteout in layer 2\n")
        add_file(tf, "var/www/index.html", b"hello from berth busybox\n")
    return buf.getvalue()


def layer2():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        add_dir(tf, "etc")
        add_file(tf, "etc/.wh.motd-old", b"")
        add_file(tf, "etc/berth-release", b"berth test image 1\n")
    return buf.getvalue()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)

    raw = [layer1(a.busybox), layer2()]
    diff_ids = ["sha256:" + sha(r) for r in raw]
    # Layer 1 gzip (the usual registry form), layer 2 plain: importers must handle both.
    blobs_layers = [gzip.compress(raw[0], mtime=0), raw[1]]
    layer_types = ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar"]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "tests/images/build.sh"}] * 2,
    }
    config_b = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + sha(config_b), "size": len(config_b)},
        "layers": [{"mediaType": t, "digest": "sha256:" + sha(b), "size": len(b)} for t, b in zip(layer_types, blobs_layers)],
    }
    manifest_b = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + sha(manifest_b),
            "size": len(manifest_b),
            "annotations": {"io.containerd.image.name": "docker.io/" + REF, "org.opencontainers.image.ref.name": "latest"},
        }],
    }
    index_b = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()

    # OCI layout directory and tar.
    d = os.path.join(out, "busybox-oci")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "blobs", "sha256"))
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index_b}
    for b in [config_b, manifest_b] + blobs_layers:
        files["blobs/sha256/" + sha(b)] = b
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    oci_tar = os.path.join(out, "busybox-oci.tar")
    with tarfile.open(oci_tar, "w") as tf:
        add_dir(tf, "blobs")
        add_dir(tf, "blobs/sha256")
        for name in sorted(files):
            add_file(tf, name, files[name])

    # docker save: uncompressed layers, manifest.json with RepoTags.
    docker_tar = os.path.join(out, "busybox-docker.tar")
    cfg_name = sha(config_b) + ".json"
    layer_names = [sha(r) + "/layer.tar" for r in raw]
    dm = [{"Config": cfg_name, "RepoTags": [REF], "Layers": layer_names}]
    with tarfile.open(docker_tar, "w") as tf:
        add_file(tf, cfg_name, config_b)
        for n, r in zip(layer_names, raw):
            add_dir(tf, n.split("/")[0])
            add_file(tf, n, r)
        add_file(tf, "manifest.json", json.dumps(dm).encode())
        add_file(tf, "repositories", json.dumps({"berth/busybox": {"latest": sha(raw[-1])}}).encode())

    print(oci_tar)
    print(d)
    print(docker_tar)


if __name__ == "__main__":
    main()
