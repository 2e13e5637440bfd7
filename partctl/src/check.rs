//! The checker: a snapshot (and optionally the layout) in, a list of typed problems out, each
//! saying what is wrong, where, and how to fix it, plus what Linux will see.

use crate::disk::{CopyAt, Snapshot};
use crate::gpt::{parse_entries, GptEntry, GptHeader, RawHeader, ENTRY_SIZE, HEADER_SIZE};
use crate::kernel::{self, KernelView};
use crate::layout::Layout;
use crate::mbr::{self, Mirror, PROTECTIVE};
use serde::Serialize;

/// Which GPT copy a problem is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    /// The primary (LBA 1).
    Primary,
    /// The backup (last LBA, or where the primary says it is).
    Backup,
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Which::Primary => "primary",
            Which::Backup => "backup",
        })
    }
}

/// Error (exit 1) or warning (reported, exit 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Something a tool, the boot ROM, U-Boot or Linux will trip over.
    Error,
    /// Legal but unusual (alignment, protective entry size).
    Warning,
}

macro_rules! kinds {
    ($($k:ident),* $(,)?) => {
        /// The kind of problem: a stable code (`--json` prints it in kebab-case).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
        #[serde(rename_all = "kebab-case")]
        #[allow(missing_docs)]
        pub enum Kind {
            $($k),*
        }

        impl Kind {
            /// Every kind, in declaration order (the exit-code test iterates over it).
            pub const ALL: &'static [Kind] = &[$(Kind::$k),*];
        }
    };
}

kinds!(
    MbrNoSignature,
    MbrNoProtective,
    MbrProtectiveCount,
    MbrProtectiveNotAtLba1,
    MbrProtectiveBootable,
    MbrProtectiveSize,
    MbrBadBootIndicator,
    MbrBootFlagMisplaced,
    MbrHybridMissing,
    MbrHybridSlot,
    MbrHybridType,
    MbrHybridMismatch,
    HeaderMissing,
    HeaderSize,
    HeaderCrc,
    HeaderRevision,
    MyLba,
    AlternateLba,
    UsableRange,
    EntrySize,
    EntryCount,
    EntriesLba,
    ArrayUnreadable,
    ArrayCrc,
    NoGpt,
    CopiesDiffer,
    BackupNotAtEnd,
    CardSmaller,
    StartAfterEnd,
    Overlap,
    OutsideUsable,
    InTableArea,
    Misaligned,
    BeyondMmcMinors,
    CardSmallerThanLayout,
    LayoutMismatch,
);

impl Kind {
    /// The one severity of each kind. The rule: a finding whose fix is `partctl repair` (or any
    /// write) is an error, so `check` exits 1 for it; a warning is only for what needs no
    /// action or cannot be fixed without moving data (its fix never says `partctl repair`).
    pub fn severity(self) -> Severity {
        use Kind::*;
        match self {
            // Legal and harmless: the boot ROM, U-Boot and Linux accept them, and no rewrite of
            // the tables changes them (alignment and entry numbers are the partitions' own).
            Misaligned | BeyondMmcMinors => Severity::Warning,
            // Legal for a hybrid MBR (gdisk lets the user choose its size): nothing to do.
            MbrProtectiveSize => Severity::Warning,
            // Everything else is something a reader trips over and `repair` (or re-creating
            // the card) fixes; `header-revision`: sgdisk and gdisk treat a header whose
            // revision is not 1.0 as invalid.
            MbrNoSignature
            | MbrNoProtective
            | MbrProtectiveCount
            | MbrProtectiveNotAtLba1
            | MbrProtectiveBootable
            | MbrBadBootIndicator
            | MbrBootFlagMisplaced
            | MbrHybridMissing
            | MbrHybridSlot
            | MbrHybridType
            | MbrHybridMismatch
            | HeaderMissing
            | HeaderSize
            | HeaderCrc
            | HeaderRevision
            | MyLba
            | AlternateLba
            | UsableRange
            | EntrySize
            | EntryCount
            | EntriesLba
            | ArrayUnreadable
            | ArrayCrc
            | NoGpt
            | CopiesDiffer
            | BackupNotAtEnd
            | CardSmaller
            | StartAfterEnd
            | Overlap
            | OutsideUsable
            | InTableArea
            | CardSmallerThanLayout
            | LayoutMismatch => Severity::Error,
        }
    }
}

/// `check`'s exit code for a list of findings: 1 if any is an error, else 0.
pub fn exit_code_for(problems: &[Problem]) -> u8 {
    u8::from(problems.iter().any(|p| p.severity == Severity::Error))
}

