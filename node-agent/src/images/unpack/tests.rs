//! Unit tests of the unpacker's name cleaning and tree removal; hostile layers are in `tests/images_hostile.rs`.

use super::entry::{clean, remove};
use proptest::prelude::*;
use rustix::fs::{openat, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

fn names(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

#[test]
fn clean_drops_roots_and_dots_and_refuses_climbing() {
    assert_eq!(clean(b"/etc/passwd"), Some(names(&["etc", "passwd"])));
    assert_eq!(clean(b"./a//b/./c/"), Some(names(&["a", "b", "c"])));
    assert_eq!(clean(b"a/../b"), Some(names(&["b"])));
    assert_eq!(clean(b"./"), Some(vec![]));
    assert_eq!(clean(b"../x"), None);
    assert_eq!(clean(b"a/../../x"), None);
    assert_eq!(clean(b"/../x"), None);
}

proptest! {
    /// Whatever the name, a cleaned path is plain names only: nothing the kernel could walk upward.
    #[test]
    fn clean_yields_only_plain_names(name in proptest::collection::vec(
        prop_oneof![Just(b'/'), Just(b'.'), Just(b'a'), Just(0xffu8)], 0..24)) {
        if let Some(parts) = clean(&name) {
            for p in parts {
                prop_assert!(!p.is_empty() && p != "." && p != "..");
                prop_assert!(!p.as_bytes().contains(&b'/'));
            }
        }
    }
}

#[test]
fn remove_takes_deep_trees_without_following_links() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    let mut p = t.path().join("root/tree");
    for i in 0..300 {
        p = p.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("f"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, t.path().join("root/tree/link")).unwrap();
    let dir = openat(
        rustix::fs::CWD,
        t.path().join("root"),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    remove(&dir, OsStr::new("tree")).unwrap();
    assert!(!t.path().join("root/tree").exists());
    assert!(outside.join("keep").exists());
    remove(&dir, OsStr::new("tree")).unwrap();
}
