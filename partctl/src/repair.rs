//! Repair planning and application.
//!
//! [`plan`] compares what is on the card with what should be there and lists sector writes in
//! an order chosen so that a power cut between any two of them leaves a table that reads:
//!
//! 1. the backup array, then the backup header (the primary, which Linux reads, is untouched);
//! 2. the primary: when Linux can read it now and its array must change, first a primary header
//!    pointing at the (already rewritten) backup array, then the primary array, then the final
//!    primary header, so every intermediate primary header matches the array it points to;
//!    otherwise the primary array, then its header;
//! 3. the MBR (one sector: old or new, both readable when the GPT is);
//! 4. clearing a stale backup left in the middle of a larger card.
//!
//! [`apply`] saves every sector it will change into a backup file first; [`restore`] undoes.

use crate::check::{best_source, copy_entries, expected_mirrors, Which};
use crate::disk::{read_sectors, Snapshot};
use crate::gpt::{GptEntry, GptImage};
use crate::kernel::{self, KernelTable};
use crate::layout::Layout;
use crate::model::Tables;
use crate::SECTOR;
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// One sector to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectorWrite {
    /// Where.
    pub lba: u64,
    /// 512 bytes.
    pub data: Vec<u8>,
    /// Why, for the plan shown to the user.
    pub what: String,
}

/// An ordered list of writes.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Card size in sectors the plan was made for.
    pub disk_sectors: u64,
    /// Writes, in order.
    pub writes: Vec<SectorWrite>,
    /// Decisions taken (source copy, layout use...).
    pub notes: Vec<String>,
}

impl Plan {
    /// True when nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
    /// Human-readable plan, one line per run of writes with the same purpose.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        let mut i = 0;
        let mut step = 1;
        while i < self.writes.len() {
            let w = &self.writes[i];
            let mut j = i + 1;
            while j < self.writes.len()
                && self.writes[j].what == w.what
                && self.writes[j].lba == self.writes[j - 1].lba + 1
            {
                j += 1;
            }
            let range = if j - i > 1 {
                format!("LBA {}..{}", w.lba, self.writes[j - 1].lba)
            } else {
                format!("LBA {}", w.lba)
            };
            out.push_str(&format!("{step:2}. write {range}: {}\n", w.what));
            step += 1;
            i = j;
        }
        if self.writes.is_empty() {
            out.push_str("nothing to write\n");
        }
        out
    }
}

/// Why a repair was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The card is smaller than what the tables describe.
    #[error("the card ({disk} sectors) is smaller than the {what} ({need} sectors): partitions would be cut; write the image to a card at least that large")]
    CardSmaller {
        /// Card sectors.
        disk: u64,
        /// Needed sectors.
        need: u64,
        /// "layout" or "partition table".
        what: &'static str,
    },
    /// Nothing to rebuild from.
    #[error("both GPT copies are unusable and no layout was given: rerun with --layout FILE")]
    NothingToRepairFrom,
    /// The surviving table describes impossible partitions.
    #[error("the surviving GPT describes partitions that cannot be right ({0}); rerun with --layout FILE to rebuild the entries")]
    EntriesUnsafe(String),
    /// A sound, consistent table describes other partitions than the layout.
    #[error("{0} describes consistent partitions that differ from the layout (see `partctl check --layout`); partctl does not move partitions: fix the layout, or recreate the card")]
    LayoutConflict(String),
    /// Grow request invalid.
    #[error("cannot grow: {0}")]
    Grow(String),
    /// Reading the card failed.
    #[error("reading the card: {0}")]
    Io(#[from] io::Error),
}

/// Why the entries of a copy cannot be kept on a card of `disk_sectors`, if they cannot.
fn entries_problem(
    entries: &[(u32, GptEntry)],
    first_usable: u64,
    disk_sectors: u64,
    asecs: u64,
) -> Option<String> {
    let last_usable = disk_sectors.saturating_sub(2 + asecs);
    for (n, e) in entries {
        if e.first_lba > e.last_lba {
            return Some(format!("partition {n} starts after its end"));
        }
        if e.first_lba < first_usable || e.last_lba > last_usable {
            return Some(format!("partition {n} at LBA {}..{} is outside the usable range {first_usable}..{last_usable}", e.first_lba, e.last_lba));
        }
    }
    for (i, (n, a)) in entries.iter().enumerate() {
        for (m, b) in &entries[i + 1..] {
            if a.first_lba <= b.last_lba && b.first_lba <= a.last_lba {
                return Some(format!("partitions {n} and {m} overlap"));
            }
        }
    }
    None
}

