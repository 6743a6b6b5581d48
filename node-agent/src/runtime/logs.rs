//! Container log files in the CRI format (`2026-11-25T07:00:00.000000000Z stdout F line`), rotated by size:
//! `N.log` is current, `N.log.1` the previous chunk.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Longest content of one log record; longer lines are split into partial (`P`) records, as CRI does.
pub const MAX_RECORD: usize = 16 * 1024;

/// Appends CRI log records to a file and rotates it when it exceeds `max_size` bytes.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
}

impl LogWriter {
    /// Opens (appending) the log at `path`.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: &Path, max_size: u64) -> std::io::Result<LogWriter> {
        if let Some(d) = path.parent() {
            fs::create_dir_all(d)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
        })
    }

    /// Writes one record; `partial` marks a line that continues in the next record.
    ///
    /// # Errors
    /// Writing or rotating failed.
    pub fn write_record(
        &mut self,
        stream: &str,
        content: &[u8],
        partial: bool,
    ) -> std::io::Result<()> {
        let ts = apimachinery::time::rfc3339_nanos(std::time::SystemTime::now());
        let tag = if partial { "P" } else { "F" };
        let mut rec = Vec::with_capacity(content.len() + 48);
        rec.extend_from_slice(format!("{ts} {stream} {tag} ").as_bytes());
        rec.extend_from_slice(content);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        fs::rename(&self.path, rotated(&self.path))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The path of the previous rotated chunk of `path`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".1");
    PathBuf::from(s)
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// RFC3339Nano timestamp.
    pub time: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// Whether the line continues in the next record.
    pub partial: bool,
    /// The content, without newline.
    pub content: String,
}

/// Parses a CRI log line; `None` for malformed lines.
pub fn parse_record(line: &str) -> Option<Record> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?.to_string();
    let stream = it.next()?.to_string();
    let tag = it.next()?;
    let content = it.next().unwrap_or("").trim_end_matches('\n').to_string();
    Some(Record {
        time,
        stream,
        partial: tag == "P",
        content,
    })
}

/// Reads the whole log (rotated chunk first) as the container wrote it, joining partial records; keeps
/// only the last `tail` lines when given.
pub fn read_lines(path: &Path, tail: Option<usize>) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for p in [rotated(path), path.to_path_buf()] {
        let Ok(f) = File::open(&p) else { continue };
        for l in BufReader::new(f).lines().map_while(Result::ok) {
            if let Some(r) = parse_record(&l) {
                cur.push_str(&r.content);
                if !r.partial {
                    lines.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut w = LogWriter::open(&path, 200).unwrap();
        for i in 0..10 {
            w.write_record("stdout", format!("line {i}").as_bytes(), false)
                .unwrap();
        }
        w.write_record("stderr", b"par", true).unwrap();
        w.write_record("stderr", b"tial", false).unwrap();
        assert!(rotated(&path).exists(), "log rotated past 200 bytes");
        assert!(fs::metadata(&path).unwrap().len() <= 200);
        let all = read_lines(&path, None);
        assert_eq!(all.last().unwrap(), "partial");
        assert_eq!(
            read_lines(&path, Some(2)),
            vec!["line 9".to_string(), "partial".to_string()]
        );
        let rec = parse_record("2026-11-25T07:00:00.000000000Z stdout F hello world").unwrap();
        assert_eq!(rec.content, "hello world");
        assert_eq!(rec.stream, "stdout");
    }
}