/// Whether a fix text tells the user to write the tables (which a warning must never do).
pub fn fix_recommends_repair(fix: &str) -> bool {
    fix.contains("partctl repair")
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable code.
    pub kind: Kind,
    /// GPT copy concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<Which>,
    /// Error or warning.
    pub severity: Severity,
    /// Sector concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lba: Option<u64>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}[{}]",
            serde_json::to_value(self.kind)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        )?;
        if let Some(l) = self.lba {
            write!(f, " at LBA {l}")?;
        }
        write!(f, ": {}. Fix: {}", self.message, self.fix)
    }
}

/// The checker's output.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Card size in sectors.
    pub disk_sectors: u64,
    /// The GPT copy the partitions below come from (`None`: no usable GPT).
    pub source: Option<Which>,
    /// Partitions of that copy.
    pub partitions: Vec<(u32, GptEntry)>,
    /// Problems found.
    pub problems: Vec<Problem>,
    /// What Linux sees with a normal command line.
    pub linux: KernelView,
    /// What Linux sees with `gpt` on its command line.
    pub linux_with_gpt_option: KernelView,
}

impl Report {
    /// True when no error was found.
    pub fn is_sound(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }
    /// True when a problem of this kind was found.
    pub fn has(&self, kind: Kind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }
    /// 0 sound, 1 problems.
    pub fn exit_code(&self) -> u8 {
        exit_code_for(&self.problems)
    }
}

const REPAIR: &str = "run `partctl repair`";

/// A finding of `kind`, with the kind's severity ([`Kind::severity`]).
fn finding(
    kind: Kind,
    copy: Option<Which>,
    lba: Option<u64>,
    message: String,
    fix: &str,
) -> Problem {
    let severity = kind.severity();
    debug_assert!(
        severity == Severity::Error || !fix_recommends_repair(fix),
        "warning {kind:?} recommends a repair: {fix}"
    );
    Problem {
        kind,
        copy,
        severity,
        lba,
        message,
        fix: fix.to_string(),
    }
}
use finding as err;
use finding as warn;

/// Strict validity of one copy (what a repair may copy from): everything the kernel checks
/// plus header size exactly 92, entry count >= 128, and the array CRC.
pub fn copy_is_sound(c: &CopyAt, lba: u64, last: u64) -> bool {
    let Some(rh) = &c.raw else { return false };
    let h = &rh.header;
    h.header_size == HEADER_SIZE
        && rh.crc_ok()
        && h.my_lba == lba
        && h.entry_size == ENTRY_SIZE
        && h.num_entries >= 128
        && h.first_usable <= h.last_usable
        && h.last_usable <= last
        && c.array_crc_ok()
}

/// The copy a repair would start from: the primary when sound, else the backup at the end,
/// else the backup where the primary says it is.
pub fn best_source(s: &Snapshot) -> Option<(&CopyAt, Which)> {
    let last = s.last_lba();
    if copy_is_sound(&s.primary, 1, last) {
        return Some((&s.primary, Which::Primary));
    }
    if copy_is_sound(&s.backup, last, last) {
        return Some((&s.backup, Which::Backup));
    }
    s.alternate
        .as_ref()
        .filter(|c| copy_is_sound(c, c.lba, last))
        .map(|c| (c, Which::Backup))
}

/// Entries of a sound copy.
pub fn copy_entries(c: &CopyAt) -> Vec<(u32, GptEntry)> {
    match (&c.raw, &c.array) {
        (Some(r), Ok(a)) => parse_entries(a, r.header.entry_size),
        _ => Vec::new(),
    }
}

fn check_copy(c: &CopyAt, which: Which, s: &Snapshot, out: &mut Vec<Problem>) {
    let last = s.last_lba();
    let at = Some(c.lba);
    let w = Some(which);
    let fix_from_other = match which {
        Which::Primary => "run `partctl repair` (rewrites the primary from the backup)",
        Which::Backup => "run `partctl repair` (rewrites the backup from the primary)",
    };
    let Some(rh) = &c.raw else {
        let what = if c.sector.iter().all(|&b| b == 0) {
            "zeroed"
        } else {
            "missing (no \"EFI PART\" signature)"
        };
        out.push(err(
            Kind::HeaderMissing,
            w,
            at,
            format!("{which} GPT header is {what}"),
            fix_from_other,
        ));
        return;
    };
    check_header(c, rh, which, s, fix_from_other, out);
    check_geometry(c, &rh.header, which, last, fix_from_other, out);
    check_array(c, &rh.header, which, fix_from_other, out);
}