fn layout_matches(l: &Layout, entries: &[(u32, GptEntry)]) -> bool {
    let want = Tables::from_layout(l, u64::MAX / 2).gpt.entries();
    want.len() == entries.len()
        && want
            .iter()
            .zip(entries)
            .zip(&l.partitions)
            .all(|(((n, w), (m, e)), spec)| {
                n == m
                    && GptEntry {
                        last_lba: e.last_lba,
                        ..w.clone()
                    } == *e
                    && (e.last_lba == w.last_lba || (spec.growable && e.last_lba > w.last_lba))
            })
}

/// What one sound GPT copy can be as the source of a repair.
enum Candidate {
    /// Fits the card (and the layout, when given): the GPT to write, with notes on what changed.
    Usable(GptImage, Vec<String>),
    /// Its entries cannot be written safely on this card: why.
    Unsafe(String),
    /// Sound, but not what the layout says: which copy.
    DiffersFromLayout(String),
}

/// The tables the card should carry.
pub fn target(s: &Snapshot, layout: Option<&Layout>) -> Result<(Tables, Vec<String>), Refusal> {
    let n = s.disk_sectors;
    let last = s.last_lba();
    let mut notes = Vec::new();
    if let Some(l) = layout {
        if n < l.min_sectors() {
            return Err(Refusal::CardSmaller {
                disk: n,
                need: l.min_sectors(),
                what: "layout",
            });
        }
    }
    let candidates = candidates(s);
    if let Some(p) = s
        .primary
        .raw
        .as_ref()
        .map(|r| r.header.alternate_lba)
        .filter(|&a| a > last)
    {
        if layout.is_none() {
            return Err(Refusal::CardSmaller {
                disk: n,
                need: p.saturating_add(1),
                what: "partition table",
            });
        }
    }
    // The first usable candidate wins, in the order of `candidates`.
    let mut chosen = None;
    let mut unsafe_reason = None;
    let mut sane_but_different = None;
    for (c, which) in &candidates {
        match classify(c, *which, s, layout)? {
            Candidate::Usable(gpt, more) => {
                notes.extend(more);
                chosen = Some(gpt);
                break;
            }
            Candidate::Unsafe(why) => {
                unsafe_reason.get_or_insert(why);
            }
            Candidate::DiffersFromLayout(what) => {
                notes.push(format!("{what} does not match the layout"));
                sane_but_different.get_or_insert(what);
            }
        }
    }
    let gpt_tables = match (chosen, layout) {
        (Some(g), _) => tables_from_gpt(s, layout, g),
        (None, Some(_)) if sane_but_different.is_some() => {
            return Err(Refusal::LayoutConflict(
                sane_but_different.expect("checked"),
            ));
        }
        (None, Some(l)) => {
            notes.push("rebuilding the GPT entries from the layout".into());
            tables_from_layout(s, l)
        }
        (None, None) => {
            return Err(match unsafe_reason {
                Some(r) => Refusal::EntriesUnsafe(r),
                None => Refusal::NothingToRepairFrom,
            })
        }
    };
    Ok((gpt_tables, notes))
}

/// The tables around the chosen GPT: its hybrid MBR rebuilt, keeping the boot code and disk
/// signature of a valid MBR.
fn tables_from_gpt(s: &Snapshot, layout: Option<&Layout>, g: GptImage) -> Tables {
    let mirrors = expected_mirrors(layout, &g.entries());
    let (bootcode, sig) = if s.mbr.signature_ok {
        (
            s.mbr.bootcode.clone(),
            Some(s.mbr.disk_signature).filter(|&d| d != 0),
        )
    } else {
        (vec![0; 440], None)
    };
    Tables::from_gpt(g, &mirrors, bootcode, sig, s.disk_sectors)
}

