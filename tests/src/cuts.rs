//! Power cuts, the two ways the env tests make them (docs/env-backend.md):
//!
//! - **record and replay**: a writer's writes to the card are recorded ([`traced_writes`], strace
//!   with the data dumped) and the card is rebuilt as it is after every prefix of them, cut at a
//!   512-byte sector boundary ([`cut_image`], [`replay_prefixes`]; which prefixes:
//!   [`replay_points`]);
//! - **the seeded kill loop**: the real U-Boot (sandbox or QEMU) is SIGKILLed a random delay into
//!   its save; [`seeded_cuts`] draws the delays (and a scenario per cut) from proptest's
//!   generator seeded with the test's seed, so a run is reproducible from the seed it prints.

use crate::differential::seeded_runner;
use crate::{find_program, run_ok};
use proptest::strategy::{Strategy, ValueTree};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One write a program issued to a card image: the byte offset and the data.
pub type Write = (u64, Vec<u8>);

/// Run `cmd` under strace and return its writes to `card`, in order (`lseek` + `write`, and
/// `pwrite64`, on the card's descriptor, with the data dumped by `-e write=all`). The command
/// must succeed.
pub fn traced_writes(cmd: &Command, card: &Path) -> Vec<Write> {
    let strace =
        find_program("strace").expect("strace (Debian package strace; scripts/setup-debian.sh)");
    let trace = card.with_extension("strace");
    let mut s = Command::new(strace);
    s.args([
        "-y",
        "-e",
        "trace=lseek,write,pwrite64",
        "-e",
        "write=all",
        "-o",
    ])
    .arg(&trace)
    .arg(cmd.get_program())
    .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        s.current_dir(d);
    }
    run_ok(&mut s);
    let tag = format!("{}>", card.file_name().unwrap().to_str().unwrap());
    parse_strace(&std::fs::read_to_string(&trace).unwrap(), &tag)
}

/// The writes in an strace log (`-y -e write=all`) to the descriptor whose path ends in `tag`.
pub fn parse_strace(text: &str, tag: &str) -> Vec<Write> {
    let mut writes: Vec<Write> = Vec::new();
    let mut pos = 0u64;
    let mut current: Option<usize> = None;
    for line in text.lines() {
        if let Some(dump) = line.strip_prefix(" | ") {
            // ` | OOOOO  xx xx .. xx  xx .. xx  ascii |`: 16 bytes per line, hex columns fixed.
            if let Some(k) = current {
                let hex = dump.get(7..7 + 49).unwrap_or(&dump[7.min(dump.len())..]);
                writes[k].1.extend(
                    hex.split_whitespace()
                        .map_while(|h| u8::from_str_radix(h, 16).ok().filter(|_| h.len() == 2)),
                );
            }
            continue;
        }
        current = None;
        if !line.contains(tag) {
            continue;
        }
        let ret = line
            .rsplit("= ")
            .next()
            .and_then(|r| r.trim().parse::<u64>().ok());
        if line.starts_with("lseek(") {
            pos = ret.expect("lseek result");
        } else if line.starts_with("write(") {
            let n = ret.expect("write result");
            writes.push((pos, Vec::with_capacity(n as usize)));
            current = Some(writes.len() - 1);
            pos += n;
        } else if line.starts_with("pwrite64(") {
            let args = &line[..line.rfind(") = ").unwrap()];
            let off: u64 = args.rsplit(", ").next().unwrap().trim().parse().unwrap();
            writes.push((off, Vec::new()));
            current = Some(writes.len() - 1);
        }
    }
    writes
}

/// The card after a cut `sectors` 512-byte sectors into `writes` (in order; a write torn at a
/// sector boundary, the device's unit of atomicity).
pub fn cut_image(pristine: &[u8], writes: &[Write], sectors: usize) -> Vec<u8> {
    let mut img = pristine.to_vec();
    let mut left = sectors * 512;
    for (off, data) in writes {
        let n = data.len().min(left);
        img[*off as usize..*off as usize + n].copy_from_slice(&data[..n]);
        left -= n;
        if left == 0 {
            break;
        }
    }
    img
}

