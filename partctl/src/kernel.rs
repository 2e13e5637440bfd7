//! What Linux will see: a model of `block/partitions/efi.c` (`find_valid_gpt`, `is_pmbr_valid`,
//! `is_gpt_valid`, `is_pte_valid`) and, when that fails, of `msdos.c`'s primary partitions.
//!
//! Without `gpt` on the kernel command line Linux requires a protective or hybrid MBR and a
//! valid *primary* GPT: it never falls back to the backup. U-Boot does fall back to the backup,
//! so a card can boot U-Boot and still leave Linux without a root filesystem.

use crate::disk::{CopyAt, Snapshot};
use crate::gpt::{parse_entries, ENTRY_SIZE};
use crate::mbr::PROTECTIVE;
use serde::Serialize;

/// Which table the kernel used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelTable {
    /// The primary GPT.
    PrimaryGpt,
    /// The alternate GPT (only with `gpt` on the command line).
    AlternateGpt,
    /// The MBR's primary entries (the EFI parser failed and the MBR has no 0xEE entry).
    Msdos,
    /// Nothing: no partitions at all.
    None,
}

/// A partition as the kernel will register it (`mmcblk0pN`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelPartition {
    /// N in `mmcblk0pN`.
    pub number: u32,
    /// First sector.
    pub start: u64,
    /// Sectors.
    pub size: u64,
}

/// The kernel-equivalent verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelView {
    /// `gpt` on the command line.
    pub force_gpt: bool,
    /// The table used.
    pub table: KernelTable,
    /// The partitions created.
    pub partitions: Vec<KernelPartition>,
    /// The kernel's own reasons/warnings, in its words where possible.
    pub notes: Vec<String>,
}

/// `is_pmbr_valid`: 0 invalid, 1 protective, 2 hybrid.
fn pmbr_kind(s: &Snapshot) -> u8 {
    let m = &s.mbr;
    if !m.signature_ok {
        return 0;
    }
    if !m
        .entries
        .iter()
        .any(|e| e.kind == PROTECTIVE && e.start == 1)
    {
        return 0;
    }
    if m.entries
        .iter()
        .any(|e| e.kind != PROTECTIVE && e.kind != 0)
    {
        2
    } else {
        1
    }
}

/// `is_gpt_valid` for the copy read at `c.lba`.
fn gpt_valid(c: &CopyAt, lba: u64, last_lba: u64) -> Result<(), String> {
    let rh = c.raw.as_ref().ok_or("no GPT signature")?;
    let h = &rh.header;
    if h.header_size > 512 {
        return Err(format!("GPT header size {} is too big", h.header_size));
    }
    if h.header_size < 92 {
        return Err(format!("GPT header size {} is too small", h.header_size));
    }
    if !rh.crc_ok() {
        return Err("GPT header CRC is wrong".into());
    }
    if h.my_lba != lba {
        return Err(format!("GPT my_lba incorrect: {} != {}", h.my_lba, lba));
    }
    if h.first_usable > last_lba || h.last_usable > last_lba {
        return Err(format!(
            "GPT usable LBAs {}..{} past the last LBA {}",
            h.first_usable, h.last_usable, last_lba
        ));
    }
    if h.last_usable < h.first_usable {
        return Err("GPT last_usable_lba < first_usable_lba".into());
    }
    if h.entry_size != ENTRY_SIZE {
        return Err(format!("GPT entry size {} != 128", h.entry_size));
    }
    match &c.array {
        Err(e) => Err(format!("GPT entries unreadable: {e}")),
        Ok(_) if !c.array_crc_ok() => Err("GPT partition entry array CRC is wrong".into()),
        Ok(_) => Ok(()),
    }
}

