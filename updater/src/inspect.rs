//! Reading a `.swu`: its members, their hashes against sw-description, and the signature's
//! bytes. Pure (no OpenSSL): the signature itself is checked by `sign::verify` in the `pack`
//! build; this part is what the fuzz target drives.

use crate::cpio::{self, ReadError};
use crate::hex;
use crate::swdesc;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// sw-description larger than this is refused (SWUpdate's own limit is similar in spirit).
pub const MAX_DESCRIPTION: u64 = 1 << 20;
/// A CMS signature larger than this is refused.
pub const MAX_SIGNATURE: u64 = 64 << 10;

/// One member of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// sha256 of its bytes.
    pub sha256: String,
    /// `Some(false)` when the cpio-crc checksum does not match the data.
    pub crc_ok: Option<bool>,
}

/// What an archive holds.
#[derive(Debug, Clone)]
pub struct Archive {
    /// Every member, in order (sw-description and the signature included).
    pub members: Vec<Member>,
    /// The sw-description text.
    pub description: String,
    /// `sw-description.sig`, if it directly follows sw-description.
    pub signature: Option<Vec<u8>>,
}

struct Hasher(Sha256);
impl Write for Hasher {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Read a whole archive (bounded memory: only sw-description and the signature are kept).
pub fn read(inp: impl Read) -> Result<Archive, ReadError> {
    let mut r = cpio::Reader::new(inp);
    let mut members = Vec::new();
    let mut description = None;
    let mut signature = None;
    let fmt = |offset, what: &str| ReadError::Format {
        offset,
        what: what.to_string(),
    };
    while let Some(e) = r.next_entry()? {
        let first = members.is_empty();
        let keep = if first {
            if e.name != "sw-description" {
                return Err(fmt(
                    0,
                    &format!(
                        "the first member is {:?}: SWUpdate needs sw-description first",
                        e.name
                    ),
                ));
            }
            if e.size > MAX_DESCRIPTION {
                return Err(fmt(e.offset, "sw-description is larger than 1 MiB"));
            }
            true
        } else if members.len() == 1 && e.name == "sw-description.sig" {
            if e.size > MAX_SIGNATURE {
                return Err(fmt(e.offset, "sw-description.sig is larger than 64 KiB"));
            }
            true
        } else {
            false
        };
        let mut h = Hasher(Sha256::new());
        let (sum, kept) = if keep {
            let mut buf = Vec::with_capacity(e.size as usize);
            let sum = r.copy_data(&e, &mut buf)?;
            h.0.update(&buf);
            (sum, Some(buf))
        } else {
            (r.copy_data(&e, &mut h)?, None)
        };
        if let Some(buf) = kept {
            if first {
                description = Some(
                    String::from_utf8(buf)
                        .map_err(|_| fmt(e.offset, "sw-description is not UTF-8 text"))?,
                );
            } else {
                signature = Some(buf);
            }
        }
        members.push(Member {
            name: e.name.clone(),
            size: e.size,
            sha256: hex(&h.0.finalize()),
            crc_ok: e.checksum.map(|c| c == sum),
        });
    }
    Ok(Archive {
        members,
        description: description.ok_or_else(|| fmt(0, "empty archive: no sw-description"))?,
        signature,
    })
}

impl Archive {
    /// Everything wrong that can be seen without the certificate: sw-description's syntax,
    /// each artifact's presence and sha256, cpio checksums, duplicate members.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for m in &self.members {
            if m.crc_ok == Some(false) {
                p.push(format!("{}: cpio checksum does not match its data", m.name));
            }
            if self.members.iter().filter(|o| o.name == m.name).count() > 1 {
                p.push(format!("{}: present more than once", m.name));
            }
        }
        match swdesc::parse(&self.description) {
            Err(e) => p.push(format!("{e} (SWUpdate would refuse it)")),
            Ok(v) => {
                if v.get("software").is_none() {
                    p.push("sw-description has no `software` section".into());
                }
                for (file, sha) in swdesc::artifacts(&v) {
                    match (self.members.iter().find(|m| m.name == file), sha) {
                        (None, _) => p.push(format!(
                            "{file}: named in sw-description but not in the archive"
                        )),
                        (Some(_), None) => p.push(format!("{file}: no sha256 in sw-description")),
                        (Some(m), Some(s)) if !m.sha256.eq_ignore_ascii_case(&s) => {
                            p.push(format!(
                                "{file}: sha256 {} does not match sw-description's {s}",
                                m.sha256
                            ))
                        }
                        _ => {}
                    }
                }
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpio::Writer;

    fn archive(desc: &str, members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        w.member_bytes("sw-description", desc.as_bytes()).unwrap();
        for (n, d) in members {
            w.member_bytes(n, d).unwrap();
        }
        w.finish().unwrap()
    }

    fn desc_for(data: &[u8]) -> String {
        format!(
            "software = {{ version = \"1\"; images: ( {{ filename = \"img\"; sha256 = \"{}\"; }} ); }};",
            hex(&Sha256::digest(data))
        )
    }

    #[test]
    fn good_archive_has_no_problems() {
        let a = read(
            &archive(
                &desc_for(b"data"),
                &[("sw-description.sig", b"sig"), ("img", b"data")],
            )[..],
        )
        .unwrap();
        assert_eq!(a.signature.as_deref(), Some(&b"sig"[..]));
        assert_eq!(a.members.len(), 3);
        assert!(a.problems().is_empty(), "{:?}", a.problems());
    }

    #[test]
    fn each_rejection_reason() {
        // Tampered image.
        let a = read(&archive(&desc_for(b"data"), &[("img", b"dat4")])[..]).unwrap();
        assert!(a.problems()[0].contains("does not match"));
        // Missing image.
        let a = read(&archive(&desc_for(b"data"), &[])[..]).unwrap();
        assert!(a.problems()[0].contains("not in the archive"));
        // sw-description not first.
        let mut w = Writer::new(Vec::new());
        w.member_bytes("img", b"x").unwrap();
        assert!(read(&w.finish().unwrap()[..]).is_err());
        // A signature that does not directly follow sw-description is not the signature.
        let a = read(
            &archive(
                &desc_for(b"data"),
                &[("img", b"data"), ("sw-description.sig", b"s")],
            )[..],
        )
        .unwrap();
        assert!(a.signature.is_none());
        // A flipped byte inside the image breaks the cpio-crc checksum too.
        let mut b = archive(&desc_for(b"data"), &[("img", b"data")]);
        let pos = b.windows(4).rposition(|w| w == b"data").unwrap();
        b[pos] = b'D';
        let a = read(&b[..]).unwrap();
        assert!(a.problems().iter().any(|p| p.contains("cpio checksum")));
    }
}