/// The header's own fields: size, CRC, revision, where it says it is and where its other copy is.
fn check_header(
    c: &CopyAt,
    rh: &RawHeader,
    which: Which,
    s: &Snapshot,
    fix_from_other: &'static str,
    out: &mut Vec<Problem>,
) {
    let (last, at, w, h) = (s.last_lba(), Some(c.lba), Some(which), &rh.header);
    if h.header_size != HEADER_SIZE {
        out.push(err(
            Kind::HeaderSize,
            w,
            at,
            format!(
                "{which} GPT header size is {} (must be 92{})",
                h.header_size,
                if h.header_size > 512 {
                    "; Linux rejects a header larger than a sector"
                } else {
                    ""
                }
            ),
            fix_from_other,
        ));
    }
    if rh.computed_crc.is_some() && !rh.crc_ok() {
        out.push(err(
            Kind::HeaderCrc,
            w,
            at,
            format!(
                "{which} GPT header CRC is {:#010x}, computed {:#010x}",
                h.header_crc,
                rh.computed_crc.unwrap_or(0)
            ),
            fix_from_other,
        ));
    }
    if h.revision != crate::gpt::REVISION {
        out.push(warn(
            Kind::HeaderRevision,
            w,
            at,
            format!(
                "{which} GPT header revision {:#010x} (expected 1.0)",
                h.revision
            ),
            REPAIR,
        ));
    }
    if h.my_lba != c.lba {
        out.push(err(
            Kind::MyLba,
            w,
            at,
            format!(
                "{which} GPT header says MyLBA = {} but sits at LBA {}",
                h.my_lba, c.lba
            ),
            fix_from_other,
        ));
    }
    let expected_alt = if which == Which::Primary { last } else { 1 };
    if h.alternate_lba != expected_alt
        && !(which == Which::Primary && h.alternate_lba > last)
        && !(which == Which::Primary
            && s.alternate
                .as_ref()
                .is_some_and(|a| a.lba == h.alternate_lba && copy_is_sound(a, a.lba, last)))
    {
        out.push(err(
            Kind::AlternateLba,
            w,
            at,
            format!(
                "{which} GPT header says AlternateLBA = {} (expected {expected_alt})",
                h.alternate_lba
            ),
            REPAIR,
        ));
    }
}

/// The entry array's shape and place, and the usable range, against each other and the card.
fn check_geometry(
    c: &CopyAt,
    h: &GptHeader,
    which: Which,
    last: u64,
    fix_from_other: &'static str,
    out: &mut Vec<Problem>,
) {
    let (at, w) = (Some(c.lba), Some(which));
    if h.entry_size != ENTRY_SIZE {
        out.push(err(
            Kind::EntrySize,
            w,
            at,
            format!(
                "{which} GPT entry size is {} (must be 128; Linux rejects anything else)",
                h.entry_size
            ),
            fix_from_other,
        ));
    }
    if h.num_entries < 128 {
        out.push(err(Kind::EntryCount, w, at, format!("{which} GPT declares {} entries (the UEFI spec requires room for at least 128, i.e. 16 KiB)", h.num_entries), fix_from_other));
    }
    if h.first_usable > h.last_usable || h.last_usable > last || h.first_usable > last {
        let card = if h.last_usable > last {
            format!(" but the card ends at LBA {last}: the card is smaller than the image")
        } else {
            String::new()
        };
        out.push(err(
            Kind::UsableRange,
            w,
            at,
            format!(
                "{which} GPT usable range is {}..{}{card}",
                h.first_usable, h.last_usable
            ),
            if card.is_empty() {
                REPAIR
            } else {
                "write the image to a card at least as large as the image"
            },
        ));
    } else if h.entry_size == ENTRY_SIZE {
        let asecs = h.array_sectors();
        let ok = match which {
            Which::Primary => {
                h.entries_lba >= 2 && h.entries_lba.saturating_add(asecs) <= h.first_usable
            }
            Which::Backup => {
                h.entries_lba > h.last_usable && h.entries_lba.saturating_add(asecs) <= c.lba
            }
        };
        if !ok {
            out.push(err(Kind::EntriesLba, w, at, format!("{which} GPT entry array at LBA {} ({asecs} sectors) overlaps the header or the usable range {}..{}", h.entries_lba, h.first_usable, h.last_usable), REPAIR));
        }
    }
}

