//! One generator per damage listed in the issue, with what `check` must say and how `repair`
//! must end.
#![allow(dead_code)]

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// `repair` (no layout) restores the golden tables.
    Golden,
    /// `repair` without a layout refuses; with `--layout` it restores the golden tables.
    NeedsLayout,
    /// The card grew: the backup moves to the new end; MBR and primary array stay golden.
    Larger,
    /// `repair` refuses, with and without the layout.
    Refused,
}

pub struct Case {
    pub name: &'static str,
    pub damage: fn(&Path),
    /// Problem codes `check --json` must report (kebab-case `kind`).
    pub kinds: &'static [&'static str],
    /// Substring of the human-readable report.
    pub message: &'static str,
    pub repair: Repair,
}

fn last(p: &Path) -> u64 {
    sectors(p) - 1
}
fn flip(p: &Path, lba: u64, off: usize) {
    let mut s = read_sector(p, lba);
    s[off] ^= 0xFF;
    write_at(p, lba, &s);
}
fn mbr_edit(p: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut s = read_sector(p, 0);
    f(&mut s);
    write_at(p, 0, &s);
}
fn entry_field(a: &mut [u8], n: usize, off: usize, v: u64) {
    let o = (n - 1) * 128 + off;
    a[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
fn entry_get(a: &[u8], n: usize, off: usize) -> u64 {
    let o = (n - 1) * 128 + off;
    u64::from_le_bytes(a[o..o + 8].try_into().unwrap())
}
fn both_arrays(p: &Path, f: fn(&mut Vec<u8>)) {
    edit_array(p, 1, f);
    edit_array(p, last(p), f);
}

pub fn cases() -> Vec<Case> {
    use Repair::*;
    vec![
        Case {
            name: "primary header corrupt",
            damage: |p| flip(p, 1, 40),
            kinds: &["header-crc"],
            message: "primary GPT header CRC",
            repair: Golden,
        },
        Case {
            name: "primary header zeroed",
            damage: |p| write_at(p, 1, &[0; 512]),
            kinds: &["header-missing"],
            message: "primary GPT header is zeroed",
            repair: Golden,
        },
        Case {
            name: "primary array corrupt",
            damage: |p| flip(p, 2, 60),
            kinds: &["array-crc"],
            message: "primary GPT entry array CRC",
            repair: Golden,
        },
        Case {
            name: "primary array zeroed",
            damage: |p| write_at(p, 2, &[0; 32 * 512]),
            kinds: &["array-crc"],
            message: "(the array is zeroed)",
            repair: Golden,
        },
        Case {
            name: "backup header corrupt",
            damage: |p| flip(p, last(p), 40),
            kinds: &["header-crc"],
            message: "backup GPT header CRC",
            repair: Golden,
        },
        Case {
            name: "backup header zeroed",
            damage: |p| write_at(p, last(p), &[0; 512]),
            kinds: &["header-missing"],
            message: "backup GPT header is zeroed",
            repair: Golden,
        },
        Case {
            name: "backup array corrupt",
            damage: |p| flip(p, last(p) - 32, 60),
            kinds: &["array-crc"],
            message: "backup GPT entry array CRC",
            repair: Golden,
        },
        Case {
            name: "backup array zeroed",
            damage: |p| write_at(p, last(p) - 32, &[0; 32 * 512]),
            kinds: &["array-crc"],
            message: "backup GPT entry array CRC",
            repair: Golden,
        },
        Case {
            name: "both headers gone",
            damage: |p| {
                write_at(p, 1, &[0; 512]);
                write_at(p, last(p), &[0; 512]);
            },
            kinds: &["no-gpt", "header-missing"],
            message: "no usable GPT",
            repair: NeedsLayout,
        },
        Case {
            name: "card larger",
            damage: |p| {
                OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len((sectors(p) + 32768) * 512)
                    .unwrap()
            },
            kinds: &["backup-not-at-end"],
            message: "written to a larger card",
            repair: Larger,
        },
        Case {
            name: "card smaller",
            damage: |p| {
                OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len((sectors(p) - 4096) * 512)
                    .unwrap()
            },
            kinds: &["card-smaller"],
            message: "the card is smaller than the image",
            repair: Refused,
        },
        Case {
            name: "MBR zeroed",
            damage: |p| write_at(p, 0, &[0; 512]),
            kinds: &["mbr-no-signature"],
            message: "no 55AA",
            repair: Golden,
        },
        Case {
            name: "no 55AA",
            damage: |p| mbr_edit(p, |s| s[510..512].copy_from_slice(&[0, 0])),
            kinds: &["mbr-no-signature"],
            message: "no 55AA",
            repair: Golden,
        },
        Case {
            name: "MBR table zeroed",
            damage: |p| mbr_edit(p, |s| s[446..510].fill(0)),
            kinds: &["mbr-no-protective", "mbr-hybrid-missing"],
            message: "no 0xEE",
            repair: Golden,
        },
        Case {
            name: "no 0xEE",
            damage: |p| mbr_edit(p, |s| s[462..478].fill(0)),
            kinds: &["mbr-no-protective"],
            message: "no 0xEE",
            repair: Golden,
        },
        Case {
            name: "0xEE active",
            damage: |p| mbr_edit(p, |s| s[462] = 0x80),
            kinds: &["mbr-protective-bootable"],
            message: "(0xEE) is marked active",
            repair: Golden,
        },
        Case {
            name: "0xEE not at LBA 1",
            damage: |p| {
                mbr_edit(p, |s| {
                    s[470..474].copy_from_slice(&2u32.to_le_bytes());
                    s[474..478].copy_from_slice(&2046u32.to_le_bytes());
                })
            },
            kinds: &["mbr-protective-not-at-lba1"],
            message: "instead of 1",
            repair: Golden,
        },
        Case {
            name: "MBR entries swapped",
            damage: |p| {
                mbr_edit(p, |s| {
                    let a: Vec<u8> = s[446..462].to_vec();
                    s.copy_within(462..478, 446);
                    s[462..478].copy_from_slice(&a);
                })
            },
            kinds: &["mbr-hybrid-slot"],
            message: "entries swapped",
            repair: Golden,
        },
        Case {
            name: "MBR size out of sync with GPT",
            damage: |p| {
                mbr_edit(p, |s| {
                    let n = u32::from_le_bytes(s[458..462].try_into().unwrap());
                    s[458..462].copy_from_slice(&(n - 2048).to_le_bytes());
                })
            },
            kinds: &["mbr-hybrid-mismatch"],
            message: "needs 2048+",
            repair: Golden,
        },
        Case {
            name: "parted replaced the hybrid MBR by a protective one",
            damage: |p| {
                let n = sectors(p);
                mbr_edit(p, |s| {
                    s[446..510].fill(0);
                    s[446 + 4] = 0xEE;
                    s[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
                    s[446 + 12..446 + 16].copy_from_slice(&((n - 1) as u32).to_le_bytes());
                })
            },
            kinds: &["mbr-hybrid-missing"],
            message: "does not mirror",
            repair: Golden,
        },
        Case {
            name: "overlap",
            damage: |p| {
                both_arrays(p, |a| {
                    let v = entry_get(a, 2, 32);
                    entry_field(a, 3, 32, v)
                })
            },
            kinds: &["overlap"],
            message: "overlap",
            repair: NeedsLayout,
        },
        Case {
            name: "start > end",
            damage: |p| {
                both_arrays(p, |a| {
                    let v = entry_get(a, 4, 40) + 1;
                    entry_field(a, 4, 32, v)
                })
            },
            kinds: &["start-after-end"],
            message: "after its end",
            repair: NeedsLayout,
        },
        Case {
            name: "partition past last usable",
            damage: |p| both_arrays(p, |a| entry_field(a, 6, 40, 92160 - 34 + 10)),
            kinds: &["in-table-area"],
            message: "overlaps the GPT table area",
            repair: NeedsLayout,
        },
        Case {
            name: "wrong MyLBA",
            damage: |p| edit_header(p, 1, |h| h.my_lba = 5),
            kinds: &["my-lba"],
            message: "MyLBA = 5",
            repair: Golden,
        },
        Case {
            name: "wrong AlternateLBA",
            damage: |p| edit_header(p, 1, |h| h.alternate_lba -= 100),
            kinds: &["alternate-lba"],
            message: "AlternateLBA",
            repair: Golden,
        },
        Case {
            name: "entry size 64",
            damage: |p| {
                edit_header(p, 1, |h| h.entry_size = 64);
                edit_array(p, 1, |_| {});
            },
            kinds: &["entry-size"],
            message: "entry size is 64",
            repair: Golden,
        },
        Case {
            name: "entry count 4",
            damage: |p| {
                edit_header(p, 1, |h| h.num_entries = 4);
                edit_array(p, 1, |_| {});
            },
            kinds: &["entry-count"],
            message: "declares 4 entries",
            repair: Golden,
        },
        Case {
            name: "header size too big",
            damage: |p| edit_header(p, 1, |h| h.header_size = 600),
            kinds: &["header-size"],
            message: "header size is 600",
            repair: Golden,
        },
        // Regression (issue 10): reported with the fix "run `partctl repair`" but exit 0;
        // sgdisk treats such a header as invalid.
        Case {
            name: "primary header revision 0.99",
            damage: |p| edit_header(p, 1, |h| h.revision = 0x0000_6300),
            kinds: &["header-revision"],
            message: "primary GPT header revision 0x00006300 (expected 1.0)",
            repair: Golden,
        },
        Case {
            name: "backup header revision 2.0",
            damage: |p| edit_header(p, last(p), |h| h.revision = 0x0002_0000),
            kinds: &["header-revision"],
            message: "backup GPT header revision 0x00020000 (expected 1.0)",
            repair: Golden,
        },
        Case {
            name: "primary and backup arrays differ",
            damage: |p| edit_array(p, last(p), |a| a[4 * 128 + 56] = b'D'),
            kinds: &["copies-differ"],
            message: "differ in: partition 5",
            repair: Golden,
        },
    ]
}
