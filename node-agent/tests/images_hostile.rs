//! Hostile image layers and archives, built in memory: whatever they hold, nothing outside the
//! layer directory (here a sentinel directory beside it) changes, and each is refused with a clear error.

use node_agent::images::unpack::{self, apply_layer, apply_layer_with, Limits, Resolver};
use node_agent::images::{self, ImageStore};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tar::EntryType;

/// A tar written entry by entry from raw header bytes, so names may hold `..` or start with `/`.
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn entry(mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name);
            g.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory {
            0o777
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(EntryType::Regular, name.as_bytes(), b"", data)
    }

    fn dir(self, name: &str) -> Self {
        self.entry(EntryType::Directory, name.as_bytes(), b"", b"")
    }

    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(EntryType::Symlink, name.as_bytes(), target.as_bytes(), b"")
    }

    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(EntryType::Link, name.as_bytes(), target.as_bytes(), b"")
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// A rootfs and, beside it, a sentinel directory no layer may touch.
struct Scene {
    _tmp: tempfile::TempDir,
    rootfs: PathBuf,
    sentinel: PathBuf,
    before: BTreeMap<PathBuf, String>,
}

impl Scene {
    fn new() -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        let sentinel = tmp.path().join("sentinel");
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::create_dir_all(sentinel.join("sub")).unwrap();
        std::fs::write(sentinel.join("file"), "sentinel").unwrap();
        std::fs::write(sentinel.join("sub/etc"), "sentinel").unwrap();
        let before = snapshot(tmp.path(), &rootfs);
        Scene {
            _tmp: tmp,
            rootfs,
            sentinel,
            before,
        }
    }

    /// The sentinel's absolute path as a tar name beneath a symlink to `/` (`x/tmp/.../sentinel`).
    fn via_root_link(&self, rest: &str) -> String {
        format!("x{}/{rest}", self.sentinel.display())
    }

    fn apply(&self, tar: &[u8], resolver: Resolver) -> unpack::Result<unpack::Applied> {
        apply_layer_with(tar, &self.rootfs, &Limits::default(), resolver)
    }

    fn assert_untouched(&self) {
        let after = snapshot(self._tmp.path(), &self.rootfs);
        assert_eq!(self.before, after, "something outside the rootfs changed");
    }
}

/// Everything under `top` but `skip` (the rootfs itself): type, mode, link count, xattrs and content.
fn snapshot(top: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(p) = todo.pop() {
        if p == skip {
            continue;
        }
        let m = std::fs::symlink_metadata(&p).unwrap();
        let xattr = rustix::fs::lgetxattr(&p, "trusted.overlay.opaque", &mut [0u8; 8]).is_ok();
        let mut desc = format!(
            "{:?} {:o} nlink={} opaque={xattr}",
            m.file_type(),
            m.mode(),
            m.nlink()
        );
        if m.is_file() {
            desc += &format!(" {:?}", std::fs::read_to_string(&p).unwrap());
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
        out.insert(p, desc);
    }
    out
}

fn both(test: impl Fn(Resolver)) {
    for r in [Resolver::Kernel, Resolver::Walk] {
        test(r);
    }
}

#[test]
fn whiteout_under_a_symlink_to_root_deletes_only_inside() {
    both(|r| {
        let s = Scene::new();
        // As `x -> /` then `x/.wh.etc`, aimed at the sentinel rather than the host's /etc.
        let tar = RawTar::default()
            .symlink("x", "/")
            .file(&s.via_root_link("keep"), b"inside")
            .entry(
                EntryType::Regular,
                s.via_root_link(".wh.file").as_bytes(),
                b"",
                b"",
            )
            .entry(
                EntryType::Regular,
                s.via_root_link(".wh.sub").as_bytes(),
                b"",
                b"",
            )
            .entry(
                EntryType::Regular,
                s.via_root_link(".wh..wh..opq").as_bytes(),
                b"",
                b"",
            )
            .finish();
        s.apply(&tar, r).unwrap();
        s.assert_untouched();
        let inside = s.rootfs.join(s.sentinel.strip_prefix("/").unwrap());
        let wh = std::fs::symlink_metadata(inside.join("file")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &wh.file_type()
        ));
        assert_eq!(wh.rdev(), 0);
        assert_eq!(std::fs::read(inside.join("keep")).unwrap(), b"inside");
    });
}