/// The entry array is readable and matches its CRC.
fn check_array(
    c: &CopyAt,
    h: &GptHeader,
    which: Which,
    fix_from_other: &'static str,
    out: &mut Vec<Problem>,
) {
    let w = Some(which);
    match &c.array {
        Err(e) => out.push(err(
            Kind::ArrayUnreadable,
            w,
            Some(h.entries_lba),
            format!("{which} GPT entry array: {e}"),
            fix_from_other,
        )),
        Ok(a) => {
            if !c.array_crc_ok() {
                let what = if a.iter().all(|&b| b == 0) {
                    " (the array is zeroed)"
                } else {
                    ""
                };
                out.push(err(
                    Kind::ArrayCrc,
                    w,
                    Some(h.entries_lba),
                    format!(
                        "{which} GPT entry array CRC is {:#010x}, computed {:#010x}{what}",
                        h.entries_crc,
                        crc32fast::hash(a)
                    ),
                    fix_from_other,
                ));
            }
        }
    }
}

/// Check a card. `layout` adds the per-partition comparison and the hybrid MBR's expected shape.
pub fn check(s: &Snapshot, layout: Option<&Layout>) -> Report {
    let mut p = Vec::new();
    check_copies(s, &mut p);
    let source = best_source(s);
    if source.is_none() {
        p.push(err(
            Kind::NoGpt,
            None,
            None,
            "no usable GPT: both copies are damaged".into(),
            "run `partctl repair --layout FILE` to rebuild the tables from the layout",
        ));
    }
    check_copies_agree(s, &mut p);
    let entries = source.map(|(c, _)| copy_entries(c)).unwrap_or_default();
    if let Some((c, _)) = source {
        let h = &c.raw.as_ref().expect("sound").header;
        let align = layout.map(|l| l.align_sectors()).unwrap_or(2048);
        check_entries(h, &entries, align, s.last_lba(), &mut p);
        check_overlaps(&entries, &mut p);
    }
    check_mbr(s, layout, &entries, &mut p);
    if let Some(l) = layout {
        check_layout(s, l, source.map(|(c, _)| c), &entries, &mut p);
    }

    Report {
        disk_sectors: s.disk_sectors,
        source: source.map(|(_, w)| w),
        partitions: entries,
        problems: p,
        linux: kernel::view(s, false),
        linux_with_gpt_option: kernel::view(s, true),
    }
}

/// Each GPT copy where it belongs: the primary at LBA 1, the backup at the card's end (or
/// found mid-card when the image was written to a larger card), neither past a smaller card.
fn check_copies(s: &Snapshot, p: &mut Vec<Problem>) {
    let last = s.last_lba();
    check_copy(&s.primary, Which::Primary, s, p);
    let alt_of_primary = s.primary.raw.as_ref().map(|r| r.header.alternate_lba);
    let moved = s
        .alternate
        .as_ref()
        .filter(|a| copy_is_sound(a, a.lba, last));
    match moved {
        Some(a) if s.backup.raw.is_none() => {
            p.push(err(Kind::BackupNotAtEnd, Some(Which::Backup), Some(a.lba), format!("backup GPT is at LBA {} but the card ends at LBA {last}: the image was written to a larger card", a.lba), "run `partctl repair` (moves the backup to the end and clears the old one), then `partctl grow` to use the space"));
        }
        _ => check_copy(&s.backup, Which::Backup, s, p),
    }
    if let Some(alt) = alt_of_primary.filter(|&a| a > last) {
        p.push(err(Kind::CardSmaller, None, Some(alt), format!("the primary GPT puts its backup at LBA {alt} but the card ends at LBA {last}: the card is smaller than the image"), "write the image to a card at least as large as the image; partitions past the end cannot be recovered by partctl"));
    }
}

/// Both sound copies say the same: header fields, every entry, and the unused entry bytes.
fn check_copies_agree(s: &Snapshot, p: &mut Vec<Problem>) {
    let last = s.last_lba();
    let backup_sound = [Some(&s.backup), s.alternate.as_ref()]
        .into_iter()
        .flatten()
        .find(|c| copy_is_sound(c, c.lba, last));
    if let (true, Some(b)) = (copy_is_sound(&s.primary, 1, last), backup_sound) {
        let (ph, bh) = (
            &s.primary.raw.as_ref().expect("sound").header,
            &b.raw.as_ref().expect("sound").header,
        );
        let mut diffs = Vec::new();
        if ph.disk_guid != bh.disk_guid {
            diffs.push("disk GUID".to_string());
        }
        if ph.first_usable != bh.first_usable || ph.last_usable != bh.last_usable {
            diffs.push("usable range".to_string());
        }
        if ph.num_entries != bh.num_entries {
            diffs.push("entry count".to_string());
        }
        let (pe, be) = (copy_entries(&s.primary), copy_entries(b));
        for n in pe
            .iter()
            .map(|e| e.0)
            .chain(be.iter().map(|e| e.0))
            .collect::<std::collections::BTreeSet<_>>()
        {
            if pe.iter().find(|e| e.0 == n) != be.iter().find(|e| e.0 == n) {
                diffs.push(format!("partition {n}"));
            }
        }
        if diffs.is_empty() && s.primary.array != b.array {
            diffs.push("unused entry bytes".into());
        }
        if !diffs.is_empty() {
            p.push(err(Kind::CopiesDiffer, None, Some(b.lba), format!("primary and backup GPT differ in: {}", diffs.join(", ")), "run `partctl repair` (the primary, which Linux uses, wins; with --layout the copy matching the layout wins)"));
        }
    }
}

