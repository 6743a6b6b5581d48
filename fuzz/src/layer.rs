//! One image layer tar applied into a temporary rootfs, as the node agent unpacks pulled layers:
//! once with the kernel's `openat2` resolution and once with the walking fallback used on kernels
//! without it.

use std::fs;
use std::path::Path;

/// Every path under `dir`, for the escape check.
fn listing(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The input is a layer (plain or gzip tar). It is applied into `work/rootfs`, beside an empty
/// `work/sentinel` directory, by each resolver.
///
/// Invariant: never panics; nothing is written outside the rootfs: `work` still holds only
/// `rootfs` and `sentinel`, and `sentinel` stays empty.
pub fn layer(input: &[u8]) {
    use node_agent::images::unpack::Resolver;
    for resolver in [Resolver::Kernel, Resolver::Walk] {
        layer_with(input, resolver);
    }
}

fn layer_with(input: &[u8], resolver: node_agent::images::unpack::Resolver) {
    let work = tempfile::tempdir().expect("temp dir");
    let rootfs = work.path().join("rootfs");
    let sentinel = work.path().join("sentinel");
    fs::create_dir(&rootfs).expect("rootfs");
    fs::create_dir(&sentinel).expect("sentinel");
    let limits = node_agent::images::unpack::Limits::default();
    let _ = node_agent::images::unpack::apply_layer_with(input, &rootfs, &limits, resolver);
    assert_eq!(
        listing(work.path()),
        ["rootfs", "sentinel"],
        "the layer wrote beside the rootfs"
    );
    assert!(
        listing(&sentinel).is_empty(),
        "the layer wrote into the sentinel directory: {:?}",
        listing(&sentinel)
    );
    // A read-only directory in the layer must not stop the temp dir's removal on the next run.
    let _ = make_writable(&rootfs);
}

fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755))?;
            make_writable(&e.path())?;
        }
    }
    Ok(())
}
