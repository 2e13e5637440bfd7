//! The pure core of [`crate::Store`]: which copy is current, and what a write puts where.
//!
//! No I/O here. The store reads each copy's bytes ([`RawCopy`]), [`select`] turns them into a
//! [`Snapshot`], the caller decides its [`Changes`], [`plan_write`] turns them into a
//! [`WritePlan`] (byte ranges per copy, in write order), and the store carries that out.
//! Both functions are tested by a decision table over bytes (bottom of this file).

use std::path::PathBuf;

use crate::codec::{self, DecodeError, EncodeError, Layout};
use crate::defaults::Defaults;
use crate::flags;
use crate::redundant::{self, Choice, FlagScheme};
use crate::storage::WriteMode;
use crate::store::{CopyReport, CopyStatus, Error, Snapshot, Source, WriteReport};
use crate::vars::{Changes, Vars};

/// Everything besides the bytes that decides a read or a write: the flag scheme of a
/// redundant environment and what to fall back on when no copy is valid.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// How a redundant environment marks its current copy.
    pub scheme: FlagScheme,
    /// U-Boot's default environment, used when no copy is valid.
    pub defaults: Option<Defaults>,
    /// Variables the defaults must define for a write to start from them, besides `bootcmd`.
    pub required: Vec<String>,
    /// Who needs `required`, for messages.
    pub required_by: String,
}

impl Policy {
    /// Why a write starting from the defaults would be refused (`None`: no defaults, or usable).
    pub fn defaults_problem(&self) -> Option<String> {
        self.defaults
            .as_ref()
            .and_then(|d| d.unusable(&self.required, &self.required_by))
    }
}

/// What was found at a copy's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raw {
    /// The copy's bytes (exactly its size).
    Bytes(Vec<u8>),
    /// An environment file that does not exist.
    Missing,
    /// An environment file shorter than the copy: the part that is there.
    Short(Vec<u8>),
    /// The file ends at or before the copy's offset.
    PastEnd {
        /// Length of the file.
        file_len: u64,
    },
}

/// One copy as read: where it lives and what was there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCopy {
    /// The file or device (symbolic links resolved).
    pub device: PathBuf,
    /// Byte offset of the copy.
    pub offset: u64,
    /// Copy size.
    pub size: u64,
    /// How the medium is written.
    pub write_mode: WriteMode,
    /// What was found.
    pub found: Raw,
}

/// Which copy is current (U-Boot's rules), and the variables a reader sees: the current
/// copy's, else the defaults, else none.
pub fn select(layout: Layout, policy: &Policy, copies: &[RawCopy]) -> Snapshot {
    let mut reports = Vec::with_capacity(copies.len());
    let mut decoded = Vec::with_capacity(copies.len());
    for (index, copy) in copies.iter().enumerate() {
        let (status, d) = examine(&copy.found, layout);
        reports.push(CopyReport {
            index,
            device: copy.device.clone(),
            offset: copy.offset,
            size: copy.size,
            write_mode: copy.write_mode,
            status,
            active: false,
        });
        decoded.push(d);
    }
    let state = |i: usize| match reports.get(i).map(|r| &r.status) {
        Some(CopyStatus::Valid { flags, .. }) => Some(flags.unwrap_or(0)),
        _ => None,
    };
    let choice = match layout {
        Layout::Redundant => redundant::choose(policy.scheme, state(0), state(1)),
        Layout::Single if state(0).is_some() => Choice::First,
        Layout::Single => Choice::Neither,
    };
    if let Some(i) = choice.index() {
        reports[i].active = true;
        let d = decoded[i].take().expect("a valid copy was decoded");
        return Snapshot {
            vars: d.vars,
            source: Source::Copy(i),
            copies: reports,
            layout,
            entries: d.entries,
            defaults_origin: None,
            defaults_problem: None,
        };
    }
    let (vars, source) = match &policy.defaults {
        Some(d) => (d.vars.clone(), Source::Defaults),
        None => (Vars::new(), Source::Empty),
    };
    let entries = vars.iter().map(|(k, v)| [k, b"=", v].concat()).collect();
    Snapshot {
        vars,
        source,
        copies: reports,
        layout,
        entries,
        defaults_origin: policy.defaults.as_ref().map(Defaults::origin),
        defaults_problem: policy.defaults_problem(),
    }
}

