//! The MBR sector: raw reader (never panics), encoder, and the hybrid-MBR builder.

use crate::gpt::GptEntry;
use crate::guid::types;
use serde::Serialize;

/// MBR type of the GPT protective entry.
pub const PROTECTIVE: u8 = 0xEE;
/// FAT32 with LBA addressing: what the boot ROM expects for the boot partition.
pub const FAT32_LBA: u8 = 0x0C;

/// One of the four primary entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MbrEntry {
    /// Boot indicator byte (0x00 or 0x80 are valid).
    pub boot: u8,
    /// Partition type byte (0: empty).
    pub kind: u8,
    /// First LBA.
    pub start: u32,
    /// Number of sectors.
    pub size: u32,
}

impl MbrEntry {
    /// True for an empty entry.
    pub fn is_empty(&self) -> bool {
        self.kind == 0
    }
    /// Last LBA (inclusive), as u64.
    pub fn last(&self) -> u64 {
        (self.start as u64 + self.size as u64).saturating_sub(1)
    }
}

/// A decoded MBR sector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mbr {
    /// Bytes 0..440 (boot code), kept as found.
    #[serde(skip)]
    pub bootcode: Vec<u8>,
    /// Disk signature at 440.
    pub disk_signature: u32,
    /// The four entries.
    pub entries: [MbrEntry; 4],
    /// True when bytes 510..512 are 55 AA.
    pub signature_ok: bool,
}

/// Decode an MBR sector; a short buffer reads as zeros. Never fails.
pub fn parse(sector: &[u8]) -> Mbr {
    let mut s = [0u8; 512];
    let n = sector.len().min(512);
    s[..n].copy_from_slice(&sector[..n]);
    let mut entries = [MbrEntry::default(); 4];
    for (i, e) in entries.iter_mut().enumerate() {
        let o = 446 + 16 * i;
        *e = MbrEntry {
            boot: s[o],
            kind: s[o + 4],
            start: u32::from_le_bytes([s[o + 8], s[o + 9], s[o + 10], s[o + 11]]),
            size: u32::from_le_bytes([s[o + 12], s[o + 13], s[o + 14], s[o + 15]]),
        };
    }
    Mbr {
        bootcode: s[..440].to_vec(),
        disk_signature: u32::from_le_bytes([s[440], s[441], s[442], s[443]]),
        entries,
        signature_ok: s[510] == 0x55 && s[511] == 0xAA,
    }
}

/// CHS address for an LBA with the usual 255 heads / 63 sectors geometry, saturating at
/// 1023/254/63 as fdisk and gdisk do.
pub fn chs(lba: u64) -> [u8; 3] {
    if lba >= 1024 * 255 * 63 {
        return [0xFE, 0xFF, 0xFF];
    }
    let c = lba / (255 * 63);
    let h = (lba / 63) % 255;
    let s = lba % 63 + 1;
    [
        h as u8,
        (s as u8) | (((c >> 2) & 0xC0) as u8),
        (c & 0xFF) as u8,
    ]
}

impl Mbr {
    /// Encode into a sector (bootcode, disk signature, entries with CHS, 55AA).
    pub fn encode(&self) -> [u8; 512] {
        let mut s = [0u8; 512];
        let n = self.bootcode.len().min(440);
        s[..n].copy_from_slice(&self.bootcode[..n]);
        s[440..444].copy_from_slice(&self.disk_signature.to_le_bytes());
        for (i, e) in self.entries.iter().enumerate() {
            if e.is_empty() {
                continue;
            }
            let o = 446 + 16 * i;
            s[o] = e.boot;
            s[o + 1..o + 4].copy_from_slice(&chs(e.start as u64));
            s[o + 4] = e.kind;
            s[o + 5..o + 8].copy_from_slice(&chs(e.last()));
            s[o + 8..o + 12].copy_from_slice(&e.start.to_le_bytes());
            s[o + 12..o + 16].copy_from_slice(&e.size.to_le_bytes());
        }
        s[510] = 0x55;
        s[511] = 0xAA;
        s
    }
}

/// A GPT partition to mirror in the MBR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// 1-based MBR entry index (1..=4), not a boot slot.
    pub mbr_index: u8,
    /// MBR type.
    pub kind: u8,
    /// Boot indicator.
    pub bootable: bool,
    /// First LBA.
    pub first: u64,
    /// Last LBA.
    pub last: u64,
}

