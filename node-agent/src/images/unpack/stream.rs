//! The readers a layer passes through: the blob as read (hashed for its digest), gunzipped when it is gzip,
//! and the tar stream (hashed for its diff_id) where the [`Limits`] are enforced.

use super::error::{Error, Result};
use super::limits::Limits;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::io::{self, BufReader, Read};
use std::rc::Rc;

/// Which limit was crossed, kept aside because it has to travel up as an `io::Error` through the
/// gzip and tar readers.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hit {
    Bytes,
    Header,
    Ratio,
}

#[derive(Default)]
pub(super) struct Meter {
    pub(super) raw: Cell<u64>,
    pub(super) out: Cell<u64>,
    /// Bytes written into files: more than `out` for GNU sparse entries, whose holes the tar reader
    /// fills with zeros that never passed through the stream.
    pub(super) written: Cell<u64>,
    /// `Some(out at the start)` while the tar reader is looking for the next entry's header.
    pub(super) header_from: Cell<Option<u64>>,
    pub(super) hit: Cell<Option<Hit>>,
}

impl Meter {
    /// Accounts for `n` bytes written into a file, under the same size and ratio limits as the stream.
    pub(super) fn wrote(&self, n: usize, limits: &Limits) -> Result<()> {
        let w = self.written.get() + n as u64;
        self.written.set(w);
        if w > limits.max_bytes {
            return Err(Error::TooLarge {
                limit: limits.max_bytes,
            });
        }
        if w > limits.ratio_after && w / limits.max_ratio.max(1) > self.raw.get() {
            return Err(Error::Ratio {
                limit: limits.max_ratio,
            });
        }
        Ok(())
    }

    /// The error behind an `io::Error` that came out of the readers: a crossed limit, or a bad stream.
    pub(super) fn classify(&self, limits: &Limits, e: io::Error) -> Error {
        match self.hit.take() {
            Some(Hit::Bytes) => Error::TooLarge {
                limit: limits.max_bytes,
            },
            Some(Hit::Header) => Error::HeaderTooLarge {
                limit: limits.max_header_bytes,
            },
            Some(Hit::Ratio) => Error::Ratio {
                limit: limits.max_ratio,
            },
            None => Error::Tar(e),
        }
    }
}

/// The blob as read: hashed for its digest, counted for the ratio.
pub(super) struct Raw<R> {
    pub(super) inner: R,
    pub(super) hasher: Sha256,
    pub(super) meter: Rc<Meter>,
}

impl<R: Read> Read for Raw<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.meter.raw.set(self.meter.raw.get() + n as u64);
        Ok(n)
    }
}

pub(super) enum Decoded<R: Read> {
    Gzip(flate2::read::MultiGzDecoder<BufReader<Raw<R>>>),
    Plain(BufReader<Raw<R>>),
}

impl<R: Read> Decoded<R> {
    pub(super) fn into_raw(self) -> BufReader<Raw<R>> {
        match self {
            Decoded::Gzip(d) => d.into_inner(),
            Decoded::Plain(r) => r,
        }
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Gzip(d) => d.read(buf),
            Decoded::Plain(r) => r.read(buf),
        }
    }
}

/// The uncompressed tar: hashed for the diff_id, and where every limit but the entry count bites.
pub(super) struct Limited<R: Read> {
    pub(super) inner: Decoded<R>,
    pub(super) hasher: Sha256,
    pub(super) meter: Rc<Meter>,
    pub(super) limits: Limits,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        let m = &self.meter;
        let out = m.out.get() + n as u64;
        m.out.set(out);
        let hit = if out > self.limits.max_bytes {
            Some(Hit::Bytes)
        } else if m
            .header_from
            .get()
            .is_some_and(|from| out - from > self.limits.max_header_bytes)
        {
            Some(Hit::Header)
        } else if out > self.limits.ratio_after && out / self.limits.max_ratio.max(1) > m.raw.get()
        {
            Some(Hit::Ratio)
        } else {
            None
        };
        if let Some(h) = hit {
            m.hit.set(Some(h));
            return Err(io::Error::other("layer limit crossed"));
        }
        Ok(n)
    }
}
