//! The one printer of the command line: every line `partctl` writes to stdout is a [`Message`]
//! rendered by [`print`] (as fw-env's and bootcount's typed reports are). The commands in
//! [`crate::cli`] decide what to say; this module alone decides how it looks.

use crate::check::{Report, Severity};
use crate::kernel::{KernelTable, KernelView};
use crate::repair::Plan;
use crate::SECTOR;
use std::io::Write;
use std::path::Path;

/// What a command tells the user, in the order it happens.
#[derive(Debug)]
pub enum Message<'a> {
    /// `create` made the image.
    Created {
        /// The image.
        output: &'a Path,
        /// Its size in sectors.
        sectors: u64,
        /// Partitions in the layout.
        partitions: usize,
    },
    /// A derived file was written (`create --emit`).
    Wrote(&'a Path),
    /// A derived file, printed whole (`emit`).
    Emitted(&'a str),
    /// A check of the tables (`check`, and `grow`'s check after writing).
    Check {
        /// The card's name as given.
        name: &'a str,
        /// The check.
        report: &'a Report,
        /// As JSON (`check --json`).
        json: bool,
    },
    /// The sectors a repair or grow would write.
    Plan {
        /// `Repair` or `Grow`.
        what: &'a str,
        /// The card's name as given.
        name: &'a str,
        /// The plan.
        plan: &'a Plan,
    },
    /// The check of the tables as they will be after the repair's writes.
    After {
        /// The card's name as given.
        name: &'a str,
        /// The check.
        report: &'a Report,
    },
    /// The plan was shown and not written.
    NothingWritten {
        /// `--dry-run` (else: not confirmed).
        dry_run: bool,
    },
    /// The sectors about to change were saved.
    BackupSaved {
        /// How many.
        sectors: usize,
        /// The backup file.
        path: &'a Path,
        /// The card.
        target: &'a Path,
    },
    /// Something worth knowing that changes nothing (the kernel's view).
    Note(String),
    /// A repair was written and the tables checked again.
    Repaired {
        /// The card's name as given.
        name: &'a str,
        /// The check after writing.
        report: &'a Report,
    },
    /// `restore` put the sectors back.
    Restored {
        /// How many.
        sectors: usize,
        /// The card.
        target: &'a Path,
    },
}

/// Render one message on `out` (stdout in the binary). A failed write to stdout is ignored, as
/// `println!` in a pipe closed early would end the process anyway (SIGPIPE, `main.rs`).
pub fn print(out: &mut dyn Write, m: &Message) {
    let _ = out.write_all(render(m).as_bytes());
}

/// The text of one message.
pub fn render(m: &Message) -> String {
    match m {
        Message::Created {
            output,
            sectors,
            partitions,
        } => format!(
            "created {} ({sectors} sectors, {partitions} partitions)\n",
            output.display()
        ),
        Message::Wrote(p) => format!("wrote {}\n", p.display()),
        Message::Emitted(text) => text.to_string(),
        Message::Check {
            report, json: true, ..
        } => format!(
            "{}\n",
            serde_json::to_string_pretty(report).expect("a report is plain data")
        ),
        Message::Check {
            name,
            report,
            json: false,
        } => format_report(name, report),
        Message::Plan { what, name, plan } => {
            format!("{what} plan for {name}:\n{}", plan.describe())
        }
        Message::After { name, report } => {
            format!("After the repair:\n{}", format_report(name, report))
        }
        Message::NothingWritten { dry_run: true } => "Nothing written (dry run).\n".into(),
        Message::NothingWritten { dry_run: false } => "Nothing written: rerun with --yes.\n".into(),
        Message::BackupSaved {
            sectors,
            path,
            target,
        } => format!(
            "saved {sectors} sector(s) to {} (undo: partctl restore {} {})\n",
            path.display(),
            path.display(),
            target.display()
        ),
        Message::Note(n) => format!("{n}\n"),
        Message::Repaired { report, .. } if report.is_sound() => {
            "Repaired. The tables are sound.\n".into()
        }
        Message::Repaired { name, report } => {
            format!(
                "Repaired. Problems remain:\n{}",
                format_report(name, report)
            )
        }
        Message::Restored { sectors, target } => {
            format!("restored {sectors} sector(s) to {}\n", target.display())
        }
    }
}

fn fmt_view(v: &KernelView) -> String {
    let mut s = match v.table {
        KernelTable::PrimaryGpt => "primary GPT".to_string(),
        KernelTable::AlternateGpt => "alternate (backup) GPT".to_string(),
        KernelTable::Msdos => "the MBR only (GPT ignored)".to_string(),
        KernelTable::None => "NO partition table".to_string(),
    };
    let parts: Vec<String> = v
        .partitions
        .iter()
        .map(|p| format!("p{}", p.number))
        .collect();
    s.push_str(&format!(
        " -> {} partition(s){}",
        parts.len(),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(" "))
        }
    ));
    for n in &v.notes {
        s.push_str(&format!("\n      kernel: {n}"));
    }
    s
}

/// Human-readable check report.
pub fn format_report(name: &str, r: &Report) -> String {
    let mut o = format!(
        "{name}: {} sectors ({:.1} MiB)",
        r.disk_sectors,
        (r.disk_sectors * SECTOR) as f64 / (1u64 << 20) as f64
    );
    match r.source {
        Some(w) => o.push_str(&format!(", partitions from the {w} GPT\n")),
        None => o.push_str(", no usable GPT\n"),
    }
    for (n, e) in &r.partitions {
        o.push_str(&format!(
            "  {n:>3} {:<10} LBA {:>10}..{:<10} {} {}\n",
            e.name, e.first_lba, e.last_lba, e.type_guid, e.uuid
        ));
    }
    let errors = r
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    if r.problems.is_empty() {
        o.push_str("No problems found.\n");
    } else {
        o.push_str(&format!(
            "{errors} error(s), {} warning(s):\n",
            r.problems.len() - errors
        ));
        for p in &r.problems {
            o.push_str(&format!("  {p}\n"));
        }
    }
    o.push_str(&format!("Linux sees: {}\n", fmt_view(&r.linux)));
    if r.linux_with_gpt_option
        != (KernelView {
            force_gpt: true,
            ..r.linux.clone()
        })
    {
        o.push_str(&format!(
            "Linux with `gpt` on its command line sees: {}\n",
            fmt_view(&r.linux_with_gpt_option)
        ));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines scripts and tests match on stay as they were when each command printed its own.
    #[test]
    fn fixed_lines_render_as_before() {
        let p = Path::new("card.img");
        let b = Path::new("b.bin");
        for (m, want) in [
            (
                Message::NothingWritten { dry_run: true },
                "Nothing written (dry run).\n",
            ),
            (
                Message::NothingWritten { dry_run: false },
                "Nothing written: rerun with --yes.\n",
            ),
            (
                Message::BackupSaved {
                    sectors: 3,
                    path: b,
                    target: p,
                },
                "saved 3 sector(s) to b.bin (undo: partctl restore b.bin card.img)\n",
            ),
            (
                Message::Restored {
                    sectors: 3,
                    target: p,
                },
                "restored 3 sector(s) to card.img\n",
            ),
            (
                Message::Created {
                    output: p,
                    sectors: 8,
                    partitions: 2,
                },
                "created card.img (8 sectors, 2 partitions)\n",
            ),
            (Message::Wrote(b), "wrote b.bin\n"),
            (Message::Emitted("a=b\n"), "a=b\n"),
        ] {
            assert_eq!(render(&m), want);
        }
    }
}