#[test]
fn files_under_a_symlink_outside_land_inside() {
    both(|r| {
        let s = Scene::new();
        let abs = s.sentinel.display().to_string();
        // The link's target does not exist inside the root: refused, not created outside.
        let dangling = RawTar::default()
            .symlink("x", &abs)
            .file("x/pwned", b"pwned")
            .finish();
        let err = s.apply(&dangling, r).unwrap_err();
        assert!(
            matches!(&err, unpack::Error::Io { entry, source, .. } if entry == "x/pwned" && source.kind() == std::io::ErrorKind::NotFound),
            "{err}"
        );
        s.assert_untouched();
        let tar = RawTar::default()
            .dir(&abs)
            .symlink("x", &abs)
            .file("x/pwned", b"pwned")
            .dir("sentinel")
            .symlink("y", "../../../../../sentinel")
            .file("y/pwned", b"pwned")
            .dir("x/newdir")
            .finish();
        s.apply(&tar, r).unwrap();
        s.assert_untouched();
        let inside = s.rootfs.join(s.sentinel.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(inside.join("pwned")).unwrap(), b"pwned");
        assert!(inside.join("newdir").is_dir());
        assert_eq!(
            std::fs::read(s.rootfs.join("sentinel/pwned")).unwrap(),
            b"pwned"
        );
        // The links themselves are kept as written: resolved only when the container runs.
        assert_eq!(std::fs::read_link(s.rootfs.join("x")).unwrap(), s.sentinel);
    });
}

#[test]
fn an_entry_replaces_a_symlink_rather_than_writing_through_it() {
    both(|r| {
        let s = Scene::new();
        let file = s.sentinel.join("file").display().to_string();
        let dir = s.sentinel.join("sub").display().to_string();
        let tar = RawTar::default()
            .symlink("f", &file)
            .file("f", b"pwned")
            .symlink("d", &dir)
            .dir("d")
            .symlink("n", &file)
            .entry(EntryType::Fifo, b"n", b"", b"")
            .finish();
        s.apply(&tar, r).unwrap();
        s.assert_untouched();
        assert_eq!(std::fs::read(s.rootfs.join("f")).unwrap(), b"pwned");
        assert!(std::fs::symlink_metadata(s.rootfs.join("d"))
            .unwrap()
            .is_dir());
    });
}

#[test]
fn hardlinks_resolve_inside_the_root() {
    both(|r| {
        let s = Scene::new();
        let escape = RawTar::default()
            .hardlink("h", "../../sentinel/file")
            .finish();
        let err = s.apply(&escape, r).unwrap_err();
        assert!(
            matches!(&err, unpack::Error::LinkEscapes { entry, target } if entry == "h" && target == "../../sentinel/file"),
            "{err}"
        );
        assert!(err.to_string().contains("points outside the layer root"));

        // An absolute target is the rootfs's own: absent here, so refused, never the host's.
        let abs = RawTar::default().hardlink("h", "/etc/passwd").finish();
        let err = s.apply(&abs, r).unwrap_err();
        assert!(
            matches!(&err, unpack::Error::Io { op, source, .. } if op.contains("hardlink") && source.kind() == std::io::ErrorKind::NotFound),
            "{err}"
        );
        let passwd = std::fs::metadata("/etc/passwd").unwrap();

        // Through a symlinked parent: still resolved inside, so it finds nothing.
        let via = RawTar::default()
            .symlink("x", &s.sentinel.display().to_string())
            .hardlink("h", "x/file")
            .finish();
        assert!(s.apply(&via, r).is_err());
        s.assert_untouched();
        assert_eq!(
            std::fs::metadata("/etc/passwd").unwrap().nlink(),
            passwd.nlink()
        );

        // With the target in the layer, the link is to the layer's own file.
        let own = RawTar::default()
            .file("/etc/passwd", b"root:x:0:0::/:/bin/sh\n")
            .hardlink("h", "/etc/passwd")
            .finish();
        s.apply(&own, r).unwrap();
        assert_eq!(std::fs::metadata(s.rootfs.join("h")).unwrap().nlink(), 2);
        s.assert_untouched();
    });
}

