//! The env backend decided by measurement (docs/env-backend.md): power cuts inside U-Boot's own
//! `saveenv`, the field's ext4 file against the redundant FAT pair (`CONFIG_ENV_FAT_FILE_REDUND`),
//! both at the field's size (`ENV_SIZE`, 192 KiB), on the real sandbox U-Boot 2023.01, at the
//! same seeded fractions of each save in the same run.
//!
//! Each cut: a fresh copy of the backend's pristine card (ext4: `/uboot.env` holding the old
//! env; FAT: both copies valid, the older one is the one the save overwrites), the sandbox
//! loads the env, sets `gen=new` and saves; it is SIGKILLed a delay after it prints the line `@@saving` just before `saveenv` (the
//! sandbox console is line-buffered: "Saving Environment to ..." appears only once the save is
//! done). Every write the process issued before the kill is in the image file (the
//! page cache survives the process), nothing after: a power cut at that instant for a device
//! that writes in order. Then a second sandbox loads the env the way the board does at power-on
//! and prints `gen`: `old`, `new`, or nothing (lost: U-Boot boots its compiled-in defaults).
//!
//! Each cut is a fraction uniform in 0..1.25 of the backend's own median complete save (three
//! uncut saves measured first); the same fractions for both backends, as the block replay uses
//! the same fractions of each save's writes. Default: `ZBOT_ENV_CUTS` = 12 cuts per backend; the campaign:
//!
//! ```sh
//! ZBOT_ENV_CUTS=300 cargo test -p zbot-tests --release --test env_backend_cuts -- --nocapture
//! ```
//!
//! Also measured (printed, written in docs/env-backend.md): the save's wall time in the sandbox
//! and the bytes it writes to the card (strace of the sandbox's writes to the image file).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zbot_tests::cuts::{cut_image, replay_points, replay_prefixes, seeded_cuts, traced_writes};
use zbot_tests::{find_program, DiskImage, Peer, Sandbox, ENV_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// The field's: `/uboot.env` in the ext4 filesystem on partition 2.
    Ext4File,
    /// `uboot.env` + `uboot-redund.env` on the FAT partition 1, U-Boot's redundant format.
    FatPair,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Ext4File => "ext4 file (field)",
            Backend::FatPair => "FAT redundant pair",
        }
    }
    fn peer(self) -> Peer {
        match self {
            Backend::Ext4File => Peer::Sandbox,
            Backend::FatPair => Peer::SandboxRedund,
        }
    }
    fn select(self) -> &'static str {
        match self {
            Backend::Ext4File => "EXT4",
            Backend::FatPair => "FAT",
        }
    }
    fn sandbox(self, disk: &DiskImage) -> Sandbox<'_> {
        match self {
            Backend::Ext4File => Sandbox::new(disk),
            Backend::FatPair => Sandbox::redundant(disk),
        }
    }
}

/// A payload that makes the env realistic (the board's default env is a few KiB).
fn payload() -> String {
    (0..40)
        .map(|i| format!("setenv zb_pad{i} {}; ", "x".repeat(60 + i)))
        .collect()
}

/// The pristine card of `b`: the env loads with `gen=old` and, for the pair, the copy the
/// next save overwrites holds `gen=older`.
fn pristine(b: Backend, dir: &Path) -> DiskImage {
    let disk = DiskImage::create(dir.join(format!("pristine-{:?}.img", b))).unwrap();
    let pad = payload();
    let script = match b {
        Backend::Ext4File => format!("{pad}setenv gen old; saveenv"),
        Backend::FatPair => {
            disk.mkfs_p1_fat().unwrap();
            format!("{pad}setenv gen older; saveenv; setenv gen old; saveenv")
        }
    };
    let r = b.sandbox(&disk).run(&script).unwrap();
    assert!(
        r.success(),
        "{}: making the pristine card:\n{}",
        b.name(),
        r.output
    );
    assert_eq!(loaded_gen(b, disk.path()).as_deref(), Some("old"));
    disk
}

/// What U-Boot loads at the next power-on: the value of `gen`, or `None` when the env is lost
/// (no valid copy: the compiled-in default env, which has no `gen`).
fn loaded_gen(b: Backend, disk: &Path) -> Option<String> {
    let o = Command::new(b.peer().require())
        .arg("-c")
        .arg(format!(
            "host bind 0 {}; env select {}; env load; echo @@loaded; printenv gen",
            disk.display(),
            b.select()
        ))
        .current_dir(disk.parent().unwrap())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).replace('\r', "");
    let after = out.split("@@loaded").nth(1).unwrap_or("");
    after
        .lines()
        .find_map(|l| l.strip_prefix("gen="))
        .map(String::from)
}

struct CutRun {
    /// U-Boot printed "Saving Environment to".
    started: bool,
    /// The save had finished (U-Boot printed the end marker) before the kill.
    finished: bool,
    /// From "Saving Environment to" to the end marker, when not killed before.
    save_time: Option<Duration>,
}