/// Compute what Linux sees; `force_gpt` models `gpt` on the command line.
pub fn view(s: &Snapshot, force_gpt: bool) -> KernelView {
    let last = s.last_lba();
    let mut notes = Vec::new();
    let mut efi: Option<(&CopyAt, KernelTable)> = None;
    let pmbr = pmbr_kind(s);
    if pmbr == 0 && !force_gpt {
        notes.push("no protective or hybrid MBR (needs 55AA and a 0xEE entry starting at LBA 1): EFI parser skipped".into());
    } else {
        match gpt_valid(&s.primary, 1, last) {
            Ok(()) => {
                efi = Some((&s.primary, KernelTable::PrimaryGpt));
                let alt = s
                    .primary
                    .raw
                    .as_ref()
                    .map(|r| r.header.alternate_lba)
                    .unwrap_or(last);
                let alt_copy = if alt == last {
                    Some(&s.backup)
                } else {
                    s.alternate.as_ref().filter(|c| c.lba == alt)
                };
                if alt_copy
                    .map(|c| gpt_valid(c, alt, last).is_err())
                    .unwrap_or(true)
                {
                    notes.push("Alternate GPT is invalid, using primary GPT.".into());
                } else if alt != last {
                    notes.push(format!(
                        "Alternate GPT header not at the end of the disk ({alt} != {last})"
                    ));
                }
            }
            Err(e) => {
                notes.push(format!("primary GPT rejected: {e}"));
                if force_gpt {
                    match gpt_valid(&s.backup, last, last) {
                        Ok(()) => {
                            notes.push("Primary GPT is invalid, using alternate GPT.".into());
                            efi = Some((&s.backup, KernelTable::AlternateGpt));
                        }
                        Err(e) => notes.push(format!("alternate GPT rejected: {e}")),
                    }
                }
            }
        }
    }
    if let Some((c, table)) = efi {
        let h = &c.raw.as_ref().expect("validated").header;
        let array = c.array.as_ref().expect("validated");
        let partitions = parse_entries(array, h.entry_size)
            .into_iter()
            .filter(|(_, e)| e.first_lba <= last && e.last_lba <= last)
            .map(|(n, e)| KernelPartition {
                number: n,
                start: e.first_lba,
                size: e.last_lba.wrapping_sub(e.first_lba).wrapping_add(1),
            })
            .collect();
        return KernelView {
            force_gpt,
            table,
            partitions,
            notes,
        };
    }
    // msdos.c: needs 55AA, valid boot indicators, and no 0xEE entry.
    let m = &s.mbr;
    if !m.signature_ok {
        notes.push("msdos: no 55AA signature: no partitions".into());
    } else if m.entries.iter().any(|e| e.boot != 0 && e.boot != 0x80) {
        notes.push("msdos: invalid boot indicator: no partitions".into());
    } else if m.entries.iter().any(|e| e.kind == PROTECTIVE) {
        notes.push("msdos: 0xEE entry present, leaving it to the EFI parser: no partitions".into());
    } else {
        let partitions: Vec<_> = m
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.size != 0)
            .map(|(i, e)| KernelPartition {
                number: i as u32 + 1,
                start: e.start as u64,
                size: e.size as u64,
            })
            .collect();
        notes.push("using the MBR's primary partitions (GPT ignored)".into());
        return KernelView {
            force_gpt,
            table: KernelTable::Msdos,
            partitions,
            notes,
        };
    }
    KernelView {
        force_gpt,
        table: KernelTable::None,
        partitions: Vec::new(),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpt::parse_header;
    use crate::layout::Layout;
    use crate::model::Tables;
    use std::io::Cursor;

    fn card() -> (Vec<u8>, u64) {
        let l = Layout::from_toml(include_str!("../layouts/zbot-duos-small.toml")).unwrap();
        let n = l.image_sectors();
        let t = Tables::from_layout(&l, n);
        let mut v = vec![0u8; (n * 512) as usize];
        for (lba, s) in t.sectors() {
            v[(lba * 512) as usize..(lba * 512 + 512) as usize].copy_from_slice(&s);
        }
        (v, n)
    }

    fn edit_primary(v: &mut [u8], f: impl FnOnce(&mut crate::gpt::GptHeader)) {
        let mut h = parse_header(&v[512..1024]).unwrap().header;
        f(&mut h);
        v[512..1024].copy_from_slice(&h.encode());
    }

    fn views(v: &[u8]) -> (KernelTable, usize, KernelTable, usize) {
        let s = Snapshot::from_reader(&mut Cursor::new(v)).unwrap();
        let (a, b) = (view(&s, false), view(&s, true));
        (a.table, a.partitions.len(), b.table, b.partitions.len())
    }

    use KernelTable::*;

    /// One row per card state: what Linux sees without and with `gpt` on its command line.
    #[test]
    fn decision_table() {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            &str,
            fn(&mut Vec<u8>, u64),
            (KernelTable, usize, KernelTable, usize),
        )> = vec![
            // The card as created: hybrid MBR accepted, primary used.
            ("golden", |_, _| {}, (PrimaryGpt, 6, PrimaryGpt, 6)),
            // No 55AA: no protective MBR, EFI parser skipped; msdos gives nothing either.
            (
                "MBR zeroed",
                |v, _| v[..512].fill(0),
                (None, 0, PrimaryGpt, 6),
            ),
            // parted's protective MBR: fine for Linux (the boot ROM is another matter).
            (
                "protective only",
                |v, n| {
                    v[446..510].fill(0);
                    v[450] = 0xEE;
                    v[454..458].copy_from_slice(&1u32.to_le_bytes());
                    v[458..462].copy_from_slice(&((n - 1) as u32).to_le_bytes());
                },
                (PrimaryGpt, 6, PrimaryGpt, 6),
            ),
            // Primary gone: Linux does not fall back without `gpt`.
            (
                "primary header zeroed",
                |v, _| v[512..1024].fill(0),
                (None, 0, AlternateGpt, 6),
            ),
            // No 0xEE: the MBR's FAT entry is all Linux sees (root filesystem lost).
            (
                "no 0xEE",
                |v, _| v[462..478].fill(0),
                (Msdos, 1, PrimaryGpt, 6),
            ),
            // 0xEE not at LBA 1: not protective; msdos defers to EFI because 0xEE is present.
            ("0xEE at LBA 2", |v, _| v[470] = 2, (None, 0, PrimaryGpt, 6)),
            // Header larger than a sector: rejected.
            (
                "header size 600",
                |v, _| edit_primary(v, |h| h.header_size = 600),
                (None, 0, AlternateGpt, 6),
            ),
            // 4 entries with a valid CRC: Linux accepts and sees only the first four partitions.
            (
                "entry count 4",
                |v, _| {
                    edit_primary(v, |h| h.num_entries = 4);
                    let crc = crc32fast::hash(&v[1024..1536]);
                    edit_primary(v, |h| h.entries_crc = crc);
                },
                (PrimaryGpt, 4, PrimaryGpt, 4),
            ),
            // Wrong AlternateLBA: primary still used (the kernel only warns).
            (
                "alternate wrong",
                |v, n| edit_primary(v, |h| h.alternate_lba = n - 100),
                (PrimaryGpt, 6, PrimaryGpt, 6),
            ),
            // Invalid boot indicator and no 0xEE: msdos rejects the whole MBR.
            (
                "bad boot indicator",
                |v, _| {
                    v[462..478].fill(0);
                    v[446] = 0x12;
                },
                (None, 0, PrimaryGpt, 6),
            ),
            // Both copies gone.
            (
                "both headers zeroed",
                |v, n| {
                    v[512..1024].fill(0);
                    let o = ((n - 1) * 512) as usize;
                    v[o..o + 512].fill(0);
                },
                (None, 0, None, 0),
            ),
        ];
        for (name, damage, want) in rows {
            let (mut v, n) = card();
            damage(&mut v, n);
            assert_eq!(views(&v), want, "{name}");
        }
    }
}
