//! The differential test of the generated hush script against the Rust engine: each case is a
//! stored environment (the bytes fw-env or `saveenv` would put on disk), run through the real
//! sandbox U-Boot and through `bootcount::bootloader_step(&cfg, &uboot_view(&stored))`.
//!
//! Many cases share one sandbox run: a driver script (a `source`d image) does, per case,
//! `load hostfs` the case's data area, `env import -d -b` it (delete everything, then the same
//! `himport_r` as a load from disk), `run zbot-policy` (the production entry point, from the
//! case's own environment), prints the chosen slot and `bootargs`, and copies `/uboot.env` from
//! the ext4 partition to a host file. Each case therefore starts from exactly its environment,
//! and what `saveenv` wrote is read back from the disk image. `saveenv` calls are counted on the
//! console ("Saving Environment to", printed once per call).

use crate::{DiskImage, HelperError, Result, Sandbox};
use bootcount::state::names;
use bootcount::{bootloader_step, SlotConfig};
use fw_env::codec::{self, uboot_view};
use fw_env::{Layout, Vars};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use std::fmt::Write as _;
use std::path::Path;
use uboot_scripts::{Board, Generated};

/// The generator of the random cases and of the power-cut delays: proptest's ChaCha
/// [`TestRng`] seeded from a number (`ZBOT_DIFF_SEED`, `ZBOT_CUT_SEED`, ...), so a run is
/// reproducible from the seed it prints.
pub fn seeded_rng(seed: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes(),
        );
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// A proptest runner whose cases come from `seed` ([`seeded_rng`]).
pub fn seeded_runner(seed: u64) -> TestRunner {
    TestRunner::new_with_rng(ProptestConfig::default(), seeded_rng(seed))
}

/// One case: the slot configuration and the stored environment.
#[derive(Debug, Clone)]
pub struct Case {
    /// Index into the configurations of the run.
    pub cfg: usize,
    /// The environment as stored on disk (no escapes needed: values have no backslash).
    pub stored: Vars,
}

/// The configurations the cases use: the board's (rootfs + otafs) and A/B + recovery.
pub fn configs() -> Vec<(SlotConfig, Generated)> {
    let ab = SlotConfig::from_toml(
        include_str!("../../bootcount/dist/slots-ab.toml"),
        "slots-ab.toml",
    )
    .expect("slots-ab.toml is valid");
    [SlotConfig::builtin(), ab]
        .into_iter()
        .map(|c| {
            let g = Generated::new(&c, &Board::sandbox(), "test").expect("generates");
            (c, g)
        })
        .collect()
}

