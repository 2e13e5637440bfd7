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
use std::fmt::Write as _;
use std::path::Path;
use uboot_scripts::{Board, Generated};

/// A small seeded PRNG (splitmix64): reproducible cases without extra dependencies.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// One element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    /// True with probability `pct`%.
    pub fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
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

fn random_string(rng: &mut Rng, max: usize) -> String {
    let n = 1 + rng.below(max);
    (0..n).map(|_| *rng.pick(PRINTABLE) as char).collect()
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

/// A random case over `cfg`: every policy variable unset, a slot, garbage or random text;
/// sometimes rollback records, bad flags, legacy variables and odd root arguments.
pub fn random_case(rng: &mut Rng, cfg: &SlotConfig, base: &Vars) -> Vars {
    let names: Vec<&str> = cfg.slots.iter().map(|s| s.name.as_str()).collect();
    let mut v = base.clone();
    let slot_like = |rng: &mut Rng| -> Option<String> {
        match rng.below(10) {
            0..=2 => None,
            3 => Some(String::new()),
            4..=7 => Some(rng.pick(&names).to_string()),
            8 => Some(rng.pick(GARBAGE).to_string()),
            _ => Some(random_string(rng, 12)),
        }
    };
    let counter = |rng: &mut Rng| -> Option<String> {
        match rng.below(10) {
            0..=2 => None,
            3..=7 => Some(rng.below(10).to_string()),
            8 => Some(rng.pick(COUNTER_GARBAGE).to_string()),
            _ => Some(random_string(rng, 3)),
        }
    };
    // Bias towards active trials, the interesting branch.
    let nb = slot_like(rng);
    set(&mut v, "next_boot", nb.as_deref());
    let trial = if rng.chance(40) {
        nb.clone()
    } else {
        slot_like(rng)
    };
    set(&mut v, "zbot_trial", trial.as_deref());
    let once = if rng.chance(60) { None } else { slot_like(rng) };
    set(&mut v, "zbot_once", once.as_deref());
    let t = counter(rng);
    set(&mut v, "zbot_tries", t.as_deref());
    let l = counter(rng);
    set(&mut v, "zbot_bootlimit", l.as_deref());
    let p = slot_like(rng);
    set(&mut v, "zbot_prev", p.as_deref());
    if rng.chance(30) {
        let s = *rng.pick(&names);
        set(&mut v, "zbot_rb_slot", Some(s));
        let r = *rng.pick(&["bootlimit", "marked bad", "x y"]);
        set(&mut v, "zbot_rb_reason", Some(r));
    }
    for n in &names {
        if rng.chance(15) {
            let reason = if rng.chance(50) {
                "bootlimit".to_string()
            } else {
                random_string(rng, 8)
            };
            set(&mut v, &format!("zbot_bad_{n}"), Some(&reason));
        }
        match rng.below(10) {
            0 => set(&mut v, n, None),
            1 => set(&mut v, n, Some("")),
            2 => {
                let r = random_string(rng, 40);
                set(&mut v, n, Some(&r))
            }
            _ => {}
        }
    }
    if rng.chance(20) {
        set(&mut v, "first_boot", Some("1"));
        set(&mut v, "root", Some("root=/dev/mmcblk0p4 rootwait rw"));
    }
    if rng.chance(10) {
        let r = random_string(rng, 20);
        set(&mut v, "bootargs_base", Some(&r));
    }
    v
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
        let start = format!("@@case {i}\n");
        let end = format!("@@end {i}\n");
        let seg = out
            .find(&start)
            .and_then(|a| out[a..].find(&end).map(|b| &out[a + start.len()..a + b]))
            .ok_or_else(|| HelperError(format!("no output for case {i}")))?;
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

/// Shrink a failing case: drop or restore-to-default one variable at a time while it still
/// fails (one sandbox run per step), then describe it.
pub fn shrink(
    disk: &DiskImage,
    dir: &Path,
    cfg: &SlotConfig,
    base: &Vars,
    case: &Vars,
) -> Result<(Vars, Expected, UbootOutcome)> {
    let fails = |v: &Vars| -> Result<Option<(Expected, UbootOutcome)>> {
        let got = run_batch(disk, dir, std::slice::from_ref(v))?.remove(0);
        let exp = expected(cfg, v);
        Ok(compare(&exp, &got, None).err().map(|_| (exp, got)))
    };
    let mut cur = case.clone();
    let mut last = fails(&cur)?.ok_or_else(|| HelperError("case does not fail alone".into()))?;
    let names: Vec<String> = cur
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    for n in names {
        let mut t = cur.clone();
        match base.get(&n) {
            Some(b) if cur.get(&n).as_deref() != Some(&*b) => set(&mut t, &n, Some(&b)),
            Some(_) => continue,
            None => {
                t.remove(&n);
            }
        }
        if let Some(r) = fails(&t)? {
            cur = t;
            last = r;
        }
    }
    Ok((cur, last.0, last.1))
}
