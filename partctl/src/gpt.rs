//! GPT header and entry formats: typed values, a raw reader that never panics, and the encoder.
//!
//! The reader keeps every field as found, plus what it computed (CRC), so that the checker can
//! say precisely what is wrong instead of refusing the whole table as `gpt`/`gptman` do.

use crate::guid::Guid;
use crate::SECTOR;
use serde::Serialize;

/// "EFI PART".
pub const SIGNATURE: [u8; 8] = *b"EFI PART";
/// Revision 1.0.
pub const REVISION: u32 = 0x0001_0000;
/// The only header size we write and accept.
pub const HEADER_SIZE: u32 = 92;
/// The only entry size we write and accept (Linux rejects anything else).
pub const ENTRY_SIZE: u32 = 128;
/// Largest entry array the reader loads (4096 entries of 128 bytes).
pub const MAX_ARRAY_BYTES: u64 = 4096 * 128;

/// A GPT header as stored, field by field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GptHeader {
    /// Revision field.
    pub revision: u32,
    /// HeaderSize field.
    pub header_size: u32,
    /// HeaderCRC32 as stored.
    pub header_crc: u32,
    /// MyLBA.
    pub my_lba: u64,
    /// AlternateLBA.
    pub alternate_lba: u64,
    /// FirstUsableLBA.
    pub first_usable: u64,
    /// LastUsableLBA.
    pub last_usable: u64,
    /// DiskGUID.
    pub disk_guid: Guid,
    /// PartitionEntryLBA.
    pub entries_lba: u64,
    /// NumberOfPartitionEntries.
    pub num_entries: u32,
    /// SizeOfPartitionEntry.
    pub entry_size: u32,
    /// PartitionEntryArrayCRC32 as stored.
    pub entries_crc: u32,
}

fn u32le(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64le(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// What the raw reader found in a header sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RawHeader {
    /// The decoded fields.
    pub header: GptHeader,
    /// CRC computed over `header_size` bytes with the CRC field zeroed; `None` when
    /// `header_size` is outside 92..=512 (the CRC then cannot be computed meaningfully).
    pub computed_crc: Option<u32>,
}

impl RawHeader {
    /// True when the stored CRC matches.
    pub fn crc_ok(&self) -> bool {
        self.computed_crc == Some(self.header.header_crc)
    }
}

/// Decode a header sector. `None` when the signature is absent; never panics.
pub fn parse_header(sector: &[u8]) -> Option<RawHeader> {
    if sector.len() < SECTOR as usize || sector[..8] != SIGNATURE {
        return None;
    }
    let header = GptHeader {
        revision: u32le(sector, 8),
        header_size: u32le(sector, 12),
        header_crc: u32le(sector, 16),
        my_lba: u64le(sector, 24),
        alternate_lba: u64le(sector, 32),
        first_usable: u64le(sector, 40),
        last_usable: u64le(sector, 48),
        disk_guid: Guid(sector[56..72].try_into().expect("16 bytes")),
        entries_lba: u64le(sector, 72),
        num_entries: u32le(sector, 80),
        entry_size: u32le(sector, 84),
        entries_crc: u32le(sector, 88),
    };
    let hs = header.header_size as usize;
    let computed_crc = (HEADER_SIZE as usize..=SECTOR as usize)
        .contains(&hs)
        .then(|| {
            let mut h = crc32fast::Hasher::new();
            h.update(&sector[..16]);
            h.update(&[0; 4]);
            h.update(&sector[20..hs]);
            h.finalize()
        });
    Some(RawHeader {
        header,
        computed_crc,
    })
}

impl GptHeader {
    /// Encode into a full sector (zero padding), computing the header CRC over `header_size`
    /// bytes (clamped to 92..=512). `header_crc` is ignored. `header_size` is written as given,
    /// so tests can build the odd headers the checker must reject; partctl itself always
    /// writes 92.
    pub fn encode(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        s[..8].copy_from_slice(&SIGNATURE);
        s[8..12].copy_from_slice(&self.revision.to_le_bytes());
        s[12..16].copy_from_slice(&self.header_size.to_le_bytes());
        s[24..32].copy_from_slice(&self.my_lba.to_le_bytes());
        s[32..40].copy_from_slice(&self.alternate_lba.to_le_bytes());
        s[40..48].copy_from_slice(&self.first_usable.to_le_bytes());
        s[48..56].copy_from_slice(&self.last_usable.to_le_bytes());
        s[56..72].copy_from_slice(&self.disk_guid.0);
        s[72..80].copy_from_slice(&self.entries_lba.to_le_bytes());
        s[80..84].copy_from_slice(&self.num_entries.to_le_bytes());
        s[84..88].copy_from_slice(&self.entry_size.to_le_bytes());
        s[88..92].copy_from_slice(&self.entries_crc.to_le_bytes());
        let hs = (self.header_size as usize).clamp(HEADER_SIZE as usize, SECTOR as usize);
        let crc = crc32fast::hash(&s[..hs]);
        s[16..20].copy_from_slice(&crc.to_le_bytes());
        s
    }

    /// Sectors covered by this header's entry array (saturating on absurd values).
    pub fn array_sectors(&self) -> u64 {
        (self.num_entries as u64)
            .saturating_mul(self.entry_size as u64)
            .div_ceil(SECTOR)
    }

    /// Bytes of this header's entry array.
    pub fn array_bytes(&self) -> u64 {
        (self.num_entries as u64).saturating_mul(self.entry_size as u64)
    }
}

/// One GPT partition entry (the 128 bytes the spec defines).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GptEntry {
    /// PartitionTypeGUID (nil: unused).
    pub type_guid: Guid,
    /// UniquePartitionGUID.
    pub uuid: Guid,
    /// StartingLBA.
    pub first_lba: u64,
    /// EndingLBA (inclusive).
    pub last_lba: u64,
    /// Attributes.
    pub attributes: u64,
    /// PartitionName (UTF-16LE, decoded lossily up to the first NUL).
    pub name: String,
}