/// Build the hybrid (or, with no mirrors, protective) MBR.
///
/// Mirrored partitions go to their entries; one `0xEE` entry goes to the first free one. In a
/// hybrid it starts at LBA 1 and ends just before the first mirrored partition (covering the
/// primary GPT, as gdisk makes hybrids); in a protective MBR it covers the whole disk (capped at
/// 2^32-1 sectors). Bootcode and disk signature are the caller's (kept from the card when valid).
pub fn build(bootcode: Vec<u8>, disk_signature: u32, mirrors: &[Mirror], disk_sectors: u64) -> Mbr {
    let mut entries = [MbrEntry::default(); 4];
    for m in mirrors {
        let i = (m.mbr_index as usize).clamp(1, 4) - 1;
        entries[i] = MbrEntry {
            boot: if m.bootable { 0x80 } else { 0 },
            kind: m.kind,
            start: m.first.min(u32::MAX as u64) as u32,
            size: m
                .last
                .saturating_add(1)
                .saturating_sub(m.first)
                .min(u32::MAX as u64) as u32,
        };
    }
    let ee_end = mirrors
        .iter()
        .map(|m| m.first)
        .min()
        .map(|f| f.saturating_sub(1))
        .unwrap_or(disk_sectors.saturating_sub(1));
    let ee_size = ee_end.min(u32::MAX as u64) as u32;
    if let Some(free) = entries.iter_mut().find(|e| e.is_empty()) {
        *free = MbrEntry {
            boot: 0,
            kind: PROTECTIVE,
            start: 1,
            size: ee_size,
        };
    }
    Mbr {
        bootcode,
        disk_signature,
        entries,
        signature_ok: true,
    }
}

/// Without a layout: the partition to mirror is the one with the legacy-BIOS-bootable attribute,
/// else the first ESP. It becomes FAT32 LBA, bootable, entry 1.
pub fn mirror_from_gpt(entries: &[(u32, GptEntry)]) -> Option<Mirror> {
    let usable: Vec<&(u32, GptEntry)> = entries
        .iter()
        .filter(|(_, e)| e.first_lba > 0 && e.first_lba <= e.last_lba && e.last_lba < u64::MAX)
        .collect();
    let pick = usable
        .iter()
        .find(|(_, e)| e.attributes & 4 != 0)
        .or_else(|| usable.iter().find(|(_, e)| e.type_guid == types::ESP))?;
    Some(Mirror {
        mbr_index: 1,
        kind: FAT32_LBA,
        bootable: true,
        first: pick.1.first_lba,
        last: pick.1.last_lba,
    })
}

/// Disk signature derived from the disk GUID (so that a rebuilt MBR is the same with or without
/// the layout).
pub fn signature_from_guid(g: &crate::guid::Guid) -> u32 {
    u32::from_le_bytes([g.0[0], g.0[1], g.0[2], g.0[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hybrid_layout() {
        let m = build(
            vec![0; 440],
            0x1234,
            &[Mirror {
                mbr_index: 1,
                kind: FAT32_LBA,
                bootable: true,
                first: 2048,
                last: 264191,
            }],
            1 << 21,
        );
        let s = m.encode();
        let back = parse(&s);
        assert!(back.signature_ok);
        assert_eq!(
            back.entries[0],
            MbrEntry {
                boot: 0x80,
                kind: 0x0C,
                start: 2048,
                size: 262144
            }
        );
        assert_eq!(
            back.entries[1],
            MbrEntry {
                boot: 0,
                kind: 0xEE,
                start: 1,
                size: 2047
            }
        );
        assert!(back.entries[2].is_empty() && back.entries[3].is_empty());
        assert_eq!(back.disk_signature, 0x1234);
    }

    #[test]
    fn protective_caps_at_32_bits() {
        let m = build(vec![], 0, &[], 1 << 40);
        assert_eq!(
            m.entries[0],
            MbrEntry {
                boot: 0,
                kind: 0xEE,
                start: 1,
                size: u32::MAX
            }
        );
    }

    #[test]
    fn chs_values() {
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(2048), [32, 33, 0]);
        assert_eq!(chs(1 << 30), [0xFE, 0xFF, 0xFF]);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips_entries(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let m = parse(&bytes);
            let again = parse(&m.encode());
            for (a, b) in m.entries.iter().zip(again.entries.iter()) {
                if !a.is_empty() { prop_assert_eq!(a, b); }
            }
        }
    }
}