#[test]
fn dotdot_names_are_refused_and_absolute_names_stay_inside() {
    both(|r| {
        let s = Scene::new();
        for name in [
            "../sentinel/pwned",
            "a/../../sentinel/pwned",
            "/../sentinel/pwned",
        ] {
            let tar = RawTar::default().file(name, b"pwned").finish();
            let err = s.apply(&tar, r).unwrap_err();
            assert!(
                matches!(&err, unpack::Error::Escapes { entry } if entry == name),
                "{name}: {err}"
            );
            assert!(err.to_string().contains("escapes the layer root"));
        }
        let abs = format!("{}/pwned", s.sentinel.display());
        let tar = RawTar::default().file(&abs, b"pwned").finish();
        s.apply(&tar, r).unwrap();
        assert!(s.rootfs.join(abs.trim_start_matches('/')).is_file());
        for name in [".wh..", "a/.wh."] {
            let tar = RawTar::default().file(name, b"").finish();
            let err = s.apply(&tar, r).unwrap_err();
            assert!(
                matches!(err, unpack::Error::BadWhiteout { .. }),
                "{name}: {err}"
            );
        }
        s.assert_untouched();
    });
}

/// A gzip stream of one tar entry of `size` zero bytes, compressed only as far as it is read.
fn gzip_bomb(size: u64) -> impl Read {
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let tar = std::io::Cursor::new(h.as_bytes().to_vec()).chain(std::io::repeat(0).take(size));
    flate2::read::GzEncoder::new(tar, flate2::Compression::fast())
}

#[test]
fn a_gzip_bomb_stops_at_the_ratio_limit() {
    let s = Scene::new();
    let limits = Limits::default();
    let err = apply_layer(gzip_bomb(1 << 30), &s.rootfs, &limits).unwrap_err();
    assert!(
        matches!(err, unpack::Error::Ratio { limit } if limit == limits.max_ratio),
        "{err}"
    );
    assert!(err.to_string().contains("compression bomb"));
    let written = std::fs::metadata(s.rootfs.join("zeros")).unwrap().len();
    assert!(
        written <= limits.ratio_after + (1 << 20),
        "{written} bytes written"
    );
    s.assert_untouched();
}

#[test]
fn size_entry_and_header_limits_end_the_layer() {
    let s = Scene::new();
    let small = Limits {
        max_bytes: 4 << 20,
        ..Limits::default()
    };
    let err = apply_layer(gzip_bomb(1 << 30), &s.rootfs, &small).unwrap_err();
    assert!(
        matches!(err, unpack::Error::TooLarge { limit } if limit == 4 << 20),
        "{err}"
    );

    let few = Limits {
        max_entries: 10,
        ..Limits::default()
    };
    let mut tar = RawTar::default();
    for i in 0..20 {
        tar = tar.file(&format!("f{i}"), b"x");
    }
    let err = apply_layer(&tar.finish()[..], &s.rootfs, &few).unwrap_err();
    assert!(
        matches!(err, unpack::Error::TooManyEntries { limit: 10 }),
        "{err}"
    );

    // A GNU sparse file whose one data byte sits after a 4 GiB hole: the tar reader makes up the
    // zeros, so only counting what is written stops it.
    let mut h = tar::Header::new_gnu();
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..6].copy_from_slice(b"sparse");
        let octal = |v: u64| {
            let mut f = [0u8; 12];
            f[..11].copy_from_slice(format!("{v:011o}").as_bytes());
            f
        };
        g.sparse[0].offset = octal((4 << 30) - 1);
        g.sparse[0].numbytes = octal(1);
        g.realsize = octal(4 << 30);
    }
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[b'x'; 512]);
    tar.extend_from_slice(&[0u8; 1024]);
    let err = apply_layer(&tar[..], &s.rootfs, &Limits::default()).unwrap_err();
    assert!(matches!(err, unpack::Error::Ratio { .. }), "{err}");
    let err = apply_layer(&tar[..], &s.rootfs, &small).unwrap_err();
    assert!(matches!(err, unpack::Error::TooLarge { .. }), "{err}");

    // A GNU long name the tar reader would hold in memory whole.
    let long = vec![b'a'; 2 << 20];
    let tar = RawTar::default()
        .entry(EntryType::GNULongName, b"././@LongLink", b"", &long)
        .file("x", b"")
        .finish();
    let err = apply_layer(&tar[..], &s.rootfs, &Limits::default()).unwrap_err();
    assert!(matches!(err, unpack::Error::HeaderTooLarge { .. }), "{err}");

    // Deep paths: up to PATH_MAX they unpack (directories made on the way), past it they are refused.
    let deep = "d/".repeat(2000) + "f";
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let too_deep = "d/".repeat(2100) + "f";
    b.append_data(&mut h, &too_deep, &b"x"[..]).unwrap();
    let err = apply_layer(&b.into_inner().unwrap()[..], &s.rootfs, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, unpack::Error::NameTooLong { len: 4201 }),
        "{err}"
    );
    assert!(s.rootfs.join(&deep).is_file());

    let err = apply_layer(
        &b"not a tar at all, just some bytes"[..],
        &s.rootfs,
        &Limits::default(),
    );
    assert!(err.is_err());
    s.assert_untouched();
}

