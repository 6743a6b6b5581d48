//! `berth-probe disk`: sequential write/read and random 4 KiB read/write in one directory.
//!
//! Page cache honesty: a container cannot drop caches, so reads use O_DIRECT where the filesystem
//! allows it, else the file's clean pages are dropped with `posix_fadvise(DONTNEED)` (allowed
//! unprivileged), else the output says the numbers may come from memory. Writes are timed through
//! their final fsync, so they measure the device, not the cache.

use crate::json::Obj;
use rustix::fs::{fadvise, statfs, Advice, OFlags};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEQ_CHUNK: usize = 1024 * 1024;
const BLOCK: usize = 4096;
/// Count bound on random operations per phase.
const MAX_RANDOM_OPS: u64 = 10_000_000;

/// A buffer whose data starts on a 4 KiB boundary, as O_DIRECT requires; done with an offset into
/// a larger Vec so no unsafe allocation is needed.
struct Aligned {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, fill: u8) -> Aligned {
        let buf = vec![fill; len + BLOCK];
        let off = buf.as_ptr().align_offset(BLOCK);
        Aligned { buf, off, len }
    }
    fn get(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Removes the test file however the run ends.
struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// xorshift64*: a fixed-seed generator so every run touches the same offsets.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The filesystem's name from its statfs magic, for the output (tmpfs results are memory speed).
pub fn fs_name(magic: u64) -> &'static str {
    match magic {
        0x794c_7630 => "overlayfs",
        0x0102_1994 => "tmpfs",
        0xef53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x2fc1_2fc1 => "zfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        _ => "other",
    }
}

/// How a read phase avoided (or did not avoid) the page cache.
fn open_read(path: &Path) -> Result<(File, &'static str), String> {
    if let Ok(f) = OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::DIRECT.bits() as i32)
        .open(path)
    {
        return Ok((f, "O_DIRECT"));
    }
    let f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    if fadvise(&f, 0, None, Advice::DontNeed).is_ok() {
        Ok((f, "buffered after fadvise(DONTNEED); may be partly cached"))
    } else {
        Ok((f, "buffered; likely served from page cache"))
    }
}

fn open_write(path: &Path) -> Result<(File, &'static str), String> {
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(OFlags::DIRECT.bits() as i32)
        .open(path);
    match direct {
        Ok(f) => Ok((f, "O_DIRECT, fsync timed")),
        Err(_) => OpenOptions::new()
            .write(true)
            .open(path)
            .map(|f| (f, "buffered, fsync timed"))
            .map_err(|e| format!("open {}: {e}", path.display())),
    }
}

/// Sizes and bounds of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// File size in MiB.
    pub size_mib: u64,
    /// Time bound of each of the four phases.
    pub seconds: u64,
}

/// `berth-probe disk DIR`: runs the four phases on one file in `dir` and removes it.
pub fn run(dir: &Path, plan: Plan) -> Result<String, String> {
    let fs = statfs(dir).map_err(|e| format!("statfs {}: {e}", dir.display()))?;
    let fs = fs_name(fs.f_type as u64);
    let path = dir.join(format!("berth-probe-{}.dat", std::process::id()));
    let _cleanup = Cleanup(path.clone());
    let phase = Duration::from_secs(plan.seconds);

    // Sequential write, 1 MiB chunks, buffered then fsync (as `dd conv=fsync`): the time includes the flush.
    let mut chunk = Aligned::new(SEQ_CHUNK, 0);
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for b in chunk.get_mut().chunks_mut(8) {
        b.copy_from_slice(&r.next().to_le_bytes()[..b.len()]);
    }
    let mut f = File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    let start = Instant::now();
    let mut written: u64 = 0;
    while written < plan.size_mib * SEQ_CHUNK as u64 && start.elapsed() < phase {
        f.write_all(chunk.get())
            .map_err(|e| format!("write: {e}"))?;
        written += SEQ_CHUNK as u64;
    }
    f.sync_all().map_err(|e| format!("fsync: {e}"))?;
    let seq_write = mib_s(written, start.elapsed());
    drop(f);

    // Sequential read of what was written.
    let (mut f, read_cache) = open_read(&path)?;
    let start = Instant::now();
    let mut read: u64 = 0;
    while read < written && start.elapsed() < phase {
        let n = f.read(chunk.get_mut()).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let seq_read = mib_s(read, start.elapsed());
    drop(f);

    let blocks = (written / BLOCK as u64).max(1);
    let mut block = Aligned::new(BLOCK, 0xa5);

    // Random 4 KiB reads.
    let (f, _) = open_read(&path)?;
    let start = Instant::now();
    let mut ops: u64 = 0;
    while ops < MAX_RANDOM_OPS && start.elapsed() < phase {
        let off = (r.next() % blocks) * BLOCK as u64;
        f.read_at(block.get_mut(), off)
            .map_err(|e| format!("read: {e}"))?;
        ops += 1;
    }
    let rand_read = iops(ops, start.elapsed());
    drop(f);

    // Random 4 KiB writes, the final fsync inside the timed span.
    let (f, write_mode) = open_write(&path)?;
    let start = Instant::now();
    let mut ops: u64 = 0;
    while ops < MAX_RANDOM_OPS && start.elapsed() < phase {
        let off = (r.next() % blocks) * BLOCK as u64;
        f.write_all_at(block.get(), off)
            .map_err(|e| format!("write: {e}"))?;
        ops += 1;
    }
    f.sync_all().map_err(|e| format!("fsync: {e}"))?;
    let rand_write = iops(ops, start.elapsed());

    Ok(Obj::new()
        .str("mode", "disk")
        .str("dir", &dir.display().to_string())
        .str("fs", fs)
        .num("size_mib", written as f64 / SEQ_CHUNK as f64)
        .num("phase_seconds", plan.seconds as f64)
        .num("seq_write_mib_s", seq_write)
        .num("seq_read_mib_s", seq_read)
        .num("rand_read_iops", rand_read)
        .num("rand_write_iops", rand_write)
        // O_DIRECT "succeeds" on tmpfs but there is no device behind it: say so rather than imply a disk.
        .str(
            "read_cache",
            if fs == "tmpfs" {
                "tmpfs: memory, no device"
            } else {
                read_cache
            },
        )
        .str("write_mode", write_mode)
        .finish())
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / SEQ_CHUNK as f64 / d.as_secs_f64().max(1e-9)
}

fn iops(ops: u64, d: Duration) -> f64 {
    ops as f64 / d.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_run_in_a_temp_dir_reports_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("berth-probe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = run(
            &dir,
            Plan {
                size_mib: 4,
                seconds: 1,
            },
        )
        .unwrap();
        assert!(line.contains(r#""mode":"disk""#), "{line}");
        assert!(
            line.contains("seq_write_mib_s") && line.contains("rand_write_iops"),
            "{line}"
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "probe file left behind"
        );
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn aligned_buffers_are_aligned() {
        let mut a = Aligned::new(BLOCK, 1);
        assert_eq!(a.get().as_ptr() as usize % BLOCK, 0);
        assert_eq!(a.get_mut().len(), BLOCK);
        assert_eq!(fs_name(0x794c_7630), "overlayfs");
    }
}