/// Each entry inside the card, off the table area, inside the usable range, aligned, and
/// within the partitions an SD card's block device registers.
fn check_entries(
    h: &GptHeader,
    entries: &[(u32, GptEntry)],
    align: u64,
    last: u64,
    p: &mut Vec<Problem>,
) {
    let asecs = h.array_sectors();
    for (n, e) in entries {
        let at = Some(e.first_lba);
        if e.first_lba > e.last_lba {
            p.push(err(
                Kind::StartAfterEnd,
                None,
                at,
                format!(
                    "partition {n} ({}) starts at LBA {} after its end at LBA {}",
                    e.name, e.first_lba, e.last_lba
                ),
                "run `partctl repair --layout FILE` (rebuilds the entries from the layout)",
            ));
            continue;
        }
        if e.last_lba > last {
            p.push(err(
                Kind::CardSmaller,
                None,
                Some(e.last_lba),
                format!(
                    "partition {n} ({}) ends at LBA {} past the card's end at LBA {last}",
                    e.name, e.last_lba
                ),
                "write the image to a card at least as large as the image",
            ));
        } else if e.first_lba < 2 + asecs || e.last_lba >= last.saturating_sub(asecs) {
            p.push(err(
                Kind::InTableArea,
                None,
                at,
                format!(
                    "partition {n} ({}) at LBA {}..{} overlaps the GPT table area",
                    e.name, e.first_lba, e.last_lba
                ),
                "run `partctl repair --layout FILE`",
            ));
        } else if e.first_lba < h.first_usable || e.last_lba > h.last_usable {
            p.push(err(
                Kind::OutsideUsable,
                None,
                at,
                format!(
                    "partition {n} ({}) at LBA {}..{} is outside the usable range {}..{}",
                    e.name, e.first_lba, e.last_lba, h.first_usable, h.last_usable
                ),
                "run `partctl repair --layout FILE`",
            ));
        }
        if e.first_lba % align != 0 {
            p.push(warn(Kind::Misaligned, None, at, format!("partition {n} ({}) starts at LBA {}, not a multiple of {align} sectors", e.name, e.first_lba), "recreate the card with `partctl create` (alignment cannot be changed without moving data)"));
        }
    }
    for (n, e) in entries.iter().filter(|(n, _)| *n > 7) {
        p.push(warn(Kind::BeyondMmcMinors, None, Some(e.first_lba), format!("partition {n} ({}) is GPT entry {n}: on an SD card Linux registers only mmcblk0p1..p7 (CONFIG_MMC_BLOCK_MINORS=8 by default)", e.name), "use entries 1..7, or raise CONFIG_MMC_BLOCK_MINORS in the kernel"));
    }
}

/// No two entries share a sector.
fn check_overlaps(entries: &[(u32, GptEntry)], p: &mut Vec<Problem>) {
    for (i, (n, a)) in entries.iter().enumerate() {
        for (m, b) in &entries[i + 1..] {
            if a.first_lba <= a.last_lba
                && b.first_lba <= b.last_lba
                && a.first_lba <= b.last_lba
                && b.first_lba <= a.last_lba
            {
                p.push(err(
                    Kind::Overlap,
                    None,
                    Some(a.first_lba.max(b.first_lba)),
                    format!(
                        "partitions {n} ({}) {}..{} and {m} ({}) {}..{} overlap",
                        a.name, a.first_lba, a.last_lba, b.name, b.first_lba, b.last_lba
                    ),
                    "run `partctl repair --layout FILE` (rebuilds the entries from the layout)",
                ));
            }
        }
    }
}

