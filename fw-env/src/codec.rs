//! The on-disk format of a U-Boot environment, exactly as U-Boot's `env/common.c` and
//! `include/env_internal.h` define it.
//!
//! ```text
//! single copy:     | crc32 (LE) | data ...                               |
//! redundant copy:  | crc32 (LE) | flags | data ...                       |
//! data:            name=value\0name=value\0 ... \0 padding
//! ```
//!
//! The CRC (zlib's CRC-32) covers the whole data area, padding included. This module is pure:
//! bytes in, typed values out, and back.

use crate::vars::Vars;

/// Size of the CRC field.
pub const CRC_SIZE: usize = 4;

/// Whether each copy carries a flags byte after its CRC (U-Boot's
/// `CONFIG_SYS_REDUNDAND_ENVIRONMENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One copy: CRC then data.
    Single,
    /// Two copies, each: CRC, flags byte, data.
    Redundant,
}

impl Layout {
    /// Bytes before the data area.
    pub fn header_len(self) -> usize {
        match self {
            Layout::Single => CRC_SIZE,
            Layout::Redundant => CRC_SIZE + 1,
        }
    }
}

/// Why bytes are not a valid environment copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The copy is smaller than its header plus the two NULs of an empty environment.
    #[error("environment copy is {len} bytes, too small to hold a header and data")]
    TooSmall {
        /// Length of the copy.
        len: usize,
    },
    /// The stored CRC does not match the data: the copy is corrupt, erased or never written.
    #[error("bad CRC: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// CRC found in the header.
        stored: u32,
        /// CRC computed over the data area.
        computed: u32,
    },
}

/// Why variables cannot be encoded into a copy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The variables do not fit in the data area.
    #[error("environment full: needs {needed} bytes, {available} available in the data area")]
    Full {
        /// Bytes the variables need, terminating NUL included.
        needed: usize,
        /// Bytes of the data area.
        available: usize,
    },
    /// The copy size cannot even hold the header.
    #[error("environment size {size} is too small for a {layout:?} header")]
    SizeTooSmall {
        /// Requested copy size.
        size: usize,
        /// Layout asked for.
        layout: Layout,
    },
}

/// One decoded copy: its flags byte (redundant layout only) and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCopy {
    /// The flags byte, for the redundant layout.
    pub flags: Option<u8>,
    /// The variables, with names and values exactly as stored.
    pub vars: Vars,
    /// Bytes of the data area in use (entries plus the terminating NUL).
    pub used: usize,
    /// Every entry as stored, in stored order (what `fw_printenv` prints).
    pub entries: Vec<Vec<u8>>,
}

/// CRC-32 as U-Boot computes it (`crc32(0, data, len)`, zlib polynomial).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Read the header of a copy without checking anything: `(stored crc, flags)`.
pub fn header(copy: &[u8], layout: Layout) -> Option<(u32, Option<u8>)> {
    if copy.len() < layout.header_len() {
        return None;
    }
    let crc = u32::from_le_bytes(copy[..CRC_SIZE].try_into().expect("4 bytes"));
    let flags = (layout == Layout::Redundant).then(|| copy[CRC_SIZE]);
    Some((crc, flags))
}

/// Decode one copy: check its CRC, then parse its data area.
pub fn decode(copy: &[u8], layout: Layout) -> Result<DecodedCopy, DecodeError> {
    let hl = layout.header_len();
    if copy.len() < hl + 2 {
        return Err(DecodeError::TooSmall { len: copy.len() });
    }
    let (stored, flags) = header(copy, layout).expect("length checked");
    let data = &copy[hl..];
    let computed = crc32(data);
    if stored != computed {
        return Err(DecodeError::BadCrc { stored, computed });
    }
    let (vars, used) = parse_data(data);
    let entries = raw_entries(&data[..used]);
    Ok(DecodedCopy {
        flags,
        vars,
        used,
        entries,
    })
}