/// The tables the layout prescribes, keeping the boot code and disk signature of a valid MBR.
fn tables_from_layout(s: &Snapshot, l: &Layout) -> Tables {
    let mut t = Tables::from_layout(l, s.disk_sectors);
    if s.mbr.signature_ok {
        t.mbr.bootcode = s.mbr.bootcode.clone();
        if s.mbr.disk_signature != 0 {
            t.mbr.disk_signature = s.mbr.disk_signature;
        }
    }
    t
}

/// The sound copies a repair may start from, best first: the one `check` reads, then any
/// other sound backup (at the card's end, or left mid-card by a smaller image).
fn candidates(s: &Snapshot) -> Vec<(&crate::disk::CopyAt, Which)> {
    let last = s.last_lba();
    let mut candidates: Vec<(&crate::disk::CopyAt, Which)> = Vec::new();
    if let Some(c) = best_source(s) {
        candidates.push(c);
    }
    for c in [Some(&s.backup), s.alternate.as_ref()]
        .into_iter()
        .flatten()
    {
        if crate::check::copy_is_sound(c, c.lba, last)
            && !candidates.iter().any(|(d, _)| d.lba == c.lba)
        {
            candidates.push((c, Which::Backup));
        }
    }
    candidates
}

/// Whether the sound copy `c` can be the repair's source; a card too small for its partitions
/// (without a layout to rebuild from) refuses the whole repair.
fn classify(
    c: &crate::disk::CopyAt,
    which: Which,
    s: &Snapshot,
    layout: Option<&Layout>,
) -> Result<Candidate, Refusal> {
    let (n, last) = (s.disk_sectors, s.last_lba());
    let h = &c.raw.as_ref().expect("sound").header;
    let entries = copy_entries(c);
    let asecs = h.array_sectors();
    if n < 2 * asecs + 3 {
        return Ok(Candidate::Unsafe(format!(
            "the card ({n} sectors) cannot hold two {asecs}-sector entry arrays"
        )));
    }
    let first_usable = h.first_usable.max(2 + asecs);
    if let Some(why) = entries_problem(&entries, first_usable, n, asecs) {
        if entries.iter().any(|(_, e)| e.last_lba > last) && layout.is_none() {
            let need = entries
                .iter()
                .map(|(_, e)| e.last_lba.saturating_add(2 + asecs))
                .max()
                .unwrap_or(0);
            return Err(Refusal::CardSmaller {
                disk: n,
                need,
                what: "partition table",
            });
        }
        return Ok(Candidate::Unsafe(why));
    }
    if let Some(l) = layout {
        if !layout_matches(l, &entries) {
            return Ok(Candidate::DiffersFromLayout(format!(
                "the {which} GPT at LBA {}",
                c.lba
            )));
        }
    }
    let anchored = if which == Which::Primary {
        h.alternate_lba == last
    } else {
        c.lba == last
    };
    let max_end = entries.iter().map(|(_, e)| e.last_lba).max().unwrap_or(0);
    let last_usable = if anchored
        && h.last_usable >= max_end
        && h.last_usable <= last.saturating_sub(1 + asecs)
    {
        h.last_usable
    } else {
        last.saturating_sub(1 + asecs)
    };
    let array = c.array.as_ref().expect("sound").clone();
    let mut notes = Vec::new();
    let mut disk_guid = h.disk_guid;
    if let Some(l) = layout.filter(|l| l.disk.guid != h.disk_guid) {
        notes.push(format!(
            "disk GUID {} replaced by the layout's {}",
            h.disk_guid, l.disk.guid
        ));
        disk_guid = l.disk.guid;
    }
    let gpt = GptImage {
        disk_guid,
        first_usable,
        last_usable,
        num_entries: h.num_entries,
        array,
    };
    notes.push(format!(
        "using the {which} GPT at LBA {} ({} partitions)",
        c.lba,
        entries.len()
    ));
    Ok(Candidate::Usable(gpt, notes))
}