fn examine(found: &Raw, layout: Layout) -> (CopyStatus, Option<codec::DecodedCopy>) {
    let bytes = match found {
        Raw::Missing => return (CopyStatus::Missing, None),
        Raw::PastEnd { file_len } => {
            return (
                CopyStatus::PastEnd {
                    file_len: *file_len,
                },
                None,
            )
        }
        Raw::Short(b) => return (CopyStatus::Short { len: b.len() }, None),
        Raw::Bytes(b) => b,
    };
    match codec::decode(bytes, layout) {
        Ok(d) => (
            CopyStatus::Valid {
                flags: d.flags,
                used: d.used,
                free: bytes.len() - layout.header_len() - d.used,
            },
            Some(d),
        ),
        Err(DecodeError::BadCrc { stored, computed }) => (
            CopyStatus::BadCrc {
                stored,
                computed,
                flags: codec::header(bytes, layout).and_then(|h| h.1),
            },
            None,
        ),
        Err(DecodeError::TooSmall { len }) => (CopyStatus::Short { len }, None),
    }
}

/// What a write does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePlan {
    /// The writes, in the order they must happen (each durable before the next): the new copy
    /// first; with the boolean scheme, the old copy's flags byte marked obsolete last (or in
    /// the same write when both copies are in one file that is replaced whole).
    pub steps: Vec<Step>,
    /// What the write will have done.
    pub report: WriteReport,
}

/// One durable write of byte ranges to one copy's medium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The copy whose medium is written.
    pub copy: usize,
    /// `(offset, bytes)` ranges of that medium.
    pub ranges: Vec<(u64, Vec<u8>)>,
}

/// Plan the write of `changes` over `snapshot`. Each change is checked against `.flags` as it
/// is applied; any refusal plans nothing. No steps when nothing would change: an empty change
/// set (even over an invalid environment: U-Boot does not save its defaults either), or changes
/// that leave a valid copy's variables as they are.
pub fn plan_write(
    snapshot: &Snapshot,
    changes: &Changes,
    policy: &Policy,
) -> Result<WritePlan, Error> {
    let unchanged = |vars: &Vars| WritePlan {
        steps: Vec::new(),
        report: WriteReport {
            written: false,
            copy: None,
            flags: snapshot.active_flags(),
            used: vars.encoded_len(),
        },
    };
    if changes.is_empty() {
        return Ok(unchanged(&snapshot.vars));
    }
    let vars = apply_checked(&snapshot.vars, changes, policy)?;
    if snapshot.is_valid() && vars == snapshot.vars {
        return Ok(unchanged(&vars));
    }
    refuse_unbootable_base(snapshot, policy)?;
    let layout = snapshot.layout;
    let current = match snapshot.source {
        Source::Copy(i) => Some(i),
        _ => None,
    };
    let target = match layout {
        Layout::Redundant => redundant::write_target(match current {
            Some(0) => Choice::First,
            Some(_) => Choice::Second,
            None => Choice::Neither,
        }),
        Layout::Single => 0,
    };
    let new_flags = redundant::next_flags(policy.scheme, snapshot.active_flags());
    let to = &snapshot.copies[target];
    let full = |needed, available| Error::Full {
        device: to.device.clone(),
        needed,
        available,
        size: to.size,
    };
    let image = codec::encode(&vars, to.size as usize, layout, new_flags).map_err(|e| match e {
        EncodeError::Full { needed, available } => full(needed, available),
        EncodeError::SizeTooSmall { .. } => full(vars.encoded_len(), 0),
    })?;
    let mut steps = vec![Step {
        copy: target,
        ranges: vec![(to.offset, image)],
    }];
    // The NOR boolean scheme marks the old copy obsolete once the new one is complete.
    if let (FlagScheme::Boolean, Some(old)) = (policy.scheme, current) {
        if old != target {
            let from = &snapshot.copies[old];
            let mark = (
                from.offset + codec::CRC_SIZE as u64,
                vec![redundant::FLAG_OBSOLETE],
            );
            if from.device == to.device && to.write_mode == WriteMode::Replace {
                steps[0].ranges.push(mark);
            } else {
                steps.push(Step {
                    copy: old,
                    ranges: vec![mark],
                });
            }
        }
    }
    Ok(WritePlan {
        steps,
        report: WriteReport {
            written: true,
            copy: Some(target),
            flags: (layout == Layout::Redundant).then_some(new_flags),
            used: vars.encoded_len(),
        },
    })
}

