//! The pure model: a layout (or a surviving GPT copy) becomes the exact bytes of every table
//! sector: MBR, primary header and array, backup array and header.

use crate::gpt::{GptEntry, GptImage};
use crate::layout::Layout;
use crate::mbr::{self, Mbr, Mirror};
use crate::SECTOR;

/// Everything that makes up the tables of a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// Card size in sectors.
    pub disk_sectors: u64,
    /// The MBR.
    pub mbr: Mbr,
    /// The GPT (both copies are derived from it).
    pub gpt: GptImage,
}

impl Tables {
    /// The tables `layout` prescribes for a card of `disk_sectors`.
    pub fn from_layout(layout: &Layout, disk_sectors: u64) -> Tables {
        let entries: Vec<(u32, GptEntry)> = layout
            .partitions
            .iter()
            .zip(layout.place())
            .map(|(s, p)| {
                (
                    p.number,
                    GptEntry {
                        type_guid: s.kind.0,
                        uuid: s.uuid,
                        first_lba: p.first,
                        last_lba: p.last,
                        attributes: Layout::attribute_bits(s),
                        name: s.name.clone(),
                    },
                )
            })
            .collect();
        let gpt = GptImage::from_entries(
            layout.disk.guid,
            layout.disk.entries,
            disk_sectors,
            &entries,
        );
        let mirrors = crate::check::expected_mirrors(Some(layout), &entries);
        let mbr = mbr::build(
            vec![0; 440],
            mbr::signature_from_guid(&layout.disk.guid),
            &mirrors,
            disk_sectors,
        );
        Tables {
            disk_sectors,
            mbr,
            gpt,
        }
    }

    /// Tables from a GPT image, with a hybrid MBR from `mirrors`, keeping `bootcode` and the
    /// disk signature when given.
    pub fn from_gpt(
        gpt: GptImage,
        mirrors: &[Mirror],
        bootcode: Vec<u8>,
        disk_signature: Option<u32>,
        disk_sectors: u64,
    ) -> Tables {
        let sig = disk_signature.unwrap_or_else(|| mbr::signature_from_guid(&gpt.disk_guid));
        let mbr = mbr::build(bootcode, sig, mirrors, disk_sectors);
        Tables {
            disk_sectors,
            mbr,
            gpt,
        }
    }

    /// Every table sector as `(lba, 512 bytes)`, in ascending LBA order.
    pub fn sectors(&self) -> Vec<(u64, Vec<u8>)> {
        let n = self.disk_sectors;
        let mut out = vec![
            (0, self.mbr.encode().to_vec()),
            (1, self.gpt.header(n, false).encode().to_vec()),
        ];
        let arr = self.gpt.array_padded();
        for (i, c) in arr.chunks(SECTOR as usize).enumerate() {
            out.push((2 + i as u64, c.to_vec()));
        }
        let b = self.gpt.backup_array_lba(n);
        for (i, c) in arr.chunks(SECTOR as usize).enumerate() {
            out.push((b + i as u64, c.to_vec()));
        }
        out.push((n - 1, self.gpt.header(n, true).encode().to_vec()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;
    use crate::disk::Snapshot;
    use std::io::Cursor;

    /// A sparse in-memory card holding only the tables (the checker reads nothing else).
    pub(crate) fn card(t: &Tables) -> Cursor<Vec<u8>> {
        let mut v = vec![0u8; (t.disk_sectors * SECTOR) as usize];
        for (lba, s) in t.sectors() {
            v[(lba * SECTOR) as usize..((lba + 1) * SECTOR) as usize].copy_from_slice(&s);
        }
        Cursor::new(v)
    }

    #[test]
    fn small_layout_tables_are_sound() {
        let l = Layout::from_toml(include_str!("../layouts/zbot-duos-small.toml")).unwrap();
        let t = Tables::from_layout(&l, l.image_sectors());
        let snap = Snapshot::from_reader(&mut card(&t)).unwrap();
        let r = check(&snap, Some(&l));
        assert!(r.problems.is_empty(), "{:#?}", r.problems);
        assert_eq!(r.linux.table, crate::kernel::KernelTable::PrimaryGpt);
        assert_eq!(r.linux.partitions.len(), 6);
        assert_eq!(snap.mbr.entries[0].kind, 0x0C);
    }
}