/// Plan the writes that turn the card into `target`.
pub fn plan_to<R: Read + Seek>(r: &mut R, s: &Snapshot, t: &Tables) -> io::Result<Plan> {
    let n = s.disk_sectors;
    let want: BTreeMap<u64, Vec<u8>> = t.sectors().into_iter().collect();
    let mut cur = BTreeMap::new();
    for &lba in want.keys() {
        cur.insert(lba, read_sectors(r, lba, 1)?);
    }
    let changed = |lba: &u64| cur.get(lba) != want.get(lba);
    let asecs = t.gpt.array_sectors();
    let ba = t.gpt.backup_array_lba(n);
    let mut writes = Vec::new();
    let mut push = |lba: u64, data: Vec<u8>, what: &str| {
        writes.push(SectorWrite {
            lba,
            data,
            what: what.to_string(),
        })
    };

    for lba in ba..ba + asecs {
        if changed(&lba) {
            push(lba, want[&lba].clone(), "backup GPT entry array");
        }
    }
    if changed(&(n - 1)) {
        push(n - 1, want[&(n - 1)].clone(), "backup GPT header");
    }
    let pa_changed = (2..2 + asecs).any(|l| changed(&l));
    if pa_changed {
        if kernel::view(s, false).table == KernelTable::PrimaryGpt {
            let mut h = t.gpt.header(n, false);
            h.entries_lba = ba;
            push(
                1,
                h.encode().to_vec(),
                "primary GPT header, temporarily using the backup entry array",
            );
        }
        for lba in 2..2 + asecs {
            if changed(&lba) {
                push(lba, want[&lba].clone(), "primary GPT entry array");
            }
        }
        push(1, want[&1].clone(), "primary GPT header");
    } else if changed(&1) {
        push(1, want[&1].clone(), "primary GPT header");
    }
    if changed(&0) {
        push(0, want[&0].clone(), "hybrid MBR");
    }
    // A stale backup copy left where the smaller image ended.
    if let Some(old) = s
        .alternate
        .as_ref()
        .filter(|c| c.raw.is_some() && !want.contains_key(&c.lba))
    {
        // Never inside a partition, old (any sound copy) or new.
        let mut parts: Vec<(u64, u64)> = t
            .gpt
            .entries()
            .iter()
            .map(|(_, e)| (e.first_lba, e.last_lba))
            .collect();
        for c in [Some(&s.primary), Some(&s.backup), s.alternate.as_ref()]
            .into_iter()
            .flatten()
        {
            if crate::check::copy_is_sound(c, c.lba, s.last_lba()) {
                parts.extend(
                    copy_entries(c)
                        .iter()
                        .map(|(_, e)| (e.first_lba, e.last_lba)),
                );
            }
        }
        let inside = |lba: u64| parts.iter().any(|&(f, l)| f <= lba && lba <= l);
        let h = &old.raw.as_ref().expect("checked").header;
        let mut lbas = vec![old.lba];
        if h.entries_lba < old.lba && old.lba - h.entries_lba <= h.array_sectors() {
            lbas.extend(h.entries_lba..h.entries_lba + h.array_sectors());
        }
        for lba in lbas {
            if !inside(lba) && !want.contains_key(&lba) {
                let what = if lba == old.lba {
                    "clear the stale backup GPT header"
                } else {
                    "clear the stale backup GPT entry array"
                };
                push(lba, vec![0; SECTOR as usize], what);
            }
        }
    }
    Ok(Plan {
        disk_sectors: n,
        writes,
        notes: Vec::new(),
    })
}

/// Plan a repair of the card read through `r` (snapshot `s`), optionally against a layout.
pub fn plan<R: Read + Seek>(
    r: &mut R,
    s: &Snapshot,
    layout: Option<&Layout>,
) -> Result<Plan, Refusal> {
    let (t, notes) = target(s, layout)?;
    let mut p = plan_to(r, s, &t)?;
    p.notes = notes;
    Ok(p)
}

