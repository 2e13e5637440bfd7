//! Never panic, whatever the card holds; read only the table areas whatever the card's size.

mod common;
use partctl::check::check;
use partctl::disk::Snapshot;
use partctl::layout::Layout;
use partctl::model::Tables;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};

/// A huge virtual card: zeros except for the given sectors; counts the bytes read.
struct Virtual {
    size: u64,
    sectors: BTreeMap<u64, Vec<u8>>,
    pos: u64,
    read: u64,
}

impl Read for Virtual {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.size.saturating_sub(self.pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos + i as u64;
            *b = self
                .sectors
                .get(&(at / 512))
                .map(|s| s[(at % 512) as usize])
                .unwrap_or(0);
        }
        self.pos += n as u64;
        self.read += n as u64;
        Ok(n)
    }
}

impl Seek for Virtual {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.size.checked_add_signed(d).unwrap(),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).unwrap(),
        };
        Ok(self.pos)
    }
}

fn virtual_card(l: &Layout, size: u64) -> Virtual {
    let t = Tables::from_layout(l, size / 512);
    Virtual {
        size,
        sectors: t.sectors().into_iter().collect(),
        pos: 0,
        read: 0,
    }
}

#[test]
fn check_reads_only_the_table_areas_of_a_64_gib_card() {
    let l = common::small_layout();
    for size in [64u64 << 20, 64 << 30, 2 << 40] {
        let mut v = virtual_card(&l, size);
        let s = Snapshot::from_reader(&mut v).unwrap();
        let r = check(&s, Some(&l));
        assert!(r.is_sound(), "{:?}", r.problems);
        assert!(v.read <= 70 * 512, "{size}: read {} bytes", v.read);
    }
    // A card larger than the image: the stale copy in the middle is read too, still constant.
    let mut v = virtual_card(&l, 64 << 20);
    v.size = 64 << 30;
    let s = Snapshot::from_reader(&mut v).unwrap();
    let r = check(&s, None);
    assert!(r.has(partctl::check::Kind::BackupNotAtEnd));
    assert!(v.read <= 140 * 512, "read {}", v.read);
}

/// Regression (found by `cargo fuzz run gpt_reader`): a sound-looking GPT whose entry ends at
/// LBA 2^64-1 (AlternateLBA 2^64-1) made the "card smaller" size computation overflow in the repair planner.
#[test]
fn regression_entry_ending_at_u64_max() {
    // artifacts/gpt_reader/crash-47a15df5de68cdcd05f7f9a1f17228adda148238
    let mut crash = vec![0u8; 4];
    crash.extend([0xFFu8; 36]);
    crash.push(0x86);
    partctl::fuzzing::gpt(&crash);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random bytes in random table sectors of a valid small card: check, plan and repair
    /// never panic, and whenever a repair is planned, the result checks sound.
    #[test]
    fn random_damage_never_panics_and_repairs_converge(
        hits in proptest::collection::vec((prop_oneof![Just(0u64), Just(1), 2u64..34, Just(8191), 8159u64..8191], 0usize..512, any::<u8>()), 1..12)
    ) {
        let l = Layout::from_toml(TINY).unwrap();
        let t = Tables::from_layout(&l, 8192);
        let mut disk = vec![0u8; 8192 * 512];
        for (lba, s) in t.sectors() {
            disk[(lba * 512) as usize..(lba * 512 + 512) as usize].copy_from_slice(&s);
        }
        for (lba, off, b) in &hits {
            disk[(*lba * 512) as usize + off] = *b;
        }
        partctl::fuzzing::card(&disk);
        let s = Snapshot::from_reader(&mut io::Cursor::new(&disk)).unwrap();
        for layout in [None, Some(&l)] {
            if let Ok(plan) = partctl::repair::plan(&mut io::Cursor::new(&disk), &s, layout) {
                for w in &plan.writes {
                    // Only table sectors (or zeroing a stale copy outside every partition).
                    prop_assert!(w.lba < 34 || w.lba >= 8192 - 33 || w.data.iter().all(|&b| b == 0), "write at LBA {}", w.lba);
                    prop_assert!(!(2048..2048 + 4096).contains(&w.lba), "write inside a partition at LBA {}", w.lba);
                }
                let mut d2 = disk.clone();
                for w in &plan.writes {
                    d2[(w.lba * 512) as usize..(w.lba * 512 + 512) as usize].copy_from_slice(&w.data);
                }
                let s2 = Snapshot::from_reader(&mut io::Cursor::new(&d2)).unwrap();
                let r2 = check(&s2, layout);
                prop_assert!(r2.is_sound(), "after repair ({:?}): {:#?}", layout.is_some(), r2.problems);
                prop_assert_eq!(r2.linux.table, partctl::kernel::KernelTable::PrimaryGpt);
            } else {
                // With the layout, a repair may only be refused for a card too small.
                prop_assert!(layout.is_none());
            }
        }
    }

    #[test]
    fn fuzz_entry_points_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        partctl::fuzzing::gpt(&data);
        partctl::fuzzing::mbr(&data);
        partctl::fuzzing::card(&data);
    }
}