/// Parse a data area: `name=value\0` entries up to the first empty entry (`\0\0`) or the end.
///
/// Names and values are kept byte for byte. An entry without `=` has no value to keep and is
/// dropped, as U-Boot's import drops it; a later entry of the same name replaces an earlier one,
/// as in U-Boot's hash table. Returns the variables and the bytes in use.
pub fn parse_data(data: &[u8]) -> (Vars, usize) {
    let mut vars = Vars::new();
    let mut pos = 0;
    while pos < data.len() && data[pos] != 0 {
        let end = data[pos..]
            .iter()
            .position(|&b| b == 0)
            .map_or(data.len(), |n| pos + n);
        let entry = &data[pos..end];
        if let Some(eq) = entry.iter().position(|&b| b == b'=') {
            if eq > 0 {
                vars.insert_raw(entry[..eq].to_vec(), entry[eq + 1..].to_vec());
            }
        }
        pos = end + 1;
    }
    // `pos` is at the terminating NUL of the list (or past the end if there was none).
    let used = (pos + 1).min(data.len());
    (vars, used)
}

/// The entries of a data area in stored order, up to the terminating empty entry.
pub fn raw_entries(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|&b| b == 0)
        .take_while(|e| !e.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Encode variables into a data area of `data_len` bytes: sorted entries, the final NUL, then
/// zero padding as U-Boot's `hexport_r` leaves it (deterministic: never stale bytes).
pub fn encode_data(vars: &Vars, data_len: usize) -> Result<Vec<u8>, EncodeError> {
    let needed = vars.encoded_len();
    if needed > data_len {
        return Err(EncodeError::Full {
            needed,
            available: data_len,
        });
    }
    let mut data = Vec::with_capacity(data_len);
    for (name, value) in vars.iter() {
        data.extend_from_slice(name);
        data.push(b'=');
        data.extend_from_slice(value);
        data.push(0);
    }
    data.resize(data_len, 0);
    Ok(data)
}

/// Encode a whole copy of `size` bytes: header (CRC, and `flags` for the redundant layout)
/// followed by the data area.
pub fn encode(vars: &Vars, size: usize, layout: Layout, flags: u8) -> Result<Vec<u8>, EncodeError> {
    let hl = layout.header_len();
    if size < hl + 2 {
        return Err(EncodeError::SizeTooSmall { size, layout });
    }
    let data = encode_data(vars, size - hl)?;
    Ok(assemble(&data, layout, flags))
}

/// Put a header in front of a finished data area.
pub fn assemble(data: &[u8], layout: Layout, flags: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(layout.header_len() + data.len());
    out.extend_from_slice(&crc32(data).to_le_bytes());
    if layout == Layout::Redundant {
        out.push(flags);
    }
    out.extend_from_slice(data);
    out
}

/// The value U-Boot holds after importing a stored value: its import (`himport_r`) drops each
/// backslash that is followed by another byte, so a stored `\\` is one `\` and a stored `\x` is
/// `x`.
pub fn unescape(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len());
    let mut i = 0;
    while i < stored.len() {
        if stored[i] == b'\\' && i + 1 < stored.len() {
            i += 1;
        }
        out.push(stored[i]);
        i += 1;
    }
    out
}