/// The stored default environment of a configuration (the base of every case).
pub fn base_env(g: &Generated) -> Vars {
    g.default_env
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The policy variables the enumeration and the random cases vary (bootcount's names).
pub const POLICY_VARS: &[&str] = &[
    names::NEXT_BOOT,
    names::ONCE,
    names::TRIAL,
    names::TRIES,
    names::BOOTLIMIT,
    names::PREV,
];

/// Printable ASCII without the backslash: hush removes backslashes from every substituted
/// value (see docs/uboot-scripts.md), so values holding one are outside what hush can compare.
const PRINTABLE: &[u8] =
    b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/// Garbage that has bitten hush scripts: quotes, separators, test operators, near-misses.
pub const GARBAGE: &[&str] = &[
    "rootfs ",
    " otafs",
    "ROOTFS",
    "otafs;",
    "x' = 'x' -o 'a",
    "otafs\"",
    "-",
    "=",
    "!",
    "-z",
    "-n",
    "$next_boot",
    "${rootfs}",
    "rootfs;otafs",
    "a b",
    "'",
    "#",
    "rootfs_c",
    "r\u{f6}otfs",
    "rootfs\u{a0}",
    "\u{1f916}",
];

/// Counter garbage: wrapped, out of range, other bases, blanks.
pub const COUNTER_GARBAGE: &[&str] = &[
    "10", "a", "03", "-1", " 1", "1 ", "0x1", "08", "99", "+1", "", "x", "9a", "1;",
];

/// 1..=`max` characters of [`PRINTABLE`].
fn printable(max: usize) -> impl Strategy<Value = String> + Clone {
    prop::collection::vec(prop::sample::select(PRINTABLE), 1..=max)
        .prop_map(|b| String::from_utf8(b).expect("ASCII"))
}

fn set(vars: &mut Vars, name: &str, v: Option<&str>) {
    match v {
        // Stored as-is, including an empty value (`name=` on disk, which U-Boot drops).
        Some(v) => {
            let mut all: Vec<(Vec<u8>, Vec<u8>)> = vars
                .iter()
                .filter(|(n, _)| *n != name.as_bytes())
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            all.push((name.as_bytes().to_vec(), v.as_bytes().to_vec()));
            *vars = all.into_iter().collect();
        }
        None => {
            vars.remove(name);
        }
    }
}

/// The bounded enumeration (documented in docs/uboot-scripts.md), for configuration 0
/// (rootfs + otafs):
/// - selection: `next_boot` x `zbot_once` x `zbot_trial` x `zbot_prev` over unset, empty,
///   each slot and garbage, with `zbot_tries` in {unset, 1, 3, a};
/// - counters: every active trial (`rootfs`, and the recovery slot `otafs`) x `zbot_tries` x
///   `zbot_bootlimit` over unset, empty, every digit and the counter garbage, x `zbot_prev`;
/// - root arguments: each slot's variable unset / empty / default / odd x each slot chosen.
pub fn enumeration(base: &Vars) -> Vec<Vars> {
    let slot_vals: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("rootfs"),
        Some("otafs"),
        Some("rootfs "),
        Some("x' = 'x' -o 'a"),
    ];
    let mut out = Vec::new();
    for nb in &slot_vals {
        for once in &slot_vals {
            for trial in &slot_vals {
                for prev in &slot_vals {
                    for tries in [None, Some("1"), Some("3"), Some("a")] {
                        let mut v = base.clone();
                        set(&mut v, "next_boot", *nb);
                        set(&mut v, "zbot_once", *once);
                        set(&mut v, "zbot_trial", *trial);
                        set(&mut v, "zbot_prev", *prev);
                        set(&mut v, "zbot_tries", tries);
                        out.push(v);
                    }
                }
            }
        }
    }
    let mut counters: Vec<Option<&str>> = vec![None];
    let digits: Vec<String> = (0..=9).map(|d| d.to_string()).collect();
    counters.extend(digits.iter().map(|d| Some(d.as_str())));
    counters.extend(COUNTER_GARBAGE.iter().map(|g| Some(*g)));
    for t in ["rootfs", "otafs"] {
        for tries in &counters {
            for limit in &counters {
                for prev in [None, Some("rootfs"), Some("otafs"), Some("junk")] {
                    let mut v = base.clone();
                    set(&mut v, "next_boot", Some(t));
                    set(&mut v, "zbot_trial", Some(t));
                    set(&mut v, "zbot_tries", *tries);
                    set(&mut v, "zbot_bootlimit", *limit);
                    set(&mut v, "zbot_prev", prev);
                    out.push(v);
                }
            }
        }
    }
    let roots: [Option<&str>; 4] = [
        None,
        Some(""),
        Some("root=/dev/mmcblk0p9 rootwait rw"),
        Some(" root=it's \"odd\"; $x ${y}  "),
    ];
    for r1 in roots {
        for r2 in roots {
            for nb in [None, Some("rootfs"), Some("otafs")] {
                let mut v = base.clone();
                set(&mut v, "rootfs", r1);
                set(&mut v, "otafs", r2);
                set(&mut v, "next_boot", nb);
                out.push(v);
            }
        }
    }
    out
}

/// A value for a variable that should name a slot: unset (30 %), empty, a slot (40 %),
/// garbage or random text.
fn slot_like(names: &[String]) -> BoxedStrategy<Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(String::new())),
        4 => prop::sample::select(names.to_vec()).prop_map(Some),
        1 => prop::sample::select(GARBAGE).prop_map(|g| Some(g.to_string())),
        1 => printable(12).prop_map(Some),
    ]
    .boxed()
}

/// A value for a counter: unset (30 %), a digit (50 %), counter garbage or random text.
fn counter() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        3 => Just(None),
        5 => (0u8..10).prop_map(|d| Some(d.to_string())),
        1 => prop::sample::select(COUNTER_GARBAGE).prop_map(|g| Some(g.to_string())),
        1 => printable(3).prop_map(Some),
    ]
    .boxed()
}

/// What a case does to a slot's root arguments (kept as the default 70 % of the time).
#[derive(Debug, Clone)]
enum RootEdit {
    Keep,
    Unset,
    Empty,
    Text(String),
}