const TINY: &str = r#"
[disk]
guid = "5A8B0C00-0D05-4B0A-9C3E-0000000000F0"
[[partition]]
name = "boot"
size = "1M"
type = "esp"
uuid = "5A8B0C00-0D05-4B0A-9C3E-0000000000F1"
mbr = { slot = 1, type = 0x0C, bootable = true }
[[partition]]
name = "rootfs"
size = "1M"
type = "linux"
uuid = "5A8B0C00-0D05-4B0A-9C3E-0000000000F2"
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Any valid layout -> tables -> bytes -> reader -> checker: no problems, the partitions
    /// read back are the layout's, Linux sees them all, and the MBR mirror is right.
    #[test]
    fn layout_model_reader_round_trip(
        sizes in proptest::collection::vec(1u64..64, 1..8),
        align_kib in prop_oneof![Just(4u64), Just(64), Just(1024)],
        extra_mib in 0u64..64,
        mirror in 0usize..8,
        slot in 1u8..=4,
    ) {
        let mut toml = format!("[disk]\nguid = \"5A8B0C00-0D05-4B0A-9C3E-0000000000E0\"\nalign = \"{align_kib}K\"\n");
        for (i, s) in sizes.iter().enumerate() {
            toml += &format!("[[partition]]\nname = \"p{i}\"\nsize = \"{}K\"\ntype = \"{}\"\nuuid = \"5A8B0C00-0D05-4B0A-9C3E-0000000001{i:02}\"\n", s * 64, if i == 0 { "esp" } else { "linux" });
            if i == mirror % sizes.len() {
                toml += &format!("mbr = {{ slot = {slot}, type = 0x0C, bootable = true }}\n");
            }
        }
        let l = Layout::from_toml(&toml).unwrap();
        let n = l.min_sectors() + extra_mib * 2048;
        let t = Tables::from_layout(&l, n);
        let mut v = Virtual { size: n * 512, sectors: t.sectors().into_iter().collect(), pos: 0, read: 0 };
        let s = Snapshot::from_reader(&mut v).unwrap();
        let r = check(&s, Some(&l));
        let errors: Vec<_> = r.problems.iter().filter(|p| p.kind != partctl::check::Kind::Misaligned).collect();
        prop_assert!(errors.is_empty(), "{:#?}", errors);
        prop_assert_eq!(r.linux.partitions.len(), sizes.len());
        for ((num, e), pl) in r.partitions.iter().zip(l.place()) {
            prop_assert_eq!((*num, e.first_lba, e.last_lba), (pl.number, pl.first, pl.last));
        }
        let m = &s.mbr.entries[slot as usize - 1];
        let pl = &l.place()[mirror % sizes.len()];
        prop_assert_eq!((m.kind, m.boot, m.start as u64, m.size as u64), (0x0C, 0x80, pl.first, pl.last + 1 - pl.first));
    }
}

fn absurd() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(511),
        Just(512),
        Just(u64::MAX),
        Just(u64::MAX - 511),
        Just(1 << 47),
        Just((1 << 47) + 512),
        Just(u32::MAX as u64 * 512),
        (0u64..64).prop_map(|s| 1u64 << s),
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Issue 10: absurd numbers in a layout are refused with an error, never a panic, and a
    /// layout that is accepted can be placed and turned into tables without overflow.
    #[test]
    fn absurd_layout_numbers_never_panic(
        align in absurd(), entries in absurd(), s1 in absurd(), s2 in absurd(),
        env in absurd(), disk in proptest::option::of(absurd()),
    ) {
        let disk_size = disk.map(|d| format!("size = {}\n", d.min(i64::MAX as u64))).unwrap_or_default();
        let text = format!(
            "[disk]\nguid = \"5A8B0C00-0D05-4B0A-9C3E-000000000010\"\nalign = {}\nentries = {}\n{disk_size}\
             [[partition]]\nname = \"boot\"\nsize = {}\ntype = \"esp\"\nuuid = \"5A8B0C00-0D05-4B0A-9C3E-000000000001\"\nmbr = {{ slot = 1, type = 0x0C }}\n\
             [[partition]]\nname = \"env\"\nsize = {}\ntype = \"linux\"\nuuid = \"5A8B0C00-0D05-4B0A-9C3E-000000000002\"\ncontent = {{ kind = \"env\", size = {} }}\n",
            align.min(i64::MAX as u64), entries.min(i64::MAX as u64), s1.min(i64::MAX as u64),
            s2.min(i64::MAX as u64), env.min(i64::MAX as u64),
        );
        if let Ok(l) = Layout::from_toml(&text) {
            let placed = l.place();
            prop_assert!(placed.iter().all(|p| p.first <= p.last));
            let n = l.image_sectors();
            prop_assert!(n >= l.min_sectors());
            prop_assert!(n <= partctl::files::MAX_CARD_BYTES / 512);
            let t = Tables::from_layout(&l, n);
            prop_assert_eq!(t.disk_sectors, n);
        }
    }

    /// The CLI's number parsers: an error or a sane value, never a panic.
    #[test]
    fn cli_number_parsers_never_panic(s in "[-+ 0-9a-zA-Z.]{0,24}", n in any::<u64>()) {
        for v in [s.clone(), n.to_string(), format!("{n}T"), format!("{n}G")] {
            if let Ok(a) = partctl::cli::parse_align(&v) {
                prop_assert!(a.is_power_of_two() && a <= 1 << 21);
            }
            if let Ok(b) = partctl::cli::parse_card_size(&v) {
                prop_assert!(b % 512 == 0 && b > 0 && b <= partctl::files::MAX_CARD_BYTES);
            }
        }
    }
}
