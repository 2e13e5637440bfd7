//! Image compression on every core: gzip (SWUpdate's "zlib") as independent deflate blocks
//! compressed in parallel and joined into one gzip member (what `pigz --independent` does),
//! and zstd with libzstd's own worker threads. The output is hashed (sha256) and summed
//! (cpio-crc) as it is written, so the image is read once.

use crate::swdesc::Compression;
use flate2::{Compress, FlushCompress, Status};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// Input bytes per parallel gzip chunk.
const CHUNK: usize = 4 << 20;

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes read from the image.
    pub input_len: u64,
    /// Bytes written (stored in the package).
    pub len: u64,
    /// sha256 of the written bytes, lowercase hex.
    pub sha256: String,
    /// cpio-crc sum of the written bytes.
    pub sum: u32,
}

/// A writer that hashes, sums and counts.
pub struct Tally<W: Write> {
    inner: W,
    sha: Sha256,
    sum: u32,
    len: u64,
}

impl<W: Write> Tally<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        Tally {
            inner,
            sha: Sha256::new(),
            sum: 0,
            len: 0,
        }
    }
    /// (sha256 hex, byte sum, length, inner writer).
    pub fn finish(self) -> (String, u32, u64, W) {
        (hex(&self.sha.finalize()), self.sum, self.len, self.inner)
    }
}

impl<W: Write> Write for Tally<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.sum = crate::cpio::checksum(&buf[..n], self.sum);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub use crate::hex;

/// Number of worker threads to use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Compress `input` into `out` (hashing what is written). `level`: gzip 1..=9, zstd 1..=19.
pub fn compress(
    kind: Compression,
    level: u32,
    threads: usize,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> io::Result<Stored> {
    let mut t = Tally::new(out);
    let input_len = match kind {
        Compression::None => io::copy(input, &mut t)?,
        Compression::Gzip => gzip_parallel(level, threads.max(1), input, &mut t)?,
        Compression::Zstd => {
            let mut enc = zstd::stream::Encoder::new(&mut t, level as i32)?;
            if threads > 1 {
                enc.multithread(threads as u32)?;
            }
            let n = io::copy(input, &mut enc)?;
            enc.finish()?;
            n
        }
    };
    t.flush()?;
    let (sha256, sum, len, _) = t.finish();
    Ok(Stored {
        input_len,
        len,
        sha256,
        sum,
    })
}

/// Deflate's window: what a dictionary can hold.
const WINDOW: usize = 32 << 10;

/// Raw deflate of one chunk, ended by a sync flush (byte-aligned, not final) or, for the
/// last, by the final block.
fn deflate_chunk(dict: &[u8], data: &[u8], level: u32, last: bool) -> Vec<u8> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        // The previous chunk's last 32 KiB, as pigz does: the output is as small as a
        // single-threaded deflate's, give or take the flush markers.
        c.set_dictionary(dict)
            .expect("setting a deflate dictionary before any input cannot fail");
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(out.capacity().max(256 * 1024));
        }
        let done_in = c.total_in() as usize;
        let st = c
            .compress_vec(&data[done_in..], &mut out, flush)
            .expect("deflate of a memory buffer cannot fail");
        let all_in = c.total_in() as usize == data.len();
        if last && st == Status::StreamEnd {
            return out;
        }
        // A sync flush is complete when zlib stopped with room to spare.
        if !last && all_in && out.len() < out.capacity() {
            return out;
        }
    }
}

fn read_full(input: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<usize> {
    buf.clear();
    let n = input.take(want as u64).read_to_end(buf)?;
    Ok(n)
}

fn gzip_parallel(
    level: u32,
    threads: usize,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> io::Result<u64> {
    // RFC 1952 header: deflate, no flags, mtime 0 (reproducible), OS unix.
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
    let mut crc = crc32fast::Hasher::new();
    let mut total: u64 = 0;
    let mut bufs: Vec<Vec<u8>> = (0..threads).map(|_| Vec::with_capacity(CHUNK)).collect();
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let mut n_full = 0;
        let mut eof = false;
        for b in bufs.iter_mut() {
            let n = read_full(input, b, CHUNK)?;
            if n > 0 {
                n_full += 1;
            }
            if n < CHUNK {
                eof = true;
                break;
            }
        }
        let batch = &bufs[..n_full];
        let carry_ref = &carry;
        let results: Vec<(Vec<u8>, crc32fast::Hasher)> = std::thread::scope(|s| {
            let hs: Vec<_> = batch
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    s.spawn(move || {
                        let prev: &[u8] = if i == 0 { carry_ref } else { &batch[i - 1] };
                        let dict = &prev[prev.len().saturating_sub(WINDOW)..];
                        let mut h = crc32fast::Hasher::new();
                        h.update(b);
                        (deflate_chunk(dict, b, level, false), h)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("deflate worker"))
                .collect()
        });
        for (b, (z, h)) in batch.iter().zip(results) {
            out.write_all(&z)?;
            crc.combine(&h);
            total += b.len() as u64;
        }
        if let Some(b) = batch.last() {
            carry.clear();
            carry.extend_from_slice(&b[b.len().saturating_sub(WINDOW)..]);
        }
        if eof {
            break;
        }
    }
    out.write_all(&deflate_chunk(&[], &[], level, true))?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    out.write_all(&(total as u32).to_le_bytes())?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut d = flate2::read::GzDecoder::new(z);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        // One gzip member: nothing after it.
        assert_eq!(d.into_inner().len(), 0);
        out
    }

    #[test]
    fn parallel_gzip_is_one_valid_member_across_chunks() {
        let data: Vec<u8> = (0..(CHUNK * 3 + 12345))
            .map(|i| (i % 251) as u8 ^ (i / 7000) as u8)
            .collect();
        for threads in [1, 2, 3] {
            let mut z = Vec::new();
            let st = compress(Compression::Gzip, 6, threads, &mut &data[..], &mut z).unwrap();
            assert_eq!(st.input_len, data.len() as u64);
            assert_eq!(st.len, z.len() as u64);
            assert_eq!(st.sha256, hex(&Sha256::digest(&z)));
            assert_eq!(gunzip(&z), data);
        }
        // Exactly a multiple of the chunk, and empty.
        for len in [CHUNK * 2, 0] {
            let d = vec![7u8; len];
            let mut z = Vec::new();
            compress(Compression::Gzip, 1, 2, &mut &d[..], &mut z).unwrap();
            assert_eq!(gunzip(&z), d);
        }
    }

    #[test]
    fn zstd_roundtrip() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 13) as u8).collect();
        let mut z = Vec::new();
        let st = compress(Compression::Zstd, 3, 2, &mut &data[..], &mut z).unwrap();
        assert_eq!(st.len, z.len() as u64);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn small_inputs_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..5000), level in 1u32..=9) {
            let mut z = Vec::new();
            compress(Compression::Gzip, level, 2, &mut &data[..], &mut z).unwrap();
            prop_assert_eq!(gunzip(&z), data);
        }
    }
}