/// Plan growing partition `name` to the end of the card: its new end is the last usable LBA
/// rounded down to a multiple of `align` sectors (minus one), so running it twice changes nothing.
pub fn plan_grow<R: Read + Seek>(
    r: &mut R,
    s: &Snapshot,
    name: &str,
    align: u64,
) -> Result<(Plan, u32, u64, u64), Refusal> {
    let (mut t, notes) = target(s, None)?;
    let asecs = t.gpt.array_sectors();
    let last_usable = s.last_lba().saturating_sub(1 + asecs);
    t.gpt.last_usable = last_usable;
    let entries = t.gpt.entries();
    let (num, e) = entries
        .iter()
        .find(|(_, e)| e.name == name)
        .cloned()
        .ok_or_else(|| Refusal::Grow(format!("no partition named {name:?}")))?;
    if let Some((m, o)) = entries.iter().find(|(_, o)| o.first_lba > e.last_lba) {
        return Err(Refusal::Grow(format!(
            "partition {m} ({}) follows {name:?}: only the last partition can grow",
            o.name
        )));
    }
    let end_excl = last_usable + 1;
    let aligned = if align > 1 {
        end_excl / align * align
    } else {
        end_excl
    };
    // Idempotent: a grow cut by a power loss and run again ends at the same LBA.
    let new_last = aligned.saturating_sub(1);
    if new_last <= e.last_lba {
        // Already grown (or no room to grow): not a refusal, and nothing is written (other
        // differences are `repair`'s business). A first-boot service runs
        // `partctl grow NAME DEV --yes && resize2fs PART` on every boot; if power was lost
        // after the grow but before resize2fs, the rerun must succeed so resize2fs still runs.
        let mut notes = notes;
        notes.push(format!(
            "partition {num} ({name}) already ends at LBA {} (the card ends at LBA {}): nothing to grow",
            e.last_lba,
            s.last_lba()
        ));
        let p = Plan {
            disk_sectors: s.disk_sectors,
            writes: Vec::new(),
            notes,
        };
        return Ok((p, num, e.first_lba, e.last_lba - e.first_lba + 1));
    }
    let o = (num as usize - 1) * 128;
    t.gpt.array[o + 40..o + 48].copy_from_slice(&new_last.to_le_bytes());
    // Keep a hybrid MBR mirror of this partition in sync.
    for m in t
        .mbr
        .entries
        .iter_mut()
        .filter(|m| m.kind != crate::mbr::PROTECTIVE && m.start as u64 == e.first_lba)
    {
        m.size =
            (new_last.saturating_add(1).saturating_sub(e.first_lba)).min(u32::MAX as u64) as u32;
    }
    let mut p = plan_to(r, s, &t)?;
    p.notes = notes;
    p.notes.push(format!(
        "grow partition {num} ({name}) from LBA {}..{} to {}..{new_last}",
        e.first_lba, e.last_lba, e.first_lba
    ));
    Ok((p, num, e.first_lba, new_last - e.first_lba + 1))
}

/// Plan resizing partition `name` in place to end at LBA `new_last` (its start does not move):
/// the migration of a field card grows the env partition from 256K to 1M inside the 1 MiB slot
/// it already owns (docs/env-backend.md). Refused when the new end is before the start, past
/// the last usable LBA or into the next partition. Returns the plan (empty when both tables
/// already say so, so a rerun writes nothing; not empty when a cut resize left the primary
/// header on the backup array), the partition's number and its old last LBA.
/// The writes are [`plan_to`]'s: backup array and header first, then the primary, each copy
/// whole and with its CRCs, so a cut between any two leaves a readable table.
pub fn plan_resize<R: Read + Seek>(
    r: &mut R,
    s: &Snapshot,
    name: &str,
    new_last: u64,
) -> Result<(Plan, u32, u64), Refusal> {
    let (mut t, notes) = target(s, None)?;
    let entries = t.gpt.entries();
    let (num, e) = entries
        .iter()
        .find(|(_, e)| e.name == name)
        .cloned()
        .ok_or_else(|| Refusal::Grow(format!("no partition named {name:?}")))?;
    if new_last < e.first_lba {
        return Err(Refusal::Grow(format!(
            "partition {num} ({name}) starts at LBA {}: it cannot end at LBA {new_last}",
            e.first_lba
        )));
    }
    if new_last > t.gpt.last_usable {
        return Err(Refusal::Grow(format!(
            "partition {num} ({name}) cannot end at LBA {new_last}: the last usable LBA is {}",
            t.gpt.last_usable
        )));
    }
    if let Some((m, o)) = entries
        .iter()
        .find(|(m, o)| *m != num && o.first_lba <= new_last && e.first_lba <= o.last_lba)
    {
        return Err(Refusal::Grow(format!(
            "partition {num} ({name}) cannot end at LBA {new_last}: partition {m} ({}) starts at LBA {}",
            o.name, o.first_lba
        )));
    }
    // No early return when the entry already ends there: a resize cut after the primary
    // header was pointed at the (new) backup array still has the primary array to write, and
    // `plan_to` finds it; on a finished card it plans nothing.
    let mut notes = notes;
    if new_last == e.last_lba {
        notes.push(format!(
            "partition {num} ({name}) already ends at LBA {new_last}"
        ));
    }
    let o = (num as usize - 1) * 128;
    t.gpt.array[o + 40..o + 48].copy_from_slice(&new_last.to_le_bytes());
    for m in t
        .mbr
        .entries
        .iter_mut()
        .filter(|m| m.kind != crate::mbr::PROTECTIVE && m.start as u64 == e.first_lba)
    {
        m.size = (new_last + 1 - e.first_lba).min(u32::MAX as u64) as u32;
    }
    let mut p = plan_to(r, s, &t)?;
    p.notes = notes;
    if new_last != e.last_lba {
        p.notes.push(format!(
            "resize partition {num} ({name}) from LBA {}..{} to {}..{new_last}",
            e.first_lba, e.last_lba, e.first_lba
        ));
    }
    Ok((p, num, e.last_lba))
}