#[test]
fn applied_digests_are_of_the_blob_and_of_the_uncompressed_tar() {
    let s = Scene::new();
    let tar = RawTar::default()
        .dir("etc")
        .file("etc/hostname", b"h\n")
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let blob = gz.finish().unwrap();
    let a = apply_layer(&blob[..], &s.rootfs, &Limits::default()).unwrap();
    assert_eq!(a.digest, sha256(&blob));
    assert_eq!(a.diff_id, sha256(&tar));
    assert_eq!(a.entries, 2);
    assert_eq!(
        std::fs::read(s.rootfs.join("etc/hostname")).unwrap(),
        b"h\n"
    );
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// A `docker save` archive of one image with one layer; `tweak` edits the manifest and config.
fn docker_save(
    layer: &[u8],
    tweak: impl Fn(&mut serde_json::Value, &mut serde_json::Value),
) -> Vec<u8> {
    let mut config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
    });
    let mut manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["hostile/test:1"],
        "Layers": ["abc/layer.tar"],
    }]);
    tweak(&mut manifest, &mut config);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add("config.json", config.to_string().as_bytes());
    add("manifest.json", manifest.to_string().as_bytes());
    add("abc/layer.tar", layer);
    b.into_inner().unwrap()
}

struct Store {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    store: ImageStore,
}

fn store() -> Store {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = ImageStore::open(&data).unwrap();
    Store {
        _tmp: tmp,
        data,
        store,
    }
}

