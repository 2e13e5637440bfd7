//! Entry points shared by the cargo-fuzz targets (`partctl/fuzz`) and the property tests: each
//! must return normally on any input.

use crate::check::check;
use crate::disk::{Patched, Snapshot};
use crate::print::format_report;
use crate::repair;
use std::io::Cursor;

/// Treat `data` as a whole card: read, check, plan a repair, apply it in memory, check again.
pub fn card(data: &[u8]) {
    let mut disk = data.to_vec();
    if disk.len() < 3 * 512 {
        disk.resize(3 * 512, 0);
    }
    let Ok(s) = Snapshot::from_reader(&mut Cursor::new(&disk)) else {
        return;
    };
    let r = check(&s, None);
    let _ = format_report("fuzz", &r);
    let _ = serde_json::to_string(&r);
    if let Ok(plan) = repair::plan(&mut Cursor::new(&disk), &s, None) {
        let _ = plan.describe();
        let mut after = Patched::new(Cursor::new(&disk));
        for w in &plan.writes {
            after.patch(w.lba, &w.data);
        }
        if let Ok(s2) = Snapshot::from_reader(&mut after) {
            let _ = check(&s2, None);
        }
    }
}

/// A GPT header sector and an entry array, decoded directly.
pub fn gpt(data: &[u8]) {
    if let Some(h) = crate::gpt::parse_header(data) {
        let _ = h.crc_ok();
        let _ = h.header.array_sectors();
    }
    for size in [128, 64, 256, 0, u32::MAX] {
        let _ = crate::gpt::parse_entries(data, size);
    }
    // The same bytes as the primary header + array of a small card, with a protective MBR.
    let mut disk = vec![0u8; 512];
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk[446 + 4] = 0xEE;
    disk[446 + 8] = 1;
    disk.extend_from_slice(data);
    disk.resize(disk.len().max(64 * 512), 0);
    card(&disk);
    // Structure-aware variant: fix the signature and both CRCs so that the fuzzer gets past
    // them and exercises the checker and the repair planner on valid-looking headers.
    disk[512..520].copy_from_slice(&crate::gpt::SIGNATURE);
    let Some(raw) = crate::gpt::parse_header(&disk[512..1024]) else {
        return;
    };
    let h = raw.header;
    let start = h.entries_lba.saturating_mul(512);
    let end = start.saturating_add(h.array_bytes());
    if end <= disk.len() as u64 {
        let crc = crc32fast::hash(&disk[start as usize..end as usize]);
        disk[512 + 88..512 + 92].copy_from_slice(&crc.to_le_bytes());
    }
    let hs = (h.header_size as usize).clamp(crate::gpt::HEADER_SIZE as usize, 512);
    disk[512 + 16..512 + 20].fill(0);
    let crc = crc32fast::hash(&disk[512..512 + hs]);
    disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
    card(&disk);
    // And the same copy as the backup at the end of the card.
    let n = disk.len();
    let hdr: Vec<u8> = disk[512..1024].to_vec();
    disk[n - 512..].copy_from_slice(&hdr);
    card(&disk);
}

/// An MBR sector, decoded directly and as the first sector of a card.
pub fn mbr(data: &[u8]) {
    let m = crate::mbr::parse(data);
    let _ = m.encode();
    let mut disk = data.to_vec();
    disk.resize(68 * 512, 0);
    card(&disk);
}