/// Which prefixes of a `sectors`-sector write to replay: `ZBOT_ENV_REPLAY` points (default
/// `default`) evenly spread from 0, plus the complete write when `with_end`; `all` (or any
/// number above `sectors`) is every one of `0..=sectors`. Returns the setting as given, for
/// the report, and the points.
pub fn replay_points(sectors: usize, default: usize, with_end: bool) -> (String, Vec<usize>) {
    let want = std::env::var("ZBOT_ENV_REPLAY").unwrap_or_else(|_| default.to_string());
    let points = match want.parse::<usize>() {
        Ok(n) if n <= sectors => (0..n)
            .map(|i| (i * sectors).div_ceil(n.max(1)))
            .chain(with_end.then_some(sectors))
            .collect(),
        _ => (0..=sectors).collect(),
    };
    (want, points)
}

/// The record-and-replay loop: for each of `points`, write the card cut that many sectors into
/// `writes` to `at`, then let `check` read it (`check(k)`: what the reader loads there).
pub fn replay_prefixes(
    pristine: &[u8],
    writes: &[Write],
    points: &[usize],
    at: &Path,
    mut check: impl FnMut(usize),
) {
    for &k in points {
        std::fs::write(at, cut_image(pristine, writes, k)).unwrap();
        check(k);
    }
}

/// One power cut of a seeded kill loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// 0-based number of the cut.
    pub index: usize,
    /// Which of the test's scenarios (`0..choices`).
    pub choice: usize,
    /// How long after the save started the power goes.
    pub delay: Duration,
}

/// The seeded kill loop's cuts: `n` cuts, each a scenario in `0..choices` and a delay uniform
/// in `0..range` (whole microseconds), drawn by proptest's runner seeded with `seed`.
pub fn seeded_cuts(seed: u64, n: usize, choices: usize, range: Duration) -> Vec<Cut> {
    let mut runner = seeded_runner(seed);
    let range_us = (range.as_micros() as u64).max(1);
    let strategy = (0..choices.max(1), 0..range_us);
    (0..n)
        .map(|index| {
            let (choice, us) = strategy
                .new_tree(&mut runner)
                .expect("ranges never reject")
                .current();
            Cut {
                index,
                choice,
                delay: Duration::from_micros(us),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_reproducible_from_the_seed_and_in_range() {
        let a = seeded_cuts(7, 200, 3, Duration::from_millis(150));
        assert_eq!(a, seeded_cuts(7, 200, 3, Duration::from_millis(150)));
        assert_ne!(a, seeded_cuts(8, 200, 3, Duration::from_millis(150)));
        assert!(a
            .iter()
            .all(|c| c.choice < 3 && c.delay < Duration::from_millis(150)));
        assert!(
            (0..3).all(|k| a.iter().any(|c| c.choice == k)),
            "every scenario drawn"
        );
        assert_eq!(
            a.iter().map(|c| c.index).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_cut_image_is_the_prefix_of_the_writes() {
        let writes: Vec<Write> = vec![(512, vec![1; 1024]), (0, vec![2; 512])];
        let pristine = vec![0u8; 2048];
        assert_eq!(cut_image(&pristine, &writes, 0), pristine);
        let one = cut_image(&pristine, &writes, 1);
        assert!(one[512..1024].iter().all(|&b| b == 1) && one[1024..].iter().all(|&b| b == 0));
        let all = cut_image(&pristine, &writes, 3);
        assert!(all[..512].iter().all(|&b| b == 2) && all[512..1536].iter().all(|&b| b == 1));
    }

    #[test]
    fn strace_lines_become_writes() {
        let log = "lseek(3</t/card.img>, 1024, SEEK_SET) = 1024\n\
                   write(3</t/card.img>, \"\\1\\2\"..., 2) = 2\n \
                   | 00000  01 02                                            ..               |\n\
                   write(4</t/other>, \"x\", 1) = 1\n\
                   pwrite64(3</t/card.img>, \"\\3\", 1, 4096) = 1\n \
                   | 00000  03                                               .                |\n";
        assert_eq!(
            parse_strace(log, "card.img>"),
            vec![(1024, vec![1, 2]), (4096, vec![3])]
        );
    }
}