const MAGIC: &[u8; 8] = b"PARTCTL1";

/// Old contents of every sector a plan writes, to undo it with [`restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// Card size in bytes when saved.
    pub disk_bytes: u64,
    /// `(lba, old 512 bytes)`, each LBA once.
    pub sectors: Vec<(u64, Vec<u8>)>,
}

impl Backup {
    /// Read the old contents of the sectors `plan` writes.
    pub fn save<R: Read + Seek>(r: &mut R, plan: &Plan) -> io::Result<Backup> {
        let mut sectors: Vec<(u64, Vec<u8>)> = Vec::new();
        for w in &plan.writes {
            if !sectors.iter().any(|(l, _)| *l == w.lba) {
                sectors.push((w.lba, read_sectors(r, w.lba, 1)?));
            }
        }
        Ok(Backup {
            disk_bytes: plan.disk_sectors * SECTOR,
            sectors,
        })
    }

    /// Serialise: magic, disk size, count, `(lba, sector)`..., CRC32 of all before it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&self.disk_bytes.to_le_bytes());
        v.extend_from_slice(&(self.sectors.len() as u32).to_le_bytes());
        for (l, d) in &self.sectors {
            v.extend_from_slice(&l.to_le_bytes());
            v.extend_from_slice(d);
        }
        let crc = crc32fast::hash(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    }

    /// Parse and verify.
    pub fn from_bytes(b: &[u8]) -> Result<Backup, String> {
        if b.len() < 24 || &b[..8] != MAGIC {
            return Err("not a partctl backup file (bad magic)".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("backup file is corrupt (CRC mismatch)".into());
        }
        let disk_bytes = u64::from_le_bytes(body[8..16].try_into().expect("8"));
        let count = u32::from_le_bytes(body[16..20].try_into().expect("4")) as u64;
        if count > MAX_BACKUP_SECTORS {
            return Err(format!(
                "backup file claims {count} sectors (a repair saves at most {MAX_BACKUP_SECTORS})"
            ));
        }
        if body.len() as u64 != 20 + count * (8 + 512) {
            return Err("backup file has the wrong length".into());
        }
        if disk_bytes < 3 * SECTOR
            || disk_bytes % SECTOR != 0
            || disk_bytes > crate::files::MAX_CARD_BYTES
        {
            return Err(format!(
                "backup file records a card of {disk_bytes} bytes, which is not a card size"
            ));
        }
        let sectors: Vec<(u64, Vec<u8>)> = body[20..]
            .chunks(520)
            .map(|c| {
                (
                    u64::from_le_bytes(c[..8].try_into().expect("8")),
                    c[8..].to_vec(),
                )
            })
            .collect();
        if let Some((lba, _)) = sectors.iter().find(|(l, _)| *l >= disk_bytes / SECTOR) {
            return Err(format!(
                "backup file holds LBA {lba}, past the end of its {disk_bytes}-byte card"
            ));
        }
        Ok(Backup {
            disk_bytes,
            sectors,
        })
    }
}

/// The most sectors a backup file may hold: more than any plan writes (two arrays of the
/// largest accepted size, their headers, the MBR and a stale copy to clear).
pub const MAX_BACKUP_SECTORS: u64 = 8192;

/// The largest backup file [`Backup::from_bytes`] can accept.
pub const MAX_BACKUP_FILE_BYTES: u64 = 24 + MAX_BACKUP_SECTORS * 520;

/// Write sectors in order, calling `sync` after each (fsync on a real device).
pub fn write_sectors<W: Write + Seek>(
    w: &mut W,
    writes: &[SectorWrite],
    mut sync: impl FnMut(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    for s in writes {
        let off = s
            .lba
            .checked_mul(SECTOR)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "LBA overflow"))?;
        w.seek(SeekFrom::Start(off))?;
        w.write_all(&s.data)?;
        sync(w)?;
    }
    Ok(())
}