/// The random cases over `cfg` (configuration `index` of the run), its default environment
/// `base` changed: every policy variable unset, a slot, garbage or random text, with a bias
/// towards active trials (the interesting branch); sometimes rollback records, bad flags,
/// legacy variables and odd root arguments. Shrinking (proptest's) goes towards unset
/// variables and the default environment.
pub fn case_strategy(index: usize, cfg: &SlotConfig, base: &Vars) -> BoxedStrategy<Case> {
    let names: Vec<String> = cfg.slots.iter().map(|s| s.name.clone()).collect();
    let base = base.clone();
    let policy = (
        slot_like(&names),
        prop::bool::weighted(0.4),
        slot_like(&names),
        prop::option::weighted(0.4, slot_like(&names)),
        counter(),
        counter(),
        slot_like(&names),
    );
    let reasons = vec!["bootlimit", "marked bad", "x y"];
    let rollback = prop::option::weighted(
        0.3,
        (
            prop::sample::select(names.clone()),
            prop::sample::select(reasons),
        ),
    );
    let per_slot = prop::collection::vec(
        (
            prop::option::weighted(
                0.15,
                prop_oneof![Just("bootlimit".to_string()), printable(8)],
            ),
            prop_oneof![
                7 => Just(RootEdit::Keep),
                1 => Just(RootEdit::Unset),
                1 => Just(RootEdit::Empty),
                1 => printable(40).prop_map(RootEdit::Text),
            ],
        ),
        names.len(),
    );
    let legacy = prop::bool::weighted(0.2);
    let bootargs_base = prop::option::weighted(0.1, printable(20));
    (policy, rollback, per_slot, legacy, bootargs_base)
        .prop_map(
            move |(
                (nb, trial_is_nb, trial, once, tries, limit, prev),
                rollback,
                per_slot,
                legacy,
                bootargs_base,
            )| {
                let mut v = base.clone();
                set(&mut v, "next_boot", nb.as_deref());
                let trial = if trial_is_nb { nb.clone() } else { trial };
                set(&mut v, "zbot_trial", trial.as_deref());
                set(&mut v, "zbot_once", once.flatten().as_deref());
                set(&mut v, "zbot_tries", tries.as_deref());
                set(&mut v, "zbot_bootlimit", limit.as_deref());
                set(&mut v, "zbot_prev", prev.as_deref());
                if let Some((slot, reason)) = rollback {
                    set(&mut v, "zbot_rb_slot", Some(&slot));
                    set(&mut v, "zbot_rb_reason", Some(reason));
                }
                for (n, (bad, root)) in names.iter().zip(per_slot) {
                    if let Some(reason) = bad {
                        set(&mut v, &format!("zbot_bad_{n}"), Some(&reason));
                    }
                    match root {
                        RootEdit::Keep => {}
                        RootEdit::Unset => set(&mut v, n, None),
                        RootEdit::Empty => set(&mut v, n, Some("")),
                        RootEdit::Text(r) => set(&mut v, n, Some(&r)),
                    }
                }
                if legacy {
                    set(&mut v, "first_boot", Some("1"));
                    set(&mut v, "root", Some("root=/dev/mmcblk0p4 rootwait rw"));
                }
                if let Some(b) = bootargs_base {
                    set(&mut v, "bootargs_base", Some(&b));
                }
                Case {
                    cfg: index,
                    stored: v,
                }
            },
        )
        .boxed()
}

/// The random cases of a run: each configuration equally often.
pub fn cases_strategy(cfgs: &[(SlotConfig, Generated)], bases: &[Vars]) -> BoxedStrategy<Case> {
    Union::new(
        cfgs.iter()
            .zip(bases)
            .enumerate()
            .map(|(i, ((c, _), b))| case_strategy(i, c, b)),
    )
    .boxed()
}

/// `n` random cases from `runner`, each with its proptest value tree (kept to shrink a case
/// that fails: [`shrink`]).
pub fn random_cases(
    runner: &mut TestRunner,
    strategy: &BoxedStrategy<Case>,
    n: usize,
) -> Vec<Box<dyn ValueTree<Value = Case>>> {
    (0..n)
        .map(|_| {
            strategy
                .new_tree(runner)
                .expect("the case strategies never reject")
        })
        .collect()
}