/// `vars` with `changes` applied one at a time, each checked against the name rules and
/// `.flags` as it stands when that change is applied.
fn apply_checked(vars: &Vars, changes: &Changes, policy: &Policy) -> Result<Vars, Error> {
    let mut vars = vars.clone();
    for (name, value) in changes.iter_bytes() {
        crate::vars::check_name(name)?;
        // `.flags` rules are text; a name or value that is not UTF-8 is checked as its
        // lossy text (it matches no rule, or fails the rule's type) and stored exactly.
        let (text, value_text) = (
            String::from_utf8_lossy(name),
            value.map(String::from_utf8_lossy),
        );
        let default = policy.defaults.as_ref().and_then(|d| d.vars.get(&text));
        flags::check_change(&vars, &text, value_text.as_deref(), default.as_deref())?;
        let mut one = Changes::new();
        one.push_bytes(name, value.map(<[u8]>::to_vec));
        vars.apply(&one)?;
    }
    Ok(vars)
}

/// A write with no valid copy starts from the defaults: refuse it when there are none, or
/// when U-Boot could not boot with them.
fn refuse_unbootable_base(snapshot: &Snapshot, policy: &Policy) -> Result<(), Error> {
    let devices = || {
        snapshot
            .copies
            .iter()
            .map(|c| c.device.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    match (&snapshot.source, &policy.defaults) {
        (Source::Empty, _) => Err(Error::NoDefaults { devices: devices() }),
        (Source::Defaults, Some(d)) => match policy.defaults_problem() {
            Some(reasons) => Err(Error::UnusableDefaults {
                devices: devices(),
                origin: d.origin(),
                reasons,
            }),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redundant::{FLAG_ACTIVE, FLAG_OBSOLETE};

    const SIZE: u64 = 0x40;

    /// A copy's content in the table.
    #[derive(Clone, Copy, Debug)]
    enum C {
        /// Valid, holding `a=<value>`, with this flags byte (ignored when single).
        Valid(&'static str, u8),
        /// Bytes whose CRC does not match.
        Invalid,
        /// Erased flash / zeroed file: invalid too, but say so.
        Erased,
        /// The env file does not exist.
        Missing,
    }

    fn raw(layout: Layout, c: C, index: u64, device: &str) -> RawCopy {
        let found = match c {
            C::Valid(v, flags) => Raw::Bytes(
                codec::encode(
                    &[("a", v), ("bootcmd", "boot")].into_iter().collect(),
                    SIZE as usize,
                    layout,
                    flags,
                )
                .unwrap(),
            ),
            C::Invalid => {
                let mut b = codec::encode(&Vars::new(), SIZE as usize, layout, 1).unwrap();
                b[SIZE as usize - 1] ^= 1;
                Raw::Bytes(b)
            }
            C::Erased => Raw::Bytes(vec![0xff; SIZE as usize]),
            C::Missing => Raw::Missing,
        };
        RawCopy {
            device: PathBuf::from(device),
            offset: index * SIZE,
            size: SIZE,
            write_mode: WriteMode::InPlace,
            found,
        }
    }

    /// What a row expects.
    #[derive(Debug, PartialEq, Eq)]
    enum Want {
        /// No write; reads `a` as this.
        Nothing(Option<&'static str>),
        /// Writes copy `copy` with flags byte `flags` (and, boolean scheme, marks `obsolete`).
        Write {
            copy: usize,
            flags: Option<u8>,
            obsolete: Option<usize>,
        },
        /// Refused: the error's text contains this.
        Refused(&'static str),
    }

    /// Whether the change fits.
    #[derive(Clone, Copy, Debug)]
    enum Change {
        None,
        Same,
        Fits,
        Full,
    }

    struct Row {
        what: &'static str,
        scheme: Option<FlagScheme>,
        copies: &'static [C],
        defaults: bool,
        change: Change,
        want: Want,
    }

    use Change as Ch;
    use Want::*;
    use C::*;

    const fn w(copy: usize, flags: Option<u8>) -> Want {
        Write {
            copy,
            flags,
            obsolete: None,
        }
    }

    #[rustfmt::skip]
    const ROWS: &[Row] = &[
        // Single copy.
        Row { what: "single valid, change fits: rewrite it", scheme: None, copies: &[Valid("1", 0)], defaults: false, change: Ch::Fits, want: w(0, None) },
        Row { what: "single valid, change to the same value: no write", scheme: None, copies: &[Valid("1", 0)], defaults: false, change: Ch::Same, want: Nothing(Some("1")) },
        Row { what: "single valid, empty change: no write", scheme: None, copies: &[Valid("1", 0)], defaults: false, change: Ch::None, want: Nothing(Some("1")) },
        Row { what: "single valid, change does not fit: refused, names the device", scheme: None, copies: &[Valid("1", 0)], defaults: false, change: Ch::Full, want: Refused("dev0: environment full") },
        Row { what: "single invalid with defaults: the write starts from them", scheme: None, copies: &[Invalid], defaults: true, change: Ch::Fits, want: w(0, None) },
        Row { what: "single invalid with defaults, empty change: no repair write", scheme: None, copies: &[Invalid], defaults: true, change: Ch::None, want: Nothing(Some("d")) },
        Row { what: "single invalid with defaults, a change equal to them still writes (makes a valid copy)", scheme: None, copies: &[Invalid], defaults: true, change: Ch::Same, want: w(0, None) },
        Row { what: "single invalid, no defaults: refused", scheme: None, copies: &[Erased], defaults: false, change: Ch::Fits, want: Refused("no default environment") },
        Row { what: "single invalid, no defaults, empty change: nothing to refuse", scheme: None, copies: &[Erased], defaults: false, change: Ch::None, want: Nothing(None) },
        Row { what: "single missing file with defaults: created", scheme: None, copies: &[Missing], defaults: true, change: Ch::Fits, want: w(0, None) },
        Row { what: "single invalid with defaults, change does not fit", scheme: None, copies: &[Invalid], defaults: true, change: Ch::Full, want: Refused("environment full") },
        // Redundant, counter scheme.
        Row { what: "counter: higher flags current, the other copy written with flags+1", scheme: Some(FlagScheme::Counter), copies: &[Valid("1", 4), Valid("2", 5)], defaults: false, change: Ch::Fits, want: w(0, Some(6)) },
        Row { what: "counter: equal flags pick copy 0, so copy 1 is written", scheme: Some(FlagScheme::Counter), copies: &[Valid("1", 7), Valid("2", 7)], defaults: false, change: Ch::Fits, want: w(1, Some(8)) },
        Row { what: "counter: 0 follows 255", scheme: Some(FlagScheme::Counter), copies: &[Valid("1", 255), Valid("2", 0)], defaults: false, change: Ch::Fits, want: w(0, Some(1)) },
        Row { what: "counter: only copy 1 valid", scheme: Some(FlagScheme::Counter), copies: &[Invalid, Valid("2", 3)], defaults: false, change: Ch::Fits, want: w(0, Some(4)) },
        Row { what: "counter: only copy 0 valid, no-op change", scheme: Some(FlagScheme::Counter), copies: &[Valid("1", 3), Erased], defaults: false, change: Ch::Same, want: Nothing(Some("1")) },
        Row { what: "counter: both invalid with defaults: copy 0 written", scheme: Some(FlagScheme::Counter), copies: &[Invalid, Erased], defaults: true, change: Ch::Fits, want: w(0, Some(1)) },
        Row { what: "counter: both invalid with defaults, empty change: no write", scheme: Some(FlagScheme::Counter), copies: &[Invalid, Invalid], defaults: true, change: Ch::None, want: Nothing(Some("d")) },
        Row { what: "counter: both invalid, no defaults: refused", scheme: Some(FlagScheme::Counter), copies: &[Invalid, Invalid], defaults: false, change: Ch::Fits, want: Refused("no default environment") },
        Row { what: "counter: full, names the copy that would be written", scheme: Some(FlagScheme::Counter), copies: &[Valid("1", 1), Valid("2", 0)], defaults: false, change: Ch::Full, want: Refused("dev1: environment full") },
        // Redundant, boolean (NOR) scheme.
        Row { what: "boolean: active copy 0: write copy 1 active, then mark copy 0 obsolete", scheme: Some(FlagScheme::Boolean), copies: &[Valid("1", FLAG_ACTIVE), Valid("2", FLAG_OBSOLETE)], defaults: false, change: Ch::Fits, want: Write { copy: 1, flags: Some(FLAG_ACTIVE), obsolete: Some(0) } },
        Row { what: "boolean: active copy 1: write copy 0, mark copy 1", scheme: Some(FlagScheme::Boolean), copies: &[Valid("1", FLAG_OBSOLETE), Valid("2", FLAG_ACTIVE)], defaults: false, change: Ch::Fits, want: Write { copy: 0, flags: Some(FLAG_ACTIVE), obsolete: Some(1) } },
        Row { what: "boolean: both active (cut between the two writes) picks copy 0", scheme: Some(FlagScheme::Boolean), copies: &[Valid("1", FLAG_ACTIVE), Valid("2", FLAG_ACTIVE)], defaults: false, change: Ch::Fits, want: Write { copy: 1, flags: Some(FLAG_ACTIVE), obsolete: Some(0) } },
        Row { what: "boolean: both invalid with defaults: copy 0 written, nothing to mark", scheme: Some(FlagScheme::Boolean), copies: &[Erased, Erased], defaults: true, change: Ch::Fits, want: Write { copy: 0, flags: Some(FLAG_ACTIVE), obsolete: None } },
        Row { what: "boolean: no-op change", scheme: Some(FlagScheme::Boolean), copies: &[Valid("1", FLAG_ACTIVE), Invalid], defaults: false, change: Ch::Same, want: Nothing(Some("1")) },
        Row { what: "boolean: full", scheme: Some(FlagScheme::Boolean), copies: &[Valid("1", FLAG_ACTIVE), Invalid], defaults: false, change: Ch::Full, want: Refused("environment full") },
    ];

    fn run(row: &Row) -> Want {
        let layout = match row.scheme {
            None => Layout::Single,
            Some(_) => Layout::Redundant,
        };
        let copies: Vec<RawCopy> = row
            .copies
            .iter()
            .enumerate()
            .map(|(i, &c)| raw(layout, c, i as u64, &format!("dev{i}")))
            .collect();
        let policy = Policy {
            scheme: row.scheme.unwrap_or_default(),
            defaults: row.defaults.then(|| {
                Defaults::from_vars([("a", "d"), ("bootcmd", "boot")].into_iter().collect())
            }),
            ..Policy::default()
        };
        let snap = select(layout, &policy, &copies);
        let current = snap.vars.get("a").map(|v| v.into_owned());
        let changes = match row.change {
            Ch::None => Changes::new(),
            Ch::Same => Changes::new().set("a", current.clone().unwrap_or_default()),
            Ch::Fits => Changes::new().set("a", "new"),
            Ch::Full => Changes::new().set("a", "x".repeat(SIZE as usize)),
        };
        let plan = match plan_write(&snap, &changes, &policy) {
            Ok(p) => p,
            Err(e) => {
                let text = e.to_string();
                let want = match &row.want {
                    Refused(t) => *t,
                    _ => "",
                };
                assert!(text.contains(want), "{}: {text}", row.what);
                return Refused(want);
            }
        };
        if plan.steps.is_empty() {
            assert!(!plan.report.written, "{}", row.what);
            // What a reader sees: the row's value when it matches.
            return Nothing(match &row.want {
                Nothing(Some(v)) if current.as_deref() == Some(*v) => Some(*v),
                _ => None,
            });
        }
        let first = &plan.steps[0];
        let (offset, image) = &first.ranges[0];
        assert_eq!(*offset, copies[first.copy].offset, "{}", row.what);
        let written = codec::decode(image, layout).expect("the plan writes a valid copy");
        let expected_a = match row.change {
            Ch::Same => current.clone().unwrap_or_default(),
            _ => "new".to_owned(),
        };
        assert_eq!(
            written.vars.get("a").as_deref(),
            Some(expected_a.as_str()),
            "{}",
            row.what
        );
        assert_eq!(
            written.vars.get("bootcmd").as_deref(),
            Some("boot"),
            "{}: the rest is kept",
            row.what
        );
        assert_eq!(plan.report.copy, Some(first.copy), "{}", row.what);
        assert_eq!(plan.report.flags, written.flags, "{}", row.what);
        let marks: Vec<(usize, u64, Vec<u8>)> = plan
            .steps
            .iter()
            .flat_map(|s| s.ranges.iter().map(move |(o, b)| (s.copy, *o, b.clone())))
            .skip(1)
            .collect();
        let obsolete = match marks.as_slice() {
            [] => None,
            [(_, o, b)] => {
                assert_eq!(b, &vec![FLAG_OBSOLETE], "{}", row.what);
                let old = (*o / SIZE) as usize;
                assert_eq!(*o, copies[old].offset + 4, "{}: the flags byte", row.what);
                Some(old)
            }
            more => panic!("{}: unexpected writes {more:?}", row.what),
        };
        Write {
            copy: first.copy,
            flags: written.flags,
            obsolete,
        }
    }

    #[test]
    fn decision_table() {
        for row in ROWS {
            let got = run(row);
            let want = match &row.want {
                Nothing(v) => Nothing(*v),
                Write {
                    copy,
                    flags,
                    obsolete,
                } => Write {
                    copy: *copy,
                    flags: *flags,
                    obsolete: *obsolete,
                },
                Refused(t) => Refused(t),
            };
            assert_eq!(got, want, "{}", row.what);
        }
    }

    #[test]
    fn both_copies_in_one_replaced_file_are_marked_in_the_same_write() {
        let policy = Policy {
            scheme: FlagScheme::Boolean,
            ..Policy::default()
        };
        let copies: Vec<RawCopy> = [Valid("1", FLAG_ACTIVE), Invalid]
            .into_iter()
            .enumerate()
            .map(|(i, c)| RawCopy {
                write_mode: WriteMode::Replace,
                ..raw(Layout::Redundant, c, i as u64, "uboot.env")
            })
            .collect();
        let snap = select(Layout::Redundant, &policy, &copies);
        let plan = plan_write(&snap, &Changes::new().set("a", "2"), &policy).unwrap();
        assert_eq!(plan.steps.len(), 1, "one durable replace of the file");
        assert_eq!(plan.steps[0].copy, 1);
        assert_eq!(plan.steps[0].ranges[1], (4, vec![FLAG_OBSOLETE]));
    }

    #[test]
    fn select_reports_each_copy() {
        let policy = Policy::default();
        let mut copies = vec![
            raw(Layout::Redundant, Invalid, 0, "d"),
            raw(Layout::Redundant, Valid("1", 9), 1, "d"),
        ];
        let snap = select(Layout::Redundant, &policy, &copies);
        assert_eq!(snap.source, Source::Copy(1));
        assert!(matches!(
            snap.copies[0].status,
            CopyStatus::BadCrc { flags: Some(1), .. }
        ));
        assert!(snap.copies[1].active && !snap.copies[0].active);
        assert_eq!(snap.active_flags(), Some(9));
        copies[1].found = Raw::Short(vec![0; 3]);
        copies[0].found = Raw::PastEnd { file_len: 2 };
        let snap = select(Layout::Redundant, &policy, &copies);
        assert_eq!(snap.source, Source::Empty);
        assert_eq!(snap.copies[0].status, CopyStatus::PastEnd { file_len: 2 });
        assert_eq!(snap.copies[1].status, CopyStatus::Short { len: 3 });
    }
}