/// The bytes U-Boot's export (`hexport_r`) stores for a value it holds: each `\` doubled.
/// `unescape(&escape(v)) == v` for every `v`.
pub fn escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    for &b in value {
        if b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// The variables as U-Boot itself sees them after loading stored ones (`himport_r` with the
/// NUL separator): leading blanks of an entry skipped, entries starting with `#` ignored,
/// empty values meaning "delete", and backslash escapes resolved.
pub fn uboot_view(stored: &Vars) -> Vars {
    let mut view = Vars::new();
    for (name, value) in stored.iter() {
        let start = name.iter().position(|&b| b != b' ' && b != b'\t');
        let Some(start) = start else { continue };
        let name = &name[start..];
        if name.first() == Some(&b'#') || value.is_empty() {
            continue;
        }
        view.insert_raw(name.to_vec(), unescape(value));
    }
    view
}

/// Build an image the way `mkenvimage` does from its text input: one `name=value` per line,
/// lines starting with `#` and empty lines skipped, a backslash before a newline embedding the
/// newline, entries kept in input order, the data area pre-filled with `pad`. Byte-identical to
/// `mkenvimage -s size [-r] [-p pad]` (the redundant flags byte is 1, as mkenvimage writes it).
///
/// The one deliberate difference: for an input with no entries at all, mkenvimage reads one
/// byte before its buffer (uninitialised memory) to decide whether to write one or two NULs;
/// we always write two, so the output is deterministic.
pub fn mkimage_from_text(
    text: &[u8],
    size: usize,
    layout: Layout,
    pad: u8,
) -> Result<Vec<u8>, EncodeError> {
    let hl = layout.header_len();
    if size < hl + 2 {
        return Err(EncodeError::SizeTooSmall { size, layout });
    }
    let env_size = size - hl;
    let mut env = crate::text::parse(text)
        .data_within(env_size)
        .map_err(|needed| EncodeError::Full {
            needed,
            available: env_size,
        })?;
    env.resize(env_size, pad);
    Ok(assemble(&env, layout, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn crc_is_zlib_crc32() {
        // Known value: crc32("123456789") = 0xCBF43926.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn single_roundtrip_and_layout() {
        let v = vars(&[("next_boot", "otafs"), ("a", "1")]);
        let img = encode(&v, 64, Layout::Single, 0).unwrap();
        assert_eq!(img.len(), 64);
        assert_eq!(&img[4..20], b"a=1\0next_boot=ot");
        let d = decode(&img, Layout::Single).unwrap();
        assert_eq!(d.vars, v);
        assert_eq!(d.flags, None);
        assert_eq!(d.used, v.encoded_len());
        assert!(img[4 + d.used..].iter().all(|&b| b == 0), "zero padding");
    }

    #[test]
    fn redundant_header_carries_flags() {
        let v = vars(&[("x", "y")]);
        let img = encode(&v, 32, Layout::Redundant, 7).unwrap();
        assert_eq!(img[4], 7);
        assert_eq!(decode(&img, Layout::Redundant).unwrap().flags, Some(7));
    }

    #[test]
    fn corrupt_crc_is_rejected() {
        let mut img = encode(&vars(&[("x", "y")]), 32, Layout::Single, 0).unwrap();
        img[10] ^= 1;
        assert!(matches!(
            decode(&img, Layout::Single),
            Err(DecodeError::BadCrc { .. })
        ));
    }

    #[test]
    fn erased_flash_is_bad_crc_not_a_panic() {
        let img = vec![0xff; 64];
        assert!(matches!(
            decode(&img, Layout::Redundant),
            Err(DecodeError::BadCrc { .. })
        ));
        assert!(matches!(
            decode(&[0; 3], Layout::Single),
            Err(DecodeError::TooSmall { .. })
        ));
    }

    #[test]
    fn full_environment_is_reported_with_sizes() {
        let v = vars(&[("name", "0123456789")]);
        // needs 4+1+10+1+1 = 17 bytes of data
        assert_eq!(
            encode(&v, 4 + 16, Layout::Single, 0),
            Err(EncodeError::Full {
                needed: 17,
                available: 16
            })
        );
        assert!(encode(&v, 4 + 17, Layout::Single, 0).is_ok());
    }

    #[test]
    fn data_without_terminator_still_parses() {
        let (v, used) = parse_data(b"a=1\0b=2");
        assert_eq!(v, vars(&[("a", "1"), ("b", "2")]));
        assert_eq!(used, 7);
    }

    #[test]
    fn entries_without_equals_are_dropped_and_later_wins() {
        let (v, _) = parse_data(b"junk\0a=1\0a=2\0=x\0\0");
        assert_eq!(v, vars(&[("a", "2")]));
    }

    #[test]
    fn uboot_view_matches_himport() {
        let stored = vars(&[
            ("p", r"a\\b"),
            ("q", r"a\b"),
            ("r", "end\\"),
            ("#c", "x"),
            ("e", ""),
        ]);
        let view = uboot_view(&stored);
        assert_eq!(view.get("p").as_deref(), Some(r"a\b"));
        assert_eq!(view.get("q").as_deref(), Some("ab"));
        assert_eq!(view.get("r").as_deref(), Some("end\\"));
        assert!(!view.contains("#c"));
        assert!(!view.contains("e"));
    }

    #[test]
    fn mkimage_text_basics() {
        let img =
            mkimage_from_text(b"# c\na=1\n\nb=two\\\nlines\n", 32, Layout::Single, 0xff).unwrap();
        assert_eq!(&img[4..22], b"a=1\0b=two\nlines\0\0\xff");
        assert_eq!(
            u32::from_le_bytes(img[..4].try_into().unwrap()),
            crc32(&img[4..])
        );
        let r = mkimage_from_text(b"a=1", 32, Layout::Redundant, 0).unwrap();
        assert_eq!(r[4], 1);
        assert_eq!(&r[5..10], b"a=1\0\0");
    }

    #[test]
    fn mkimage_too_large() {
        // "a=0123456789\0" + final NUL = 14 bytes, 8 available.
        assert_eq!(
            mkimage_from_text(b"a=0123456789\n", 4 + 8, Layout::Single, 0),
            Err(EncodeError::Full {
                needed: 14,
                available: 8
            })
        );
        assert_eq!(
            mkimage_from_text(b"# c\na=0123456789", 4 + 8, Layout::Single, 0),
            Err(EncodeError::Full {
                needed: 14,
                available: 8
            })
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no = or NUL", |b| *b != b'=' && *b != 0),
            1..12,
        )
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>().prop_filter("no NUL", |b| *b != 0), 0..40)
    }

    fn vars() -> impl Strategy<Value = Vars> {
        proptest::collection::btree_map(name(), value(), 0..20)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        /// Whatever fits decodes to exactly what was encoded, in both layouts, with any flags.
        #[test]
        fn encode_decode_roundtrip(v in vars(), flags: u8, redundant: bool) {
            let layout = if redundant { Layout::Redundant } else { Layout::Single };
            let size = 2048;
            match encode(&v, size, layout, flags) {
                Ok(img) => {
                    prop_assert_eq!(img.len(), size);
                    let d = decode(&img, layout).unwrap();
                    prop_assert_eq!(&d.vars, &v);
                    prop_assert_eq!(d.used, v.encoded_len());
                    prop_assert_eq!(d.flags, redundant.then_some(flags));
                    // Deterministic: the same variables always give the same bytes.
                    prop_assert_eq!(encode(&v, size, layout, flags).unwrap(), img);
                }
                Err(EncodeError::Full { needed, available }) => {
                    prop_assert!(needed > available);
                    prop_assert_eq!(needed, v.encoded_len());
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        /// Any single flipped bit in a copy is caught by the CRC (CRC-32 detects every
        /// one-bit error).
        #[test]
        fn any_bit_flip_is_detected(v in vars(), at in 0usize..2048, bit in 0u8..8) {
            if let Ok(mut img) = encode(&v, 2048, Layout::Single, 0) {
                img[at] ^= 1 << bit;
                prop_assert!(decode(&img, Layout::Single).is_err());
            }
        }

        /// U-Boot's view of an escaped value is the value: storing through escape() is
        /// lossless for everything U-Boot can hold.
        #[test]
        fn escape_is_undone_by_unescape(v in value()) {
            prop_assert_eq!(unescape(&escape(&v)), v);
        }

        /// mkenvimage text made of sorted, unique, single-line entries gives the same data
        /// area as encode() (then differs only in padding, which is a parameter).
        #[test]
        fn mkimage_agrees_with_encode(v in vars()) {
            let printable = |b: &[u8]| b.iter().all(|c| (0x20..0x7f).contains(c) && *c != b'\\');
            let v: Vars = v.iter().filter(|(k, val)| printable(k) && printable(val) && !val.is_empty() && k[0] != b'#').map(|(k, val)| (k.to_vec(), val.to_vec())).collect();
            let mut text = Vec::new();
            for (k, val) in v.iter() {
                text.extend_from_slice(k);
                text.push(b'=');
                text.extend_from_slice(val);
                text.push(b'\n');
            }
            let a = mkimage_from_text(&text, 4096, Layout::Single, 0);
            let b = encode(&v, 4096, Layout::Single, 0);
            if let (Ok(a), Ok(b)) = (a, b) {
                prop_assert_eq!(a, b);
            }
        }

        /// Parsing never panics and never reads past the data, whatever the bytes.
        #[test]
        fn parse_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (vars, used) = parse_data(&data);
            prop_assert!(used <= data.len().max(1));
            // At most the missing terminator of the last entry and the final NUL are added.
            prop_assert!(vars.encoded_len() <= data.len() + 2);
            let _ = decode(&data, Layout::Redundant);
        }
    }
}