/// What U-Boot did with one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbootOutcome {
    /// The slot in `zb_slot` when the final command ran.
    pub slot: Option<String>,
    /// `bootargs` after the script.
    pub bootargs: Option<String>,
    /// `saveenv` calls.
    pub saves: usize,
    /// Times the final boot command ran (must be 1).
    pub bootm: usize,
    /// `/uboot.env` after the case (decoded as U-Boot would load it), if readable.
    pub file: Option<Vec<u8>>,
    /// Lines that show hush trouble (`syntax error`, `Unknown command`).
    pub trouble: Vec<String>,
}

impl UbootOutcome {
    /// One line for reproducers: slot, bootargs, saves and the saved env relative to `base`.
    pub fn summary(&self, base: &Vars) -> String {
        let saved = match &self.file {
            Some(f) if self.saves > 0 => match codec::decode(f, Layout::Single) {
                Ok(d) => describe(&uboot_view(&d.vars), base),
                Err(e) => format!("undecodable ({e})"),
            },
            _ => "-".into(),
        };
        format!(
            "slot {:?}, bootargs {:?}, saveenv x{}, final command x{}, saved: {saved}{}",
            self.slot,
            self.bootargs,
            self.saves,
            self.bootm,
            if self.trouble.is_empty() {
                String::new()
            } else {
                format!(", hush: {:?}", self.trouble)
            }
        )
    }
}

/// What the engine says about one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The slot name.
    pub slot: String,
    /// The full `bootargs`.
    pub bootargs: String,
    /// The environment saved, if any (U-Boot's in-memory view).
    pub saved: Option<Vars>,
    /// The engine's explanation.
    pub explain: String,
}

/// The engine's decision for a stored environment.
pub fn expected(cfg: &SlotConfig, stored: &Vars) -> Expected {
    let view = uboot_view(stored);
    let d = bootloader_step(cfg, &view);
    let base = view
        .get("bootargs_base")
        .map(|b| b.into_owned())
        .unwrap_or_default();
    let k = d.kernel_args(cfg);
    let bootargs = if base.is_empty() {
        k
    } else {
        format!("{base} {k}")
    };
    let saved = if d.changes.is_empty() {
        None
    } else {
        let mut s = view.clone();
        s.apply(&d.changes).expect("valid names");
        Some(s)
    };
    Expected {
        slot: cfg.name(d.slot).to_string(),
        bootargs,
        saved,
        explain: d.explain(cfg),
    }
}