impl Store {
    /// No layer directory and no leftover scratch: a refused import leaves nothing behind.
    fn assert_clean(&self) {
        assert_eq!(
            std::fs::read_dir(self.data.join("layers")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(self.data.join("images/tmp"))
                .unwrap()
                .count(),
            0
        );
        assert!(self.store.list().is_empty());
    }
}

#[test]
fn a_valid_docker_save_archive_imports() {
    let s = store();
    let layer = RawTar::default().file("bin/sh", b"#!").finish();
    let recs = s
        .store
        .import_tar(&docker_save(&layer, |_, _| {})[..])
        .unwrap();
    assert_eq!(recs[0].name, "docker.io/hostile/test:1");
    let dirs = s.store.layer_dirs(&recs[0]).unwrap();
    assert_eq!(std::fs::read(dirs[0].join("bin/sh")).unwrap(), b"#!");
}

#[test]
fn a_diff_id_that_does_not_match_the_layer_is_refused() {
    let s = store();
    let layer = RawTar::default().file("bin/sh", b"#!").finish();
    let wrong = format!("sha256:{}", "0".repeat(64));
    let tar = docker_save(&layer, |_, c| {
        c["rootfs"]["diff_ids"][0] = wrong.clone().into()
    });
    let err = s.store.import_tar(&tar[..]).unwrap_err();
    assert!(
        matches!(&err, images::Error::DigestMismatch(m) if m.contains(&wrong)),
        "{err}"
    );
    s.assert_clean();
}

#[test]
fn malformed_digests_and_paths_in_an_archive_are_refused() {
    let layer = RawTar::default().file("bin/sh", b"#!").finish();
    let s = store();
    let tar = docker_save(&layer, |_, c| {
        c["rootfs"]["diff_ids"][0] = "sha256:../../x".into()
    });
    let err = s.store.import_tar(&tar[..]).unwrap_err();
    assert!(
        matches!(&err, images::Error::InvalidDigest(d) if d == "sha256:../../x"),
        "{err}"
    );
    s.assert_clean();
    for bad in ["../../etc/passwd", "/etc/passwd", "abc/../../x"] {
        for field in ["Config", "Layers"] {
            let tar = docker_save(&layer, |m, _| {
                m[0][field] = if field == "Layers" {
                    serde_json::json!([bad])
                } else {
                    bad.into()
                }
            });
            let err = s.store.import_tar(&tar[..]).unwrap_err();
            assert!(
                err.to_string()
                    .contains("want a relative path inside the archive"),
                "{field} {bad}: {err}"
            );
            s.assert_clean();
        }
    }
}

#[test]
fn archive_symlinks_resolve_inside_the_archive() {
    let s = store();
    let layer = RawTar::default().file("bin/sh", b"#!").finish();
    // `config.json` and the layer are links out of the archive: to a host file and a device.
    let mut tar = RawTar::default()
        .symlink("config.json", "/etc/passwd")
        .symlink("abc/layer.tar", "/dev/zero");
    let manifest = serde_json::json!([{"Config": "config.json", "Layers": ["abc/layer.tar"]}]);
    tar = tar.file("manifest.json", manifest.to_string().as_bytes());
    let err = s.store.import_tar(&tar.finish()[..]).unwrap_err();
    assert!(
        matches!(&err, images::Error::Io { path, source } if path == "config.json" && source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    s.assert_clean();
    let _ = layer;
}

#[test]
fn a_gzip_bomb_layer_in_an_archive_fails_cleanly() {
    let s = store();
    let mut bomb = Vec::new();
    gzip_bomb(1 << 30)
        .take(4 << 20)
        .read_to_end(&mut bomb)
        .unwrap();
    let tar = docker_save(&bomb, |_, _| {});
    let limits = Limits {
        ratio_after: 8 << 20,
        ..Limits::default()
    };
    let store = ImageStore::open(&s.data).unwrap().with_limits(limits);
    let err = store.import_tar(&tar[..]).unwrap_err();
    assert!(
        matches!(
            &err,
            images::Error::Layer {
                source: unpack::Error::Ratio { .. },
                ..
            }
        ),
        "{err}"
    );
    s.assert_clean();
}

#[test]
fn an_oci_layout_with_bad_digests_is_refused() {
    let layer = RawTar::default().file("bin/sh", b"#!").finish();
    let config =
        serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]}}).to_string();
    let oci = |manifest_digest: Option<&str>, layer_digest: &str| {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"digest": sha256(config.as_bytes()), "size": config.len()},
            "layers": [{"digest": layer_digest, "size": layer.len(),
                        "mediaType": "application/vnd.oci.image.layer.v1.tar"}],
        })
        .to_string();
        let md = manifest_digest
            .map(String::from)
            .unwrap_or_else(|| sha256(manifest.as_bytes()));
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": md,
            "annotations": {"io.containerd.image.name": "hostile/oci:1"}}]});
        let mut t = RawTar::default()
            .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .file("index.json", index.to_string().as_bytes());
        for data in [manifest.as_bytes(), config.as_bytes(), &layer[..]] {
            let name = format!("blobs/sha256/{}", &sha256(data)[7..]);
            t = t.file(&name, data);
        }
        t.finish()
    };
    let s = store();
    let recs = s.store.import_tar(&oci(None, &sha256(&layer))[..]).unwrap();
    assert_eq!(recs[0].name, "docker.io/hostile/oci:1");

    let s = store();
    let err = s
        .store
        .import_tar(&oci(Some("sha256:../../../etc/passwd"), &sha256(&layer))[..])
        .unwrap_err();
    assert!(matches!(&err, images::Error::InvalidDigest(_)), "{err}");
    s.assert_clean();

    // The layer is named by a digest its bytes do not have.
    let other = format!("sha256:{}", "1".repeat(64));
    let err = s.store.import_tar(&oci(None, &other)[..]).unwrap_err();
    assert!(
        matches!(&err, images::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err}"
    );
    s.assert_clean();
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            Just("x".to_string()),
            Just("y".to_string()),
            Just("sentinel".to_string()),
            Just("file".to_string()),
            Just("..".to_string()),
            Just(".wh.file".to_string()),
            Just(".wh..wh..opq".to_string()),
            Just(".wh.sub".to_string()),
        ];
        proptest::collection::vec(part, 1..4).prop_map(|v| v.join("/"))
    }

    fn target() -> impl Strategy<Value = String> {
        prop_oneof![
            // The scene's own directory stands in for `/`: a regression then harms only the scene.
            Just("TOP".to_string()),
            Just("..".to_string()),
            Just("../..".to_string()),
            Just("SENTINEL".to_string()),
            Just("SENTINEL/file".to_string()),
            Just("../sentinel".to_string()),
            Just("/proc/self/root/TOP".to_string()),
            name(),
        ]
    }

    #[derive(Debug, Clone)]
    enum Op {
        File(String),
        Dir(String),
        Symlink(String, String),
        Hardlink(String, String),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            name().prop_map(Op::File),
            name().prop_map(Op::Dir),
            (name(), target()).prop_map(|(n, t)| Op::Symlink(n, t)),
            (name(), target()).prop_map(|(n, t)| Op::Hardlink(n, t)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        /// Whatever mix of links, whiteouts and `..` a layer holds, and whether it is applied or
        /// refused, nothing outside the rootfs changes (either resolver).
        #[test]
        fn no_layer_reaches_outside_its_root(ops in proptest::collection::vec(op(), 1..10), walk in any::<bool>()) {
            let s = Scene::new();
            let abs = s.sentinel.display().to_string();
            let top = s.sentinel.parent().unwrap().display().to_string();
            let fix = |t: &str| t.replace("SENTINEL", &abs).replace("/TOP", &top).replace("TOP", &top);
            let mut tar = RawTar::default();
            for op in &ops {
                tar = match op {
                    Op::File(n) => tar.file(n, b"pwned"),
                    Op::Dir(n) => tar.dir(n),
                    Op::Symlink(n, t) => tar.symlink(n, &fix(t)),
                    Op::Hardlink(n, t) => tar.hardlink(n, &fix(t)),
                };
            }
            let r = if walk { Resolver::Walk } else { Resolver::Kernel };
            let _ = s.apply(&tar.finish(), r);
            s.assert_untouched();
        }
    }
}

