//! The cpio "new" formats SWUpdate reads: `070701` (newc) and `070702` (crc, whose checksum is
//! the 32-bit sum of the member's bytes). A writer and a reader, each a few dozen lines: the
//! crates.io cpio crates are small and unmaintained, and the format is fixed since 1990.

use std::io::{self, Read, Write};

/// Magic of the crc format, which we write.
pub const MAGIC_CRC: &[u8; 6] = b"070702";
/// Magic of the newc format (read only).
pub const MAGIC_NEWC: &[u8; 6] = b"070701";
/// The name of the last, empty member.
pub const TRAILER: &str = "TRAILER!!!";
/// Header length in bytes.
pub const HEADER_LEN: usize = 110;
/// SWUpdate (and the format) limit a member to 32-bit sizes.
pub const MAX_MEMBER: u64 = u32::MAX as u64;

/// The cpio-crc checksum: the sum of all bytes, modulo 2^32.
pub fn checksum(data: &[u8], start: u32) -> u32 {
    data.iter().fold(start, |s, b| s.wrapping_add(*b as u32))
}

fn pad4(n: u64) -> usize {
    ((4 - (n % 4)) % 4) as usize
}

/// Writes members one after another, then the trailer.
pub struct Writer<W: Write> {
    out: W,
    ino: u32,
    pos: u64,
}

impl<W: Write> Writer<W> {
    /// A writer over `out`.
    pub fn new(out: W) -> Self {
        Writer {
            out,
            ino: 0,
            pos: 0,
        }
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, sum: u32) -> io::Result<()> {
        if size > MAX_MEMBER {
            return Err(io::Error::other(format!(
                "cpio member {name} is {size} bytes: over the format's 4 GiB limit"
            )));
        }
        let namesize = name.len() + 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            size as u32,
            0,
            0,
            0,
            0,
            namesize as u32,
            sum,
        ];
        let mut h = Vec::with_capacity(HEADER_LEN + namesize + 4);
        h.extend_from_slice(MAGIC_CRC);
        for f in fields {
            h.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        h.resize(h.len() + pad4(h.len() as u64), 0);
        self.ino += 1;
        self.out.write_all(&h)?;
        self.pos += h.len() as u64;
        Ok(())
    }

    /// Write one regular file member from a reader holding exactly `size` bytes whose byte sum
    /// is `sum` (see [`checksum`]).
    pub fn member(
        &mut self,
        name: &str,
        size: u64,
        sum: u32,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.header(name, 0o100644, size, sum)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("cpio member {name}: expected {size} bytes, got {copied}"),
            ));
        }
        self.out.write_all(&[0u8; 3][..pad4(size)])?;
        self.pos += size + pad4(size) as u64;
        Ok(())
    }

    /// Write a member held in memory.
    pub fn member_bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.member(name, data.len() as u64, checksum(data, 0), &mut &data[..])
    }

    /// Write the trailer and return the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, 0, 0)?;
        Ok(self.out)
    }
}

/// One member's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its mode bits.
    pub mode: u32,
    /// Its size in bytes.
    pub size: u64,
    /// The crc-format checksum, `None` for newc.
    pub checksum: Option<u32>,
    /// Offset of its data in the archive.
    pub offset: u64,
}