/// Apply a plan: the caller must have saved a [`Backup`] first.
pub fn apply<W: Write + Seek>(
    w: &mut W,
    plan: &Plan,
    sync: impl FnMut(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    write_sectors(w, &plan.writes, sync)
}

/// Put back the sectors saved in `b` (in reverse order of the original writes).
pub fn restore<W: Write + Seek>(
    w: &mut W,
    b: &Backup,
    sync: impl FnMut(&mut W) -> io::Result<()>,
) -> io::Result<()> {
    let writes: Vec<SectorWrite> = b
        .sectors
        .iter()
        .rev()
        .map(|(l, d)| SectorWrite {
            lba: *l,
            data: d.clone(),
            what: "restore".into(),
        })
        .collect();
    write_sectors(w, &writes, sync)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// The small board layout on a card `extra` sectors larger than its image size, tables
    /// written as `create` writes them (backup at the end).
    fn card(extra: u64) -> (Layout, Cursor<Vec<u8>>) {
        let l = Layout::from_toml(include_str!("../layouts/zbot-duos-small.toml")).unwrap();
        let n = l.image_sectors() + extra;
        let mut v = vec![0u8; (n * SECTOR) as usize];
        for (lba, s) in Tables::from_layout(&l, n).sectors() {
            v[(lba * SECTOR) as usize..((lba + 1) * SECTOR) as usize].copy_from_slice(&s);
        }
        (l, Cursor::new(v))
    }

    fn snap(c: &mut Cursor<Vec<u8>>) -> Snapshot {
        Snapshot::from_reader(c).unwrap()
    }

    #[test]
    fn grow_ends_on_the_last_aligned_lba_before_the_backup() {
        let (l, mut c) = card(16 << 11);
        let s = snap(&mut c);
        let placed = l.place();
        let staging = placed.last().unwrap();
        let (p, num, start, sectors) = plan_grow(&mut c, &s, "staging", 2048).unwrap();
        assert_eq!((num, start), (6, staging.first));
        // 16 MiB more card, the old end was 1 MiB aligned: exactly 16 MiB more partition.
        assert_eq!(sectors, staging.last + 1 - staging.first + (16 << 11));
        assert_eq!((start + sectors) % 2048, 0);
        assert!(
            start + sectors - 1 <= s.last_lba() - 1 - 32,
            "below the backup array"
        );
        assert!(!p.is_empty());
    }

    /// A second grow is a no-op: Ok, no writes, the current size, a note saying why. (It used
    /// to be a refusal, exit 1, so `partctl grow staging --yes && resize2fs` stopped before
    /// resize2fs when rerun after a power cut between the two.)
    #[test]
    fn second_grow_plans_nothing_and_reports_the_current_size() {
        let (_, mut c) = card(16 << 11);
        let s = snap(&mut c);
        let (p, _, start, sectors) = plan_grow(&mut c, &s, "staging", 2048).unwrap();
        apply(&mut c, &p, |_| Ok(())).unwrap();
        let grown = c.get_ref().clone();
        let s = snap(&mut c);
        assert!(crate::check::check(&s, None).is_sound());
        let (p2, num, start2, sectors2) = plan_grow(&mut c, &s, "staging", 2048).unwrap();
        assert!(p2.is_empty(), "{}", p2.describe());
        assert_eq!((num, start2, sectors2), (6, start, sectors));
        assert!(
            p2.describe().contains("nothing to grow") && p2.describe().contains("nothing to write"),
            "{}",
            p2.describe()
        );
        assert!(*c.get_ref() == grown);
    }

    #[test]
    fn grow_without_room_is_a_no_op_and_other_refusals_stay() {
        let (l, mut c) = card(0);
        let s = snap(&mut c);
        let placed = l.place();
        let staging = placed.last().unwrap();
        let (p, _, _, sectors) = plan_grow(&mut c, &s, "staging", 2048).unwrap();
        assert!(p.is_empty(), "{}", p.describe());
        assert_eq!(sectors, staging.last + 1 - staging.first);
        assert!(matches!(
            plan_grow(&mut c, &s, "data", 2048),
            Err(Refusal::Grow(m)) if m.contains("only the last partition can grow")
        ));
        assert!(matches!(
            plan_grow(&mut c, &s, "nope", 2048),
            Err(Refusal::Grow(m)) if m.contains("no partition named")
        ));
    }

    /// The migration's resize: p2 (env, 256K) grows in place to the end of its 1 MiB slot,
    /// the table checks clean with the redundant layout, a rerun writes nothing, and growing
    /// into p3 is refused.
    #[test]
    fn resize_grows_the_env_partition_in_its_slot_and_reruns_as_a_no_op() {
        let (l, mut c) = card(0);
        let s = snap(&mut c);
        let p2 = &l.place()[1];
        let new_last = p2.first + 2048 - 1;
        let (p, num, old_last) = plan_resize(&mut c, &s, "env", new_last).unwrap();
        assert_eq!((num, old_last), (2, p2.last));
        assert!(!p.is_empty());
        apply(&mut c, &p, |_| Ok(())).unwrap();
        let s = snap(&mut c);
        let e = copy_entries(&s.primary);
        assert_eq!(e[1].1.last_lba, new_last);
        assert_eq!(copy_entries(&s.backup)[1].1.last_lba, new_last);
        let big = Layout::from_toml(
            &include_str!("../layouts/zbot-duos-small.toml")
                .replace("size = \"256K\"", "size = \"1M\""),
        )
        .unwrap();
        assert!(crate::check::check(&s, Some(&big)).is_sound());
        let (again, _, _) = plan_resize(&mut c, &s, "env", new_last).unwrap();
        assert!(again.is_empty(), "{}", again.describe());
        assert!(plan_resize(&mut c, &s, "env", new_last + 1).is_err());
        assert!(plan_resize(&mut c, &s, "nope", new_last).is_err());
    }

    /// Regression: a resize cut right after the primary header was pointed at the (already
    /// new) backup array reads as resized, but its primary array is still the old one; the
    /// rerun's plan must write it (it planned nothing before, leaving the header on the backup
    /// array for good).
    #[test]
    fn resize_cut_on_the_temporary_primary_header_is_finished_by_a_rerun() {
        let (l, mut c) = card(0);
        let s = snap(&mut c);
        let new_last = l.place()[1].first + 2048 - 1;
        let (p, _, _) = plan_resize(&mut c, &s, "env", new_last).unwrap();
        let k = p
            .writes
            .iter()
            .position(|w| w.what.contains("temporarily"))
            .expect("the plan points the primary header at the backup array first");
        write_sectors(&mut c, &p.writes[..=k], |_| Ok(())).unwrap();
        let s = snap(&mut c);
        let (again, _, _) = plan_resize(&mut c, &s, "env", new_last).unwrap();
        assert!(!again.is_empty());
        apply(&mut c, &again, |_| Ok(())).unwrap();
        let mut full = card(0).1;
        let s0 = snap(&mut full);
        let (p0, _, _) = plan_resize(&mut full, &s0, "env", new_last).unwrap();
        apply(&mut full, &p0, |_| Ok(())).unwrap();
        assert!(c.get_ref() == full.get_ref(), "not the same end state");
    }
}