/// The agent's `POST /images/load` over loopback: a refused archive answers 400 with the reason,
/// a declared body over the bound answers 413 before anything is read, and the store stays clean.
#[tokio::test]
async fn image_load_endpoint_refuses_hostile_and_oversized_uploads() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = store();
    let state = node_agent::agent::AgentState {
        runtime: std::sync::Arc::new(node_agent::runtime::fake::FakeRuntime::new()),
        images: std::sync::Arc::new(ImageStore::open(&s.data).unwrap()),
        lookup: Default::default(),
        summary: std::sync::Arc::new(node_agent::metrics::LatestSummary::new("n1")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(node_agent::server::serve(listener, state, shutdown.clone()));
    let post = |head: String, body: Vec<u8>| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&body).await.unwrap();
        let mut resp = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            c.read_to_string(&mut resp),
        )
        .await
        .unwrap()
        .unwrap();
        resp
    };
    let request = |len: u64| {
        format!("POST /images/load HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n")
    };

    let huge = node_agent::server::MAX_IMAGE_LOAD_BYTES + 1;
    let resp = post(request(huge), Vec::new()).await;
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
    assert!(
        resp.contains(&format!("image tar larger than {} bytes", huge - 1)),
        "{resp}"
    );

    let layer = RawTar::default().file("bin/sh", b"#!").finish();
    let tar = docker_save(&layer, |m, _| m[0]["Config"] = "../../etc/passwd".into());
    let resp = post(request(tar.len() as u64), tar).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(
        resp.contains("image load failed") && resp.contains("want a relative path"),
        "{resp}"
    );

    let tar = docker_save(&layer, |_, _| {});
    let resp = post(request(tar.len() as u64), tar).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("docker.io/hostile/test:1"), "{resp}");
    assert_eq!(
        std::fs::read_dir(s.data.join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
    shutdown.cancel();
    server.await.unwrap();
}