/// Compare; `prev_file` is the env file before the case (for "nothing written").
pub fn compare(exp: &Expected, got: &UbootOutcome, prev_file: Option<&[u8]>) -> Result<(), String> {
    let mut diffs = Vec::new();
    if !got.trouble.is_empty() {
        diffs.push(format!("hush trouble: {:?}", got.trouble));
    }
    if got.bootm != 1 {
        diffs.push(format!(
            "final boot command ran {} times (want 1)",
            got.bootm
        ));
    }
    if got.slot.as_deref() != Some(exp.slot.as_str()) {
        diffs.push(format!(
            "slot: engine {:?}, U-Boot {:?}",
            exp.slot, got.slot
        ));
    }
    if got.bootargs.as_deref() != Some(exp.bootargs.as_str()) {
        diffs.push(format!(
            "bootargs: engine {:?}, U-Boot {:?}",
            exp.bootargs, got.bootargs
        ));
    }
    let want_saves = usize::from(exp.saved.is_some());
    if got.saves != want_saves {
        diffs.push(format!(
            "saveenv calls: engine {want_saves}, U-Boot {}",
            got.saves
        ));
    }
    match (&exp.saved, &got.file) {
        (Some(want), Some(file)) => match codec::decode(file, Layout::Single) {
            Ok(d) => {
                let have = uboot_view(&d.vars);
                if &have != want {
                    diffs.push(format!("saved env differs: {}", var_diff(want, &have)));
                }
            }
            Err(e) => diffs.push(format!("saved env does not decode: {e}")),
        },
        (Some(_), None) => diffs.push("engine saves, no env file found afterwards".into()),
        (None, file) => {
            if let Some(prev) = prev_file {
                if file.as_deref() != Some(prev) {
                    diffs.push("engine writes nothing, but /uboot.env changed".into());
                }
            }
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// Names whose values differ between two environments, with both values.
pub fn var_diff(want: &Vars, have: &Vars) -> String {
    let mut names: Vec<Vec<u8>> = want.iter().map(|(n, _)| n.to_vec()).collect();
    names.extend(have.iter().map(|(n, _)| n.to_vec()));
    names.sort();
    names.dedup();
    let mut s = String::new();
    for n in names {
        let (a, b) = (want.get_bytes(&n), have.get_bytes(&n));
        if a != b {
            let show = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
            let _ = write!(
                s,
                "{}: engine {:?} U-Boot {:?}; ",
                String::from_utf8_lossy(&n),
                show(a),
                show(b)
            );
        }
    }
    s
}

/// Largest `-c` argument per sandbox process (Linux limits one argument to 128 KiB).
const MAX_COMMAND: usize = 120_000;

/// What U-Boot printed for case `i` of a driver run (between `@@case i` and `@@end i`): the
/// slot, `bootargs`, the saves, the final command and any trouble; `file` is left to the
/// caller (where the save went depends on the backend). `None`: no output for that case.
pub fn case_outcome(out: &str, i: usize) -> Option<UbootOutcome> {
    let (start, end) = (format!("@@case {i}\n"), format!("@@end {i}\n"));
    let seg = out
        .find(&start)
        .and_then(|a| out[a..].find(&end).map(|b| &out[a + start.len()..a + b]))?;
    let mut o = UbootOutcome {
        slot: None,
        bootargs: None,
        saves: 0,
        bootm: 0,
        file: None,
        trouble: vec![],
    };
    for l in seg.lines() {
        if let Some(s) = l.strip_prefix("@@slot ") {
            o.slot = Some(s.to_string());
        } else if let Some(b) = l.strip_prefix("bootargs=") {
            o.bootargs = Some(b.to_string());
        } else if l.starts_with("Saving Environment to") {
            o.saves += 1;
        } else if l == "@@zbot-bootm" {
            o.bootm += 1;
        } else if l.contains("syntax error") || l.contains("Unknown command") {
            o.trouble.push(l.to_string());
        }
    }
    Some(o)
}

/// Run `cases` in the sandbox on `disk`, files in `dir` (the sandbox runs there, so hostfs
/// paths are relative). As many cases as fit in one command line share a U-Boot process.
pub fn run_batch(disk: &DiskImage, dir: &Path, cases: &[Vars]) -> Result<Vec<UbootOutcome>> {
    if disk.path().parent() != Some(dir) {
        return Err(HelperError("run_batch: the disk must be in dir".into()));
    }
    let mut commands = vec![String::new()];
    for (i, c) in cases.iter().enumerate() {
        let data = codec::encode_data(c, c.encoded_len())
            .map_err(|e| HelperError(format!("case {i} does not encode: {e}")))?;
        std::fs::write(dir.join(format!("c{i}")), data)?;
        let one = format!(
            "echo @@case {i}; HUSH_NO_EVAL=0; load hostfs - 0x100000 c{i}; \
             env import -d -b 0x100000 ${{filesize}}; run zbot-policy; HUSH_NO_EVAL=0; \
             echo @@slot ${{zb_slot}}; printenv bootargs; ext4load host 0:2 0x200000 /uboot.env; \
             save hostfs - 0x200000 s{i} {size:#x}; echo @@end {i}; ",
            size = crate::ENV_SIZE
        );
        if commands.last().expect("one").len() + one.len() > MAX_COMMAND {
            commands.push(String::new());
        }
        commands.last_mut().expect("one").push_str(&one);
    }
    let mut out = String::new();
    for cmd in commands {
        let run = Sandbox::new(disk)
            .timeout(std::time::Duration::from_secs(600))
            .run(&format!("{cmd}echo @@done"))?;
        let o = run.script_output();
        if !o.contains("@@done") {
            return Err(HelperError(format!(
                "the driver did not finish; output tail:\n{}",
                &o[o.len().saturating_sub(3000)..]
            )));
        }
        out.push_str(o);
    }
    let mut res = Vec::with_capacity(cases.len());
    for (i, _) in cases.iter().enumerate() {
        let mut o =
            case_outcome(&out, i).ok_or_else(|| HelperError(format!("no output for case {i}")))?;
        let f = dir.join(format!("s{i}"));
        o.file = std::fs::read(&f).ok();
        let _ = std::fs::remove_file(&f);
        let _ = std::fs::remove_file(dir.join(format!("c{i}")));
        res.push(o);
    }
    Ok(res)
}

/// A fresh disk for a campaign, holding an initial `/uboot.env` (so "unchanged" is defined).
pub fn campaign_disk(dir: &Path) -> Result<(DiskImage, Vec<u8>)> {
    let disk = DiskImage::create(dir.join("disk.img"))?;
    let init: Vars = [("zbot_campaign", "initial")].into_iter().collect();
    let img = codec::encode(&init, crate::ENV_SIZE, Layout::Single, 0)
        .map_err(|e| HelperError(e.to_string()))?;
    disk.write_file("/uboot.env", &img)?;
    Ok((disk, img))
}

/// The policy-relevant part of a case, for reproducers: every variable that differs from the
/// configuration's default environment.
pub fn describe(stored: &Vars, base: &Vars) -> String {
    let mut s = String::new();
    for (n, v) in stored.iter() {
        if base.get_bytes(n) != Some(v) {
            let _ = write!(
                s,
                "{}={:?} ",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            );
        }
    }
    for (n, _) in base.iter() {
        if stored.get_bytes(n).is_none() {
            let _ = write!(s, "{}=<unset> ", String::from_utf8_lossy(n));
        }
    }
    if s.is_empty() {
        s.push_str("(the default environment)");
    }
    s
}

/// Shrink a failing random case with proptest's value tree: simplify while the case still
/// fails, step back (complicate) when it passes, one sandbox run per step, at most
/// `max_steps` runs. Returns the smallest failing case found, the engine's and U-Boot's view.
pub fn shrink(
    disk: &DiskImage,
    dir: &Path,
    cfgs: &[(SlotConfig, Generated)],
    tree: &mut dyn ValueTree<Value = Case>,
    max_steps: usize,
) -> Result<(Case, Expected, UbootOutcome)> {
    let fails = |c: &Case| -> Result<Option<(Expected, UbootOutcome)>> {
        let got = run_batch(disk, dir, std::slice::from_ref(&c.stored))?.remove(0);
        let exp = expected(&cfgs[c.cfg].0, &c.stored);
        Ok(compare(&exp, &got, None).err().map(|_| (exp, got)))
    };
    let mut best = tree.current();
    let mut last = fails(&best)?.ok_or_else(|| HelperError("case does not fail alone".into()))?;
    let mut more = tree.simplify();
    let mut steps = 0;
    while more && steps < max_steps {
        steps += 1;
        let c = tree.current();
        match fails(&c)? {
            Some(r) => {
                best = c;
                last = r;
                more = tree.simplify();
            }
            None => more = tree.complicate(),
        }
    }
    Ok((best, last.0, last.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The random cases are reproducible from the seed, cover both configurations, and shrink
    /// (simplifying while "still failing") towards the default environment with the policy
    /// variables unset.
    #[test]
    fn random_cases_are_seeded_and_shrink_towards_the_default_environment() {
        let cfgs = configs();
        let bases: Vec<Vars> = cfgs.iter().map(|(_, g)| base_env(g)).collect();
        let strategy = cases_strategy(&cfgs, &bases);
        let draw = |seed| {
            random_cases(&mut seeded_runner(seed), &strategy, 200)
                .iter()
                .map(|t| t.current())
                .map(|c| (c.cfg, describe(&c.stored, &bases[c.cfg])))
                .collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        assert!(a.iter().any(|c| c.0 == 0) && a.iter().any(|c| c.0 == 1));
        let active_trials = random_cases(&mut seeded_runner(1), &strategy, 200)
            .iter()
            .map(|t| t.current().stored)
            .filter(|v| v.get("zbot_trial").is_some() && v.get("zbot_trial") == v.get("next_boot"))
            .count();
        assert!(
            active_trials > 40,
            "biased towards active trials: {active_trials}"
        );

        let mut trees = random_cases(&mut seeded_runner(3), &strategy, 20);
        for t in trees.iter_mut() {
            while t.simplify() {}
            let c = t.current();
            let mut left = describe(&c.stored, &bases[c.cfg]);
            for n in POLICY_VARS {
                left = left.replace(&format!("{n}=<unset> "), "");
            }
            assert!(
                left == "(the default environment)" || left.is_empty(),
                "shrunk to: {left}"
            );
        }
    }
}