fn find(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// Run the save on `disk`, SIGKILL the sandbox `delay` after "Saving Environment to" (never,
/// with `None`).
fn save_and_cut(b: Backend, disk: &Path, delay: Option<Duration>) -> CutRun {
    let script = format!(
        "host bind 0 {}; env select {sel}; env load; setenv gen new; echo @@saving; saveenv; echo @@saved",
        disk.display(),
        sel = b.select()
    );
    let mut child = Command::new(b.peer().require())
        .arg("-c")
        .arg(script)
        .current_dir(disk.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<(u8, Instant)>();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let (mut s, mut e) = (false, false);
        while let Ok(n) = so.read(&mut buf) {
            if n == 0 {
                break;
            }
            let now = Instant::now();
            seen.extend_from_slice(&buf[..n]);
            if !s && find(&seen, b"@@saving") {
                s = true;
                let _ = tx.send((0, now));
            }
            if !e && find(&seen, b"@@saved") {
                e = true;
                let _ = tx.send((1, now));
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let start = rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .map(|(_, t)| t);
    if let (Some(t), Some(d)) = (start, delay) {
        let until = t + d;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        let _ = child.kill();
    }
    child.wait().unwrap();
    let out = reader.join().unwrap();
    let end = rx.try_iter().find(|(k, _)| *k == 1).map(|(_, t)| t);
    assert!(
        start.is_some(),
        "{}: the save never started:\n{out}",
        b.name()
    );
    CutRun {
        started: start.is_some(),
        finished: end.is_some(),
        save_time: start.zip(end).map(|(s, e)| e - s),
    }
}

/// Bytes the sandbox writes to the card image in one complete save (strace of its writes;
/// loading the env only reads).
fn bytes_written(b: Backend, disk: &Path) -> Option<u64> {
    let strace = find_program("strace")?;
    let trace = disk.with_extension("strace");
    let script = format!(
        "host bind 0 {}; env select {sel}; env load; setenv gen new; saveenv",
        disk.display(),
        sel = b.select()
    );
    let o = Command::new(strace)
        .args([
            "-f",
            "-y",
            "-e",
            "trace=write,pwrite64,writev,pwritev",
            "-o",
        ])
        .arg(&trace)
        .arg(b.peer().require())
        .arg("-c")
        .arg(script)
        .current_dir(disk.parent().unwrap())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    let name = disk.file_name()?.to_str()?.to_string();
    let t = std::fs::read_to_string(&trace).ok()?;
    Some(
        t.lines()
            .filter(|l| l.contains(&format!("{name}>")))
            .filter_map(|l| l.rsplit("= ").next()?.trim().parse::<u64>().ok())
            .sum(),
    )
}

/// The sandbox command of one complete save (`traced_writes` records its writes to the card).
fn save_command(b: Backend, disk: &Path) -> Command {
    let script = format!(
        "host bind 0 {}; env select {sel}; env load; setenv gen new; saveenv",
        disk.display(),
        sel = b.select()
    );
    let mut c = Command::new(b.peer().require());
    c.arg("-c").arg(script).current_dir(disk.parent().unwrap());
    c
}

/// Every cut point of a save at the block layer (the same fractions of the save's bytes for
/// both backends): the env U-Boot loads after each. Default: `ZBOT_ENV_REPLAY` = 32 points per
/// backend, evenly spread; `all` (or any number above the save's sectors) checks every sector.
#[test]
fn env_loss_at_every_block_of_saveenv_ext4_file_vs_fat_pair() {
    let want = std::env::var("ZBOT_ENV_REPLAY").unwrap_or_else(|_| "32".into());
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for b in [Backend::Ext4File, Backend::FatPair] {
        let p = pristine(b, dir.path());
        let bytes = std::fs::read(p.path()).unwrap();
        let work = dir.path().join(format!("trace-{b:?}.img"));
        std::fs::copy(p.path(), &work).unwrap();
        let writes = traced_writes(&save_command(b, &work), &work);
        // The replay of every write is exactly what the save left.
        let total: usize = writes.iter().map(|w| w.1.len()).sum();
        assert!(
            writes.iter().all(|w| w.1.len() % 512 == 0),
            "{}: writes of whole sectors",
            b.name()
        );
        let sectors = total / 512;
        assert_eq!(
            cut_image(&bytes, &writes, sectors),
            std::fs::read(&work).unwrap(),
            "{}: the traced writes replay to the saved card",
            b.name()
        );
        let (_, points) = replay_points(sectors, 32, false);
        let cut = dir.path().join(format!("cut-{b:?}.img"));
        let [mut old, mut new, mut lost] = [0usize; 3];
        let mut lost_at = Vec::new();
        replay_prefixes(&bytes, &writes, &points, &cut, |k| {
            match loaded_gen(b, &cut).as_deref() {
                Some("old") => old += 1,
                Some("new") => new += 1,
                None => {
                    lost += 1;
                    lost_at.push(k);
                }
                Some(x) => panic!("{}: cut after {k} sectors loads gen={x}", b.name()),
            }
        });
        let first_loss = lost_at.first().copied();
        report.push(format!(
            "  {:20} {} writes, {total} bytes ({sectors} sectors) per save; {} cut points: old {old}  new {new}  LOST {lost} ({:.1} %){}",
            b.name(),
            writes.len(),
            points.len(),
            100.0 * lost as f64 / points.len() as f64,
            first_loss.map_or(String::new(), |f| format!(", lost from sector {f} to {}", lost_at.last().unwrap()))
        ));
        if b == Backend::FatPair {
            assert_eq!(lost, 0, "the redundant FAT pair lost the env: {lost_at:?}");
        }
    }
    eprintln!(
        "env backend, every block of saveenv (ZBOT_ENV_REPLAY={want}):\n{}",
        report.join("\n")
    );
}

#[test]
fn env_loss_under_saveenv_cuts_ext4_file_vs_fat_pair() {
    let cuts = zbot_tests::env_number::<usize>("ZBOT_ENV_CUTS", 12);
    let seed = zbot_tests::env_number::<usize>("ZBOT_ENV_CUT_SEED", 1414) as u64;
    let dir = tempfile::tempdir().unwrap();
    let backends = [Backend::Ext4File, Backend::FatPair];
    let pristine: Vec<DiskImage> = backends.iter().map(|&b| pristine(b, dir.path())).collect();
    let work: Vec<_> = backends
        .iter()
        .map(|b| dir.path().join(format!("work-{b:?}.img")))
        .collect();

    // The complete save, three times each: its wall time, and the range of cut instants.
    let mut times = vec![Vec::new(); backends.len()];
    for (k, &b) in backends.iter().enumerate() {
        for _ in 0..3 {
            std::fs::copy(pristine[k].path(), &work[k]).unwrap();
            let r = save_and_cut(b, &work[k], None);
            assert!(
                r.started && r.finished,
                "{}: the save did not finish",
                b.name()
            );
            times[k].push(r.save_time.unwrap());
            // A finished save is the new env, for every backend.
            assert_eq!(
                loaded_gen(b, &work[k]).as_deref(),
                Some("new"),
                "{}",
                b.name()
            );
        }
    }
    // Each cut is one fraction of the save, the same for every backend, applied to that
    // backend's own median save (times 1.25, so some cuts land just after it): one absolute
    // range from the slowest backend put most of a faster one's cuts after its save, and a
    // loaded host made that worse.
    let medians: Vec<Duration> = times
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    const PPM: u64 = 1_000_000;
    let at = |k: usize, fraction: Duration| {
        let span = medians[k].as_nanos() as u64 * 5 / 4;
        Duration::from_nanos(span * fraction.as_micros() as u64 / PPM)
    };

    // Per backend: old, new, lost, killed inside the save.
    let mut tally = vec![[0usize; 4]; backends.len()];
    let mut failures = Vec::new();
    // The drawn delay in microseconds is the fraction in parts per million.
    for cut in seeded_cuts(seed, cuts, 1, Duration::from_micros(PPM)) {
        let i = cut.index;
        for (k, &b) in backends.iter().enumerate() {
            let delay = at(k, cut.delay);
            std::fs::copy(pristine[k].path(), &work[k]).unwrap();
            let r = save_and_cut(b, &work[k], Some(delay));
            if !r.finished {
                tally[k][3] += 1;
            }
            match loaded_gen(b, &work[k]).as_deref() {
                Some("old") => tally[k][0] += 1,
                Some("new") => tally[k][1] += 1,
                None => tally[k][2] += 1,
                Some(other) => failures.push(format!(
                    "cut {i} ({delay:?}), {}: loaded gen={other}, neither old nor new",
                    b.name()
                )),
            }
        }
    }
    let bytes: Vec<_> = backends
        .iter()
        .zip(&work)
        .zip(&pristine)
        .map(|((&b, w), p)| {
            std::fs::copy(p.path(), w).unwrap();
            bytes_written(b, w)
        })
        .collect();
    eprintln!(
        "env backend cuts: {cuts} cuts per backend (seed {seed}, the same fractions 0..1.25 of each backend's median save, after the echo before saveenv), env {ENV_SIZE:#x} bytes"
    );
    for (k, &b) in backends.iter().enumerate() {
        let [old, new, lost, inside] = tally[k];
        let t = &times[k];
        eprintln!(
            "  {:20} old {old:4}  new {new:4}  LOST {lost:4} ({:.1} %)  killed inside the save {inside:4}; \
             complete save {:?} (of {t:?}); bytes written per save {}",
            b.name(),
            100.0 * lost as f64 / cuts.max(1) as f64,
            t.iter().min().unwrap(),
            bytes[k].map_or("n/a (no strace)".into(), |n| n.to_string())
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The candidate never loses the env; and the run is no test if the cuts missed the save.
    let fat = backends
        .iter()
        .position(|&b| b == Backend::FatPair)
        .unwrap();
    assert_eq!(
        tally[fat][2], 0,
        "the redundant FAT pair lost the env in {} of {cuts} cuts",
        tally[fat][2]
    );
    for (k, &b) in backends.iter().enumerate() {
        assert!(
            // A quarter: the sandbox's save time varies several-fold on a loaded host.
            cuts < 8 || tally[k][3] * 4 >= cuts,
            "{}: only {} of {cuts} cuts landed inside the save: the cut range is wrong",
            b.name(),
            tally[k][3]
        );
    }
}