/// The MBR mirrors expected: from the layout, else from the GPT's ESP/legacy-bootable partition.
pub fn expected_mirrors(layout: Option<&Layout>, entries: &[(u32, GptEntry)]) -> Vec<Mirror> {
    match layout {
        Some(l) => l
            .partitions
            .iter()
            .zip(l.place())
            .filter_map(|(spec, placed)| {
                let m = spec.mbr.as_ref()?;
                // Mirror what the GPT says when it has the partition (a grown partition keeps
                // its MBR entry in sync), else the layout's position.
                let (first, last) = entries
                    .iter()
                    .find(|(n, _)| *n == placed.number)
                    .map(|(_, e)| (e.first_lba, e.last_lba))
                    .unwrap_or((placed.first, placed.last));
                Some(Mirror {
                    mbr_index: m.mbr_index,
                    kind: m.kind,
                    bootable: m.bootable,
                    first,
                    last,
                })
            })
            .collect(),
        None => mbr::mirror_from_gpt(entries).into_iter().collect(),
    }
}

fn check_mbr(
    s: &Snapshot,
    layout: Option<&Layout>,
    entries: &[(u32, GptEntry)],
    p: &mut Vec<Problem>,
) {
    let m = &s.mbr;
    let at0 = Some(0);
    if !m.signature_ok {
        p.push(err(Kind::MbrNoSignature, None, at0, "MBR has no 55AA signature: the boot ROM cannot find the boot partition and Linux ignores the GPT".into(), "run `partctl repair` (rebuilds the hybrid MBR)"));
        return;
    }
    let ee = check_protective(m, p);
    for (i, e) in m.entries.iter().enumerate() {
        if e.boot != 0 && e.boot != 0x80 {
            p.push(err(Kind::MbrBadBootIndicator, None, at0, format!("MBR entry {} has boot indicator {:#04x} (0x00 or 0x80 expected): Linux ignores the whole MBR", i + 1, e.boot), "run `partctl repair`"));
        }
    }
    let mirrors = expected_mirrors(layout, entries);
    for (i, e) in m.entries.iter().enumerate() {
        if e.boot == 0x80
            && e.kind != PROTECTIVE
            && !mirrors.iter().any(|mi| {
                mi.bootable && mi.mbr_index as usize == i + 1 && mi.first == e.start as u64
            })
        {
            p.push(err(Kind::MbrBootFlagMisplaced, None, at0, format!("MBR entry {} (type {:#04x}) carries the boot flag; only the FAT boot partition should", i + 1, e.kind), "run `partctl repair`"));
        }
    }
    let before_mirrors = p.len();
    for mi in &mirrors {
        check_mirror(m, mi, p);
    }
    // The size of the 0xEE entry only matters once the mirrors are right.
    if ee.len() == 1 && ee[0].1.start == 1 && p.len() == before_mirrors {
        let want = match mirrors.iter().map(|mi| mi.first).min() {
            Some(f) => f.saturating_sub(1),
            None => s.last_lba().min(u32::MAX as u64),
        };
        if ee[0].1.size as u64 != want {
            p.push(warn(
                Kind::MbrProtectiveSize,
                None,
                at0,
                format!(
                    "MBR 0xEE entry covers {} sectors (partctl writes {want})",
                    ee[0].1.size
                ),
                "nothing needed: the boot ROM, U-Boot and Linux accept it (a repair made for another reason rewrites it)",
            ));
        }
    }
}

/// Exactly one 0xEE entry, at LBA 1, not active: what Linux needs to read the GPT. Returns the
/// 0xEE entries with their index.
fn check_protective<'a>(m: &'a mbr::Mbr, p: &mut Vec<Problem>) -> Vec<(usize, &'a mbr::MbrEntry)> {
    let at0 = Some(0);
    let ee: Vec<(usize, &mbr::MbrEntry)> = m
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == PROTECTIVE)
        .collect();
    match ee.len() {
        0 => p.push(err(
            Kind::MbrNoProtective,
            None,
            at0,
            "MBR has no 0xEE (GPT protective) entry: Linux will not read the GPT".into(),
            "run `partctl repair` (rebuilds the hybrid MBR)",
        )),
        1 => {}
        n => p.push(err(
            Kind::MbrProtectiveCount,
            None,
            at0,
            format!("MBR has {n} 0xEE entries (exactly one expected)"),
            "run `partctl repair`",
        )),
    }
    for (i, e) in &ee {
        if e.start != 1 {
            p.push(err(
                Kind::MbrProtectiveNotAtLba1,
                None,
                at0,
                format!(
                    "MBR entry {} (0xEE) starts at LBA {} instead of 1: Linux will not read the GPT",
                    i + 1,
                    e.start
                ),
                "run `partctl repair`",
            ));
        }
        if e.boot != 0 {
            p.push(err(
                Kind::MbrProtectiveBootable,
                None,
                at0,
                format!(
                    "MBR entry {} (0xEE) is marked active ({:#04x})",
                    i + 1,
                    e.boot
                ),
                "run `partctl repair`",
            ));
        }
    }
    ee
}