impl GptEntry {
    /// Decode an entry from at least 128 bytes.
    pub fn parse(b: &[u8]) -> Option<GptEntry> {
        if b.len() < 128 {
            return None;
        }
        let units: Vec<u16> = b[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        Some(GptEntry {
            type_guid: Guid(b[0..16].try_into().ok()?),
            uuid: Guid(b[16..32].try_into().ok()?),
            first_lba: u64le(b, 32),
            last_lba: u64le(b, 40),
            attributes: u64le(b, 48),
            name: String::from_utf16_lossy(&units),
        })
    }

    /// Encode into 128 bytes (the name is truncated to 36 UTF-16 units).
    pub fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..16].copy_from_slice(&self.type_guid.0);
        b[16..32].copy_from_slice(&self.uuid.0);
        b[32..40].copy_from_slice(&self.first_lba.to_le_bytes());
        b[40..48].copy_from_slice(&self.last_lba.to_le_bytes());
        b[48..56].copy_from_slice(&self.attributes.to_le_bytes());
        for (i, u) in self.name.encode_utf16().take(36).enumerate() {
            b[56 + 2 * i..58 + 2 * i].copy_from_slice(&u.to_le_bytes());
        }
        b
    }

    /// True for an unused slot.
    pub fn is_unused(&self) -> bool {
        self.type_guid.is_nil()
    }
}

/// Decode the used entries of an array as `(1-based number, entry)`; entries shorter than 128
/// bytes cannot be decoded and yield nothing (the checker reports the entry size).
pub fn parse_entries(array: &[u8], entry_size: u32) -> Vec<(u32, GptEntry)> {
    if entry_size < 128 || entry_size as u64 > MAX_ARRAY_BYTES {
        return Vec::new();
    }
    array
        .chunks_exact(entry_size as usize)
        .enumerate()
        .filter_map(|(i, c)| GptEntry::parse(c).map(|e| (i as u32 + 1, e)))
        .filter(|(_, e)| !e.is_unused())
        .collect()
}

/// A complete GPT to be written: the disk-wide fields plus the raw entry array (kept raw so a
/// repair copies unknown bytes through unchanged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptImage {
    /// DiskGUID.
    pub disk_guid: Guid,
    /// FirstUsableLBA.
    pub first_usable: u64,
    /// LastUsableLBA.
    pub last_usable: u64,
    /// NumberOfPartitionEntries (entry size is always 128).
    pub num_entries: u32,
    /// The entry array, `num_entries * 128` bytes.
    pub array: Vec<u8>,
}