/// A malformed archive.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// I/O.
    #[error("reading the archive: {0}")]
    Io(#[from] io::Error),
    /// Not a member header where one must be.
    #[error("offset {offset}: {what}")]
    Format {
        /// Where.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// Reads members in order; stops at the trailer.
pub struct Reader<R: Read> {
    inp: R,
    pos: u64,
    pending: u64,
    done: bool,
}

fn hex8(b: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(b).ok()?;
    if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

impl<R: Read> Reader<R> {
    /// A reader over an archive.
    pub fn new(inp: R) -> Self {
        Reader {
            inp,
            pos: 0,
            pending: 0,
            done: false,
        }
    }

    fn skip(&mut self, n: u64) -> Result<(), ReadError> {
        let got = io::copy(&mut (&mut self.inp).take(n), &mut io::sink())?;
        self.pos += got;
        if got != n {
            return Err(self.err("archive ends inside a member"));
        }
        Ok(())
    }

    fn err(&self, what: &str) -> ReadError {
        ReadError::Format {
            offset: self.pos,
            what: what.to_string(),
        }
    }

    /// The next member's header (skipping what is left of the previous member's data), or
    /// `None` after the trailer.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, ReadError> {
        if self.done {
            return Ok(None);
        }
        let rest = self.pending;
        self.pending = 0;
        self.skip(rest)?;
        let start = self.pos;
        let mut h = [0u8; HEADER_LEN];
        self.inp
            .read_exact(&mut h)
            .map_err(|_| self.err("archive ends before its trailer (truncated?)"))?;
        self.pos += HEADER_LEN as u64;
        let crc = match &h[..6] {
            m if m == MAGIC_CRC => true,
            m if m == MAGIC_NEWC => false,
            _ => {
                return Err(ReadError::Format {
                    offset: start,
                    what: "not a cpio newc/crc header (magic 070701/070702)".into(),
                })
            }
        };
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            *v = hex8(&h[6 + 8 * i..14 + 8 * i]).ok_or_else(|| ReadError::Format {
                offset: start,
                what: format!("header field {i} is not 8 hex digits"),
            })?;
        }
        let (mode, size, namesize, sum) = (f[1], f[6] as u64, f[11] as usize, f[12]);
        if namesize == 0 || namesize > 4096 {
            return Err(ReadError::Format {
                offset: start,
                what: format!("name size {namesize} out of range"),
            });
        }
        let mut name = vec![0u8; namesize + pad4((HEADER_LEN + namesize) as u64)];
        self.inp
            .read_exact(&mut name)
            .map_err(|_| self.err("archive ends inside a member name"))?;
        self.pos += name.len() as u64;
        if name[namesize - 1] != 0 {
            return Err(ReadError::Format {
                offset: start,
                what: "member name is not NUL-terminated".into(),
            });
        }
        let name =
            String::from_utf8(name[..namesize - 1].to_vec()).map_err(|_| ReadError::Format {
                offset: start,
                what: "member name is not UTF-8".into(),
            })?;
        if name == TRAILER {
            self.done = true;
            return Ok(None);
        }
        self.pending = size + pad4(size) as u64;
        Ok(Some(Entry {
            name,
            mode,
            size,
            checksum: crc.then_some(sum),
            offset: self.pos,
        }))
    }

    /// Read the current member's data into `out` (a hasher, a file...). Returns the byte sum.
    pub fn copy_data(&mut self, entry: &Entry, out: &mut dyn Write) -> Result<u32, ReadError> {
        if self.pending != entry.size + pad4(entry.size) as u64 {
            return Err(self.err("member data already read"));
        }
        let mut left = entry.size;
        let mut sum = 0u32;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = self.inp.read(&mut buf[..want])?;
            if n == 0 {
                return Err(self.err(&format!("archive ends inside member {}", entry.name)));
            }
            sum = checksum(&buf[..n], sum);
            out.write_all(&buf[..n])?;
            left -= n as u64;
            self.pos += n as u64;
        }
        self.pending = pad4(entry.size) as u64;
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(members: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
        let mut w = Writer::new(Vec::new());
        for (n, d) in members {
            w.member_bytes(n, d).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut r = Reader::new(&bytes[..]);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut d = Vec::new();
            let sum = r.copy_data(&e, &mut d).unwrap();
            assert_eq!(e.checksum, Some(sum));
            out.push((e.name, d));
        }
        out
    }

    #[test]
    fn layout_matches_gnu_cpio_crc() {
        // What `cpio -o -H crc` writes for one file "a" holding "hi\n" (mode, mtime and
        // ino aside): the header is 110 bytes, name + NUL padded to 4, data padded to 4.
        let mut w = Writer::new(Vec::new());
        w.member_bytes("a", b"hi\n").unwrap();
        let b = w.finish().unwrap();
        assert_eq!(&b[..6], b"070702");
        assert_eq!(&b[54..62], b"00000003"); // filesize
        assert_eq!(&b[94..102], b"00000002"); // namesize
        assert_eq!(
            &b[102..110],
            format!("{:08X}", b'h' as u32 + b'i' as u32 + 10).as_bytes()
        );
        assert_eq!(&b[110..112], b"a\0");
        assert_eq!(&b[112..115], b"hi\n");
        assert_eq!(b.len() % 4, 0);
    }

    #[test]
    fn truncated_archives_are_errors() {
        let mut w = Writer::new(Vec::new());
        w.member_bytes("sw-description", b"software = {};").unwrap();
        let b = w.finish().unwrap();
        for cut in 0..b.len() {
            let mut r = Reader::new(&b[..cut]);
            let res = (|| -> Result<(), ReadError> {
                while let Some(e) = r.next_entry()? {
                    r.copy_data(&e, &mut io::sink())?;
                }
                Ok(())
            })();
            assert!(res.is_err(), "cut at {cut} read as complete");
        }
    }

    proptest! {
        #[test]
        fn write_read_roundtrip(members in proptest::collection::vec(
            ("[a-zA-Z0-9._-]{1,40}", proptest::collection::vec(any::<u8>(), 0..300)), 0..6)) {
            let got = roundtrip(&members);
            prop_assert_eq!(got, members);
        }

        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut r = Reader::new(&data[..]);
            for _ in 0..10 {
                match r.next_entry() {
                    Ok(Some(e)) => { if r.copy_data(&e, &mut io::sink()).is_err() { break } }
                    _ => break,
                }
            }
        }
    }
}