/// The MBR entry that mirrors a GPT partition for the boot ROM: what is wrong with it, if
/// anything (one finding, the most specific).
fn check_mirror(m: &mbr::Mbr, mi: &Mirror, p: &mut Vec<Problem>) {
    let at0 = Some(0);
    let want = mbr::MbrEntry {
        boot: if mi.bootable { 0x80 } else { 0 },
        kind: mi.kind,
        start: mi.first as u32,
        size: mi.last.saturating_add(1).saturating_sub(mi.first) as u32,
    };
    let entry = m.entries[(mi.mbr_index as usize).clamp(1, 4) - 1];
    if entry == want {
        return;
    }
    let elsewhere = m
        .entries
        .iter()
        .position(|e| e.kind != PROTECTIVE && e.kind != 0 && e.start as u64 == mi.first);
    if entry.kind == mi.kind && entry.start == want.start && entry.size != want.size
        || (entry.kind != PROTECTIVE && entry.kind != 0 && entry.start != want.start)
    {
        p.push(err(
            Kind::MbrHybridMismatch,
            None,
            at0,
            format!(
                "MBR entry {} describes LBA {}+{} but GPT partition at LBA {}..{} needs {}+{}",
                mi.mbr_index, entry.start, entry.size, mi.first, mi.last, want.start, want.size
            ),
            "run `partctl repair` (resyncs the hybrid MBR with the GPT)",
        ));
    } else if entry.start == want.start && entry.size == want.size && entry.kind != mi.kind {
        p.push(err(
            Kind::MbrHybridType,
            None,
            at0,
            format!(
                "MBR entry {} has type {:#04x}, the boot ROM needs {:#04x} (FAT32 LBA)",
                mi.mbr_index, entry.kind, mi.kind
            ),
            "run `partctl repair`",
        ));
    } else if entry == (mbr::MbrEntry { boot: 0, ..want }) {
        p.push(err(
            Kind::MbrBootFlagMisplaced,
            None,
            at0,
            format!("MBR entry {} is not marked bootable", mi.mbr_index),
            "run `partctl repair`",
        ));
    } else if let Some(j) = elsewhere {
        p.push(err(
            Kind::MbrHybridSlot,
            None,
            at0,
            format!(
                "the boot partition is in MBR entry {} instead of entry {} (entries swapped?)",
                j + 1,
                mi.mbr_index
            ),
            "run `partctl repair`",
        ));
    } else {
        p.push(err(Kind::MbrHybridMissing, None, at0, format!("MBR entry {} does not mirror GPT partition LBA {}..{} (a tool such as parted replaced the hybrid MBR by a protective one?): the boot ROM cannot find fip.bin", mi.mbr_index, mi.first, mi.last), "run `partctl repair` (rebuilds the hybrid MBR)"));
    }
}

fn check_layout(
    s: &Snapshot,
    l: &Layout,
    source: Option<&CopyAt>,
    entries: &[(u32, GptEntry)],
    p: &mut Vec<Problem>,
) {
    if s.disk_sectors < l.min_sectors() {
        p.push(err(
            Kind::CardSmallerThanLayout,
            None,
            Some(s.last_lba()),
            format!(
                "the card has {} sectors, the layout needs {}",
                s.disk_sectors,
                l.min_sectors()
            ),
            "use a larger card",
        ));
    }
    let Some(c) = source else { return };
    let h = &c.raw.as_ref().expect("sound").header;
    let mis = |m: String| {
        err(
            Kind::LayoutMismatch,
            None,
            None,
            m,
            "run `partctl repair --layout FILE` if the layout is right, or fix the layout",
        )
    };
    if h.disk_guid != l.disk.guid {
        p.push(mis(format!(
            "disk GUID is {}, the layout says {}",
            h.disk_guid, l.disk.guid
        )));
    }
    for (spec, placed) in l.partitions.iter().zip(l.place()) {
        let n = placed.number;
        let Some((_, e)) = entries.iter().find(|(m, _)| *m == n) else {
            p.push(mis(format!(
                "partition {n} ({}) from the layout is missing",
                spec.name
            )));
            continue;
        };
        let mut d = Vec::new();
        if e.first_lba != placed.first {
            d.push(format!(
                "starts at LBA {} (layout {})",
                e.first_lba, placed.first
            ));
        }
        if e.last_lba != placed.last && !(spec.growable && e.last_lba > placed.last) {
            d.push(format!(
                "ends at LBA {} (layout {})",
                e.last_lba, placed.last
            ));
        }
        if e.type_guid != spec.kind.0 {
            d.push(format!("type {} (layout {})", e.type_guid, spec.kind.0));
        }
        if e.uuid != spec.uuid {
            d.push(format!("GUID {} (layout {})", e.uuid, spec.uuid));
        }
        if e.name != spec.name {
            d.push(format!("name {:?} (layout {:?})", e.name, spec.name));
        }
        if e.attributes != Layout::attribute_bits(spec) {
            d.push(format!(
                "attributes {:#x} (layout {:#x})",
                e.attributes,
                Layout::attribute_bits(spec)
            ));
        }
        if !d.is_empty() {
            p.push(Problem {
                lba: Some(e.first_lba),
                ..mis(format!("partition {n} ({}) {}", spec.name, d.join(", ")))
            });
        }
    }
    for (n, e) in entries
        .iter()
        .filter(|(n, _)| *n as usize > l.partitions.len())
    {
        p.push(mis(format!(
            "partition {n} ({}) is not in the layout",
            e.name
        )));
    }
}