impl GptImage {
    /// Build from entries placed at their (1-based) numbers.
    pub fn from_entries(
        disk_guid: Guid,
        num_entries: u32,
        disk_sectors: u64,
        entries: &[(u32, GptEntry)],
    ) -> GptImage {
        let mut array = vec![0u8; num_entries as usize * 128];
        for (n, e) in entries {
            let o = (*n as usize - 1) * 128;
            array[o..o + 128].copy_from_slice(&e.encode());
        }
        let asecs = (num_entries as u64 * 128).div_ceil(SECTOR);
        GptImage {
            disk_guid,
            first_usable: 2 + asecs,
            last_usable: disk_sectors.saturating_sub(2 + asecs),
            num_entries,
            array,
        }
    }

    /// Sectors of the entry array.
    pub fn array_sectors(&self) -> u64 {
        (self.array.len() as u64).div_ceil(SECTOR)
    }

    /// The entry array padded to whole sectors.
    pub fn array_padded(&self) -> Vec<u8> {
        let mut a = self.array.clone();
        a.resize((self.array_sectors() * SECTOR) as usize, 0);
        a
    }

    /// LBA of the backup entry array on a card of `disk_sectors`.
    pub fn backup_array_lba(&self, disk_sectors: u64) -> u64 {
        disk_sectors.saturating_sub(1 + self.array_sectors())
    }

    /// The header for the primary (`backup == false`) or the backup copy.
    pub fn header(&self, disk_sectors: u64, backup: bool) -> GptHeader {
        let last = disk_sectors - 1;
        GptHeader {
            revision: REVISION,
            header_size: HEADER_SIZE,
            header_crc: 0,
            my_lba: if backup { last } else { 1 },
            alternate_lba: if backup { 1 } else { last },
            first_usable: self.first_usable,
            last_usable: self.last_usable,
            disk_guid: self.disk_guid,
            entries_lba: if backup {
                self.backup_array_lba(disk_sectors)
            } else {
                2
            },
            num_entries: self.num_entries,
            entry_size: ENTRY_SIZE,
            entries_crc: crc32fast::hash(&self.array),
        }
    }

    /// Used entries.
    pub fn entries(&self) -> Vec<(u32, GptEntry)> {
        parse_entries(&self.array, ENTRY_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guid::types;
    use proptest::prelude::*;

    fn entry(first: u64, last: u64, name: String) -> GptEntry {
        GptEntry {
            type_guid: types::LINUX,
            uuid: Guid([7; 16]),
            first_lba: first,
            last_lba: last,
            attributes: 4,
            name,
        }
    }

    #[test]
    fn header_round_trip_and_crc() {
        let img = GptImage::from_entries(
            Guid([1; 16]),
            128,
            100_000,
            &[(1, entry(2048, 4095, "boot".into()))],
        );
        let h = img.header(100_000, false);
        let raw = parse_header(&img.header(100_000, false).encode()).unwrap();
        assert!(raw.crc_ok());
        assert_eq!(
            GptHeader {
                header_crc: 0,
                ..raw.header.clone()
            },
            h
        );
        let mut bad = h.encode();
        bad[40] ^= 1;
        assert!(!parse_header(&bad).unwrap().crc_ok());
        assert!(parse_header(&[0u8; 512]).is_none());
        assert!(parse_header(&[0u8; 10]).is_none());
    }

    #[test]
    fn header_size_out_of_range_has_no_crc() {
        let img = GptImage::from_entries(Guid([1; 16]), 128, 100_000, &[]);
        let mut s = img.header(100_000, false).encode();
        s[12..16].copy_from_slice(&600u32.to_le_bytes());
        assert_eq!(parse_header(&s).unwrap().computed_crc, None);
    }

    proptest! {
        #[test]
        fn entries_round_trip(first in 34u64..1<<40, len in 0u64..1<<20, name in "[a-zA-Z0-9_-]{0,36}", n in 1u32..=128) {
            let e = entry(first, first + len, name);
            let img = GptImage::from_entries(Guid([9; 16]), 128, 1 << 41, &[(n, e.clone())]);
            prop_assert_eq!(img.entries(), vec![(n, e)]);
            let raw = parse_header(&img.header(1 << 41, true).encode()).unwrap();
            prop_assert!(raw.crc_ok());
            prop_assert_eq!(raw.header.entries_crc, crc32fast::hash(&img.array));
        }

        #[test]
        fn parse_header_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut b = bytes;
            if b.len() >= 8 { b[..8].copy_from_slice(&SIGNATURE); }
            let _ = parse_header(&b);
            let _ = parse_entries(&b, 128);
        }
    }
}