#[cfg(test)]
mod tests {
    /// Issue 10: every kind has one severity, and that severity alone decides the exit code:
    /// an error (everything whose fix is a repair) exits 1, a warning (nothing to repair)
    /// exits 0, and no warning may recommend `partctl repair`.
    #[test]
    fn every_kind_maps_to_one_exit_code() {
        use super::*;
        assert_eq!(Kind::ALL.len(), 36, "a kind was added: decide its severity");
        for &k in Kind::ALL {
            let sev = k.severity();
            let fix = match sev {
                Severity::Error => REPAIR,
                Severity::Warning => "nothing needed",
            };
            let p = finding(k, None, Some(1), "m".into(), fix);
            assert_eq!(p.severity, sev);
            let code = exit_code_for(std::slice::from_ref(&p));
            assert_eq!(code, u8::from(sev == Severity::Error), "{k:?}");
            // a warning beside an error does not hide the error, and vice versa
            let e = finding(Kind::NoGpt, None, None, "m".into(), REPAIR);
            assert_eq!(exit_code_for(&[p.clone(), e]), 1);
        }
        let warnings: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.severity() == Severity::Warning)
            .collect();
        assert_eq!(
            warnings,
            [
                Kind::MbrProtectiveSize,
                Kind::Misaligned,
                Kind::BeyondMmcMinors
            ]
        );
        assert_eq!(Kind::HeaderRevision.severity(), Severity::Error);
    }

    #[test]
    #[should_panic(expected = "recommends a repair")]
    fn a_warning_that_recommends_repair_cannot_be_built() {
        super::finding(Kind::Misaligned, None, None, "m".into(), super::REPAIR);
    }

    use super::*;
    use crate::gpt::GptImage;
    use crate::guid::{types, Guid};
    use crate::model::Tables;
    use std::io::Cursor;

    fn card_with(entries: &[(u32, GptEntry)]) -> Report {
        let n = 1 << 16;
        let g = GptImage::from_entries(Guid([3; 16]), 128, n, entries);
        let mirrors = expected_mirrors(None, &g.entries());
        let t = Tables::from_gpt(g, &mirrors, vec![0; 440], None, n);
        let mut v = vec![0u8; (n * 512) as usize];
        for (lba, s) in t.sectors() {
            v[(lba * 512) as usize..(lba * 512 + 512) as usize].copy_from_slice(&s);
        }
        check(&Snapshot::from_reader(&mut Cursor::new(v)).unwrap(), None)
    }

    fn part(first: u64, last: u64, t: Guid) -> GptEntry {
        GptEntry {
            type_guid: t,
            uuid: Guid([1; 16]),
            first_lba: first,
            last_lba: last,
            attributes: 0,
            name: "x".into(),
        }
    }

    #[test]
    fn partition_eight_is_invisible_on_mmc() {
        let r = card_with(&[
            (1, part(2048, 4095, types::ESP)),
            (8, part(4096, 8191, types::LINUX)),
        ]);
        assert!(r.has(Kind::BeyondMmcMinors), "{:?}", r.problems);
        assert!(r.is_sound(), "a warning only");
    }

    #[test]
    fn misaligned_is_a_warning_and_the_esp_is_mirrored_without_a_layout() {
        let r = card_with(&[(1, part(2049, 4095, types::ESP))]);
        assert_eq!(
            r.problems.iter().map(|p| p.kind).collect::<Vec<_>>(),
            [Kind::Misaligned]
        );
        assert!(r.is_sound());
    }
}
