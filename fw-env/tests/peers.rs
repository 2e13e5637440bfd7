//! The matrix against real peers: every writer's result is read by every reader, for single
//! and redundant environments, wrapped flags, one corrupt copy, both corrupt, and a nearly
//! full environment; plus real U-Boot (sandbox) loading what fw-env wrote and fw-env reading
//! what U-Boot's `saveenv` wrote.
//!
//! Writers and readers: fw-env (ours), libubootenv 0.3.2 (Debian), U-Boot 2023.01 `tools/env`
//! (built from Debian's source by `qemu/build-uboot.sh tools`). A missing peer fails the test
//! with the command that installs or builds it.

mod common;
use common::*;
use fw_env::codec::{self, Layout};
use zbot_tests::{DiskImage, Peer, Sandbox};

use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ours,
    Libubootenv,
    UbootTools,
}

const TOOLS: [Tool; 3] = [Tool::Ours, Tool::Libubootenv, Tool::UbootTools];

/// The defaults text given to tools that take one (ours: --defaults/-f; libubootenv: -f).
/// It has a `bootcmd`: fw-env refuses to write from defaults U-Boot could not boot with.
const DEFAULTS: &str = "bootcmd=boot\nbootdelay=1\nnext_boot=otafs\n";

struct Setup {
    case: Case,
    cfg: PathBuf,
    defaults: PathBuf,
}

impl Setup {
    fn new(files: &[(&str, Vec<u8>)], redundant: bool) -> Setup {
        let case = Case::new();
        for (name, bytes) in files {
            std::fs::write(case.path(name), bytes).unwrap();
        }
        let cfg = if redundant {
            case.config(&format!(
                "{} 0 0x4000\n{} 0 0x4000\n",
                case.path("env0").display(),
                case.path("env1").display()
            ))
        } else {
            case.config(&format!("{} 0 0x4000\n", case.path("env0").display()))
        };
        let defaults = case.path("u-boot-initial-env");
        std::fs::write(&defaults, DEFAULTS).unwrap();
        Setup {
            case,
            cfg,
            defaults,
        }
    }

    fn printenv(&self, tool: Tool) -> Command {
        let mut c = match tool {
            Tool::Ours => Command::new(self.case.bin("fw_printenv")),
            Tool::Libubootenv => Command::new(Peer::LibubootenvPrintenv.require()),
            Tool::UbootTools => Command::new(Peer::UbootPrintenv.require()),
        };
        c.arg("-c").arg(&self.cfg);
        if tool != Tool::UbootTools {
            c.arg("-f").arg(&self.defaults);
        }
        c
    }

    fn setenv(&self, tool: Tool) -> Command {
        let mut c = match tool {
            Tool::Ours => Command::new(self.case.bin("fw_setenv")),
            Tool::Libubootenv => Command::new(Peer::LibubootenvSetenv.require()),
            Tool::UbootTools => Command::new(Peer::UbootSetenv.require()),
        };
        c.arg("-c").arg(&self.cfg);
        if tool != Tool::UbootTools {
            c.arg("-f").arg(&self.defaults);
        }
        c
    }

    /// Set one variable with `tool` (one name, one value: the form all three agree on).
    fn set(&self, tool: Tool, name: &str, value: &str) {
        let o = self.setenv(tool).arg(name).arg(value).output().unwrap();
        assert!(
            o.status.success(),
            "{tool:?} fw_setenv {name} failed: {}",
            stderr(&o)
        );
    }

    /// Every variable as `tool` prints it, sorted.
    fn print_all(&self, tool: Tool) -> Vec<String> {
        let o = self.printenv(tool).output().unwrap();
        assert!(
            o.status.success(),
            "{tool:?} fw_printenv failed: {}",
            stderr(&o)
        );
        let mut lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }

    fn get(&self, tool: Tool, name: &str) -> Option<String> {
        let o = self.printenv(tool).arg(name).output().unwrap();
        let out = stdout(&o);
        out.lines()
            .next()
            .and_then(|l| l.strip_prefix(&format!("{name}=")))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

fn redund(pairs: &[(&str, &str)], flags: u8) -> Vec<u8> {
    image(pairs, Layout::Redundant, flags)
}

fn corrupt(mut b: Vec<u8>) -> Vec<u8> {
    b[100] ^= 0x5a;
    b
}

/// A starting state: files and whether the config has two copies.
struct Scenario {
    name: &'static str,
    files: Vec<(&'static str, Vec<u8>)>,
    redundant: bool,
    /// Whether no copy is valid (readers then disagree by design: U-Boot's tools use their
    /// compiled-in defaults, the others the defaults file).
    no_valid_copy: bool,
}

fn scenarios() -> Vec<Scenario> {
    let base = [
        ("next_boot", "otafs"),
        ("rootfs", "root=/dev/mmcblk0p4 rootwait rw"),
    ];
    let mut nearly_full = base.to_vec();
    let filler = "f".repeat(SIZE - 4 - 200);
    nearly_full.push(("filler", filler.as_str()));
    vec![
        Scenario {
            name: "single",
            files: vec![("env0", image(&base, Layout::Single, 0))],
            redundant: false,
            no_valid_copy: false,
        },
        Scenario {
            name: "redundant",
            files: vec![
                ("env0", redund(&base, 3)),
                ("env1", redund(&[("next_boot", "stale")], 2)),
            ],
            redundant: true,
            no_valid_copy: false,
        },
        Scenario {
            name: "redundant, wrapped flags (255 then 0)",
            files: vec![
                ("env0", redund(&[("next_boot", "stale")], 255)),
                ("env1", redund(&base, 0)),
            ],
            redundant: true,
            no_valid_copy: false,
        },
        Scenario {
            name: "redundant, next write wraps (254, 255)",
            files: vec![
                ("env0", redund(&[("next_boot", "stale")], 254)),
                ("env1", redund(&base, 255)),
            ],
            redundant: true,
            no_valid_copy: false,
        },
        Scenario {
            name: "redundant, one copy corrupt",
            files: vec![
                ("env0", corrupt(redund(&[("next_boot", "stale")], 9))),
                ("env1", redund(&base, 1)),
            ],
            redundant: true,
            no_valid_copy: false,
        },
        Scenario {
            name: "redundant, both corrupt",
            files: vec![
                ("env0", corrupt(redund(&base, 1))),
                ("env1", corrupt(redund(&base, 2))),
            ],
            redundant: true,
            no_valid_copy: true,
        },
        Scenario {
            name: "single, corrupt",
            files: vec![("env0", corrupt(image(&base, Layout::Single, 0)))],
            redundant: false,
            no_valid_copy: true,
        },
        Scenario {
            name: "single, nearly full",
            files: vec![("env0", image(&nearly_full, Layout::Single, 0))],
            redundant: false,
            no_valid_copy: false,
        },
    ]
}

/// Values that must survive every tool: spaces, `=`, and bytes hush would treat specially.
const VALUES: &[(&str, &str)] = &[
    ("spaced", "a b  c"),
    ("equals", "root=/dev/x a=b"),
    ("semi", "run a; run b"),
];

#[test]
fn every_writer_is_read_by_every_reader() {
    let mut table = Vec::new();
    for sc in scenarios() {
        for writer in TOOLS {
            let s = Setup::new(
                &sc.files
                    .iter()
                    .map(|(n, b)| (*n, b.clone()))
                    .collect::<Vec<_>>(),
                sc.redundant,
            );
            for (n, v) in VALUES {
                s.set(writer, n, v);
            }
            // The first reader's view is the reference; every reader must agree on every
            // variable we wrote, and (with a valid copy to start from) on the whole set.
            let reference = s.print_all(Tool::Ours);
            for reader in TOOLS {
                for (n, v) in VALUES {
                    assert_eq!(
                        s.get(reader, n).as_deref(),
                        Some(*v),
                        "{}: {writer:?} wrote {n}, {reader:?} read",
                        sc.name
                    );
                }
                if !sc.no_valid_copy || writer != Tool::UbootTools {
                    assert_eq!(
                        s.print_all(reader),
                        reference,
                        "{}: {writer:?} wrote, {reader:?} read all",
                        sc.name
                    );
                }
            }
            // What survives from the start is the selected copy's content.
            if !sc.no_valid_copy {
                assert_eq!(
                    s.get(Tool::Ours, "next_boot").as_deref(),
                    Some("otafs"),
                    "{}: {writer:?} kept the wrong copy",
                    sc.name
                );
            }
            table.push(format!(
                "{:40} written by {writer:?}: read back by all three",
                sc.name
            ));
        }
    }
    println!("{}", table.join("\n"));
}

/// Redundant writes: each tool writes the inactive copy with the next flag, and all agree on
/// the copy in use afterwards; through a full wrap of the counter.
#[test]
fn redundant_flags_advance_identically_through_a_wrap() {
    for writer in TOOLS {
        let s = Setup::new(
            &[
                ("env0", redund(&[("n", "0")], 253)),
                ("env1", redund(&[("n", "x")], 252)),
            ],
            true,
        );
        for i in 1..=5 {
            s.set(writer, "n", &i.to_string());
            for reader in TOOLS {
                assert_eq!(
                    s.get(reader, "n").as_deref(),
                    Some(i.to_string().as_str()),
                    "{writer:?} write {i}, {reader:?}"
                );
            }
        }
        let flags: Vec<u8> = ["env0", "env1"]
            .iter()
            .map(|f| std::fs::read(s.case.path(f)).unwrap()[4])
            .collect();
        // 253 -> 254 (env1), 255 (env0), 0 (env1), 1 (env0), 2 (env1)
        assert_eq!(flags, vec![1, 2], "{writer:?}");
    }
}

#[test]
fn nearly_full_fits_exactly_and_one_more_byte_is_refused() {
    let s = Setup::new(&[("env0", image(&[("a", "1")], Layout::Single, 0))], false);
    // used now: "a=1\0" + final NUL = 5; data area SIZE-4. Fill to exactly full.
    let room = SIZE - 4 - 5 - "big=".len() - 1;
    let value = "v".repeat(room);
    s.set(Tool::Ours, "big", &value);
    for reader in TOOLS {
        assert_eq!(
            s.get(reader, "big").map(|v| v.len()),
            Some(room),
            "{reader:?}"
        );
    }
    let before = std::fs::read(s.case.path("env0")).unwrap();
    let o = s
        .setenv(Tool::Ours)
        .args(["big", &format!("{value}v")])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("environment full: needs 16381 bytes, 16380 available"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(s.case.path("env0")).unwrap(), before);
}

#[test]
fn mkimage_is_byte_identical_to_mkenvimage() {
    let case = Case::new();
    let inputs: &[&[u8]] = &[
        b"next_boot=otafs\nrootfs=root=/dev/mmcblk0p4 rootwait rw\n",
        b"# comment\n\nb=2\na=1\nmulti=line one\\\nline two\n",
        b"no_newline_at_end=1",
        b"#only a comment\nx=y\n\n\n#trailing\n",
    ];
    for (i, input) in inputs.iter().enumerate() {
        let txt = case.path(&format!("in{i}.txt"));
        std::fs::write(&txt, input).unwrap();
        for (extra, redundant, pad) in [
            (vec![], false, 0xff),
            (vec!["-r"], true, 0xff),
            (vec!["-p", "0"], false, 0),
            (vec!["-r", "-p", "0x5a"], true, 0x5a),
        ] {
            for size in [0x4000usize, 0x2000, 0x100] {
                let theirs = case.path("theirs.bin");
                let o = Command::new(Peer::Mkenvimage.require())
                    .args(["-s", &size.to_string()])
                    .args(&extra)
                    .arg("-o")
                    .arg(&theirs)
                    .arg(&txt)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", stderr(&o));
                let layout = if redundant {
                    Layout::Redundant
                } else {
                    Layout::Single
                };
                let ours = codec::mkimage_from_text(input, size, layout, pad).unwrap();
                assert_eq!(
                    ours,
                    std::fs::read(&theirs).unwrap(),
                    "input {i}, {extra:?}, size {size:#x}"
                );
            }
        }
    }
}

/// The size of the sandbox U-Boot builds' env (the field's, `zbot_tests::ENV_SIZE`): the tests
/// that hand images to U-Boot use it; the others keep the common 16 KiB `SIZE`.
const U: usize = zbot_tests::ENV_SIZE;

fn uimage(pairs: &[(&str, &str)], layout: Layout, flags: u8) -> Vec<u8> {
    codec::encode(&vars(pairs), U, layout, flags).unwrap()
}

fn disk(case: &Case) -> DiskImage {
    DiskImage::create(case.path("disk.img")).unwrap()
}

/// Write env bytes with fw-env to a file, as it would on the board's /bootenv/uboot.env.
fn fw_env_image(case: &Case, sets: &[(&str, &str)]) -> Vec<u8> {
    let env = case.path("uboot.env");
    std::fs::write(&env, uimage(&[("next_boot", "otafs")], Layout::Single, 0)).unwrap();
    let cfg = case.config(&format!("{} 0 {U:#x}\n", env.display()));
    for (n, v) in sets {
        let o = case.run("fw-env", &["-c", cfg.to_str().unwrap(), "set", n, v]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    std::fs::read(env).unwrap()
}

/// U-Boot loads what fw-env wrote, and sees each value exactly as `fw-env get` shows it,
/// backslashes included.
#[test]
fn uboot_loads_what_fw_env_wrote() {
    let case = Case::new();
    let d = disk(&case);
    let sets = [
        ("spaced", "a b  c"),
        ("equals", "root=/dev/x a=b"),
        ("bs", r"C:\dir\\x"),
        ("trail", r"end\"),
    ];
    d.write_file("/uboot.env", &fw_env_image(&case, &sets))
        .unwrap();
    let run = Sandbox::new(&d)
        .run("printenv next_boot spaced equals bs trail")
        .unwrap();
    assert!(
        run.output.contains("Loading Environment from EXT4... OK"),
        "{}",
        run.output
    );
    assert_eq!(run.printed_var("next_boot"), Some("otafs"));
    for (n, v) in sets {
        assert_eq!(run.printed_var(n), Some(v), "{n}: {}", run.output);
    }
}

/// fw-env reads what U-Boot's `saveenv` wrote: values with spaces, `=` and backslashes come
/// out of `fw-env get` exactly as U-Boot's `printenv` shows them; a write by fw-env and a
/// load by U-Boot round-trips them again (lossless both ways).
#[test]
fn fw_env_reads_what_uboot_saveenv_wrote_and_round_trips() {
    let case = Case::new();
    let d = disk(&case);
    // hush: single quotes keep spaces; a backslash is itself escaped once by hush.
    let run = Sandbox::new(&d)
        .run(r"setenv spaced 'a b  c'; setenv equals 'root=/dev/x a=b'; setenv bs 'C:\\dir'; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    let saved = d
        .read_file("/uboot.env")
        .unwrap()
        .expect("saveenv wrote the file");
    let env = case.path("uboot.env");
    std::fs::write(&env, &saved).unwrap();
    let cfg = case.config(&format!("{} 0 {U:#x}\n", env.display()));
    let cfg = cfg.to_str().unwrap();
    let get = |n: &str| {
        stdout(&case.run("fw-env", &["-c", cfg, "get", n]))
            .trim_end_matches('\n')
            .to_owned()
    };
    assert_eq!(get("spaced"), "a b  c");
    assert_eq!(get("equals"), "root=/dev/x a=b");
    assert_eq!(get("bs"), r"C:\dir");
    // Now change something else with fw-env and let U-Boot load it: nothing it had is lost.
    assert!(case
        .run("fw-env", &["-c", cfg, "set", "next_boot", "rootfs"])
        .status
        .success());
    d.write_file("/uboot.env", &std::fs::read(&env).unwrap())
        .unwrap();
    let run = Sandbox::new(&d)
        .run("printenv spaced equals bs next_boot")
        .unwrap();
    assert_eq!(run.printed_var("spaced"), Some("a b  c"));
    assert_eq!(run.printed_var("equals"), Some("root=/dev/x a=b"));
    assert_eq!(run.printed_var("bs"), Some(r"C:\dir"));
    assert_eq!(run.printed_var("next_boot"), Some("rootfs"));
}

/// fw-env writes the ext4 file the same way `saveenv` does (exactly ENV_SIZE bytes, sorted,
/// zero padded): after U-Boot loads and re-saves an fw-env image unchanged, the bytes match.
#[test]
fn fw_env_image_is_what_saveenv_would_write() {
    let case = Case::new();
    let d = disk(&case);
    let ours = fw_env_image(&case, &[("a", "1"), ("z", "last")]);
    d.write_file("/uboot.env", &ours).unwrap();
    // Drop what the sandbox adds at run time, then save.
    let run = Sandbox::new(&d)
        .run("env delete -f fdtcontroladdr stdin stdout stderr arch baudrate board board_name cpu vendor soc bootcmd bootdelay ethaddr eth1addr eth2addr eth3addr eth5addr eth6addr eth8addr; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    let saved = d.read_file("/uboot.env").unwrap().unwrap();
    let ours_vars = codec::decode(&ours, Layout::Single).unwrap().vars;
    let saved_vars = codec::decode(&saved, Layout::Single).unwrap().vars;
    if ours_vars == saved_vars {
        assert_eq!(saved, ours, "same variables, same bytes");
    } else {
        // The sandbox added variables we did not delete: then at least every byte of the
        // encoding rule must agree, which the re-encoding proves.
        assert_eq!(
            codec::encode(&saved_vars, U, Layout::Single, 0).unwrap(),
            saved
        );
    }
}

/// Redundant, both ways, with real U-Boot's redundant environment (sandbox-redund: the two
/// copies are the FAT files uboot.env and uboot-redund.env): U-Boot picks the copy fw-env
/// wrote last and loads it; fw-env picks the copy U-Boot saved last and writes the other.
#[test]
fn redundant_round_trips_between_fw_env_and_uboot() {
    let case = Case::new();
    let (c0, c1) = (case.path("uboot.env"), case.path("uboot-redund.env"));
    std::fs::write(&c0, uimage(&[("next_boot", "otafs")], Layout::Redundant, 1)).unwrap();
    std::fs::write(&c1, uimage(&[("next_boot", "stale")], Layout::Redundant, 0)).unwrap();
    let cfg = case.config(&format!(
        "{} 0 {U:#x}\n{} 0 {U:#x}\n",
        c0.display(),
        c1.display()
    ));
    let cfg = cfg.to_str().unwrap();
    // Two fw-env writes: copy 1 (flag 2), then copy 0 (flag 3).
    for (n, v) in [("spaced", "a b  c"), ("bs", r"C:\dir")] {
        let o = case.run("fw-env", &["-c", cfg, "set", n, v]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        (
            std::fs::read(&c0).unwrap()[4],
            std::fs::read(&c1).unwrap()[4]
        ),
        (3, 2)
    );
    let disk = DiskImage::create(case.path("disk.img")).unwrap();
    disk.mkfs_p1_fat().unwrap();
    disk.write_fat_file("uboot.env", &std::fs::read(&c0).unwrap())
        .unwrap();
    disk.write_fat_file("uboot-redund.env", &std::fs::read(&c1).unwrap())
        .unwrap();
    let run = Sandbox::redundant(&disk)
        .run("printenv next_boot spaced bs; setenv next_boot rootfs; saveenv")
        .unwrap();
    assert!(run.success(), "{}", run.output);
    assert_eq!(
        run.printed_var("next_boot"),
        Some("otafs"),
        "{}",
        run.output
    );
    assert_eq!(run.printed_var("spaced"), Some("a b  c"));
    assert_eq!(run.printed_var("bs"), Some(r"C:\dir"));
    // U-Boot's save went to copy 1 with flag 4; fw-env now reads that one...
    let u0 = disk.read_fat_file("uboot.env").unwrap().unwrap();
    let u1 = disk.read_fat_file("uboot-redund.env").unwrap().unwrap();
    assert_eq!(
        (u0[4], u1[4]),
        (3, 4),
        "U-Boot wrote the inactive copy with the next flag"
    );
    std::fs::write(&c0, &u0).unwrap();
    std::fs::write(&c1, &u1).unwrap();
    let get = |n: &str| {
        stdout(&case.run("fw-env", &["-c", cfg, "get", n]))
            .trim_end()
            .to_owned()
    };
    assert_eq!(get("next_boot"), "rootfs");
    assert_eq!(get("bs"), r"C:\dir");
    // ...and its next write goes to copy 0 with flag 5, leaving U-Boot's copy intact.
    assert!(case
        .run("fw-env", &["-c", cfg, "set", "x", "1"])
        .status
        .success());
    assert_eq!(std::fs::read(&c0).unwrap()[4], 5);
    assert_eq!(std::fs::read(&c1).unwrap(), u1);
}

/// Raw: two copies at offsets inside a disk image (written in place, as on a block device),
/// and a single copy at a negative offset: each tool writes, every tool reads the same.
#[test]
fn raw_copies_at_offsets_agree_across_tools() {
    for (name, cfg_lines, single) in [
        (
            "two copies at 1 MiB",
            "{img} 0x100000 0x4000\n{img} 0x104000 0x4000\n",
            false,
        ),
        (
            "one copy 16 KiB before the end",
            "{img} -0x4000 0x4000\n",
            true,
        ),
    ] {
        for writer in TOOLS {
            let case = Case::new();
            let img = case.path("disk.img");
            let mut bytes = vec![0u8; 2 << 20];
            if single {
                let at = bytes.len() - SIZE;
                bytes[at..].copy_from_slice(&image(&[("next_boot", "otafs")], Layout::Single, 0));
            } else {
                bytes[0x100000..0x104000].copy_from_slice(&redund(&[("next_boot", "otafs")], 7));
                bytes[0x104000..0x108000]
                    .copy_from_slice(&corrupt(redund(&[("next_boot", "x")], 9)));
            }
            std::fs::write(&img, &bytes).unwrap();
            let cfg = case.config(&cfg_lines.replace("{img}", &img.display().to_string()));
            let defaults = case.path("u-boot-initial-env");
            std::fs::write(&defaults, DEFAULTS).unwrap();
            // The C tools resolve a negative offset with BLKGETSIZE64, which only block
            // devices answer: they are given the same place as a positive offset.
            let peer_cfg = case.path("peer.config");
            let positive = format!("{:#x}", (2 << 20) - SIZE);
            std::fs::write(
                &peer_cfg,
                cfg_lines
                    .replace("{img}", &img.display().to_string())
                    .replace("-0x4000", &positive),
            )
            .unwrap();
            let mut s = Setup {
                case,
                cfg: cfg.clone(),
                defaults,
            };
            let use_tool = |s: &mut Setup, t: Tool| {
                s.cfg = if t == Tool::Ours {
                    cfg.clone()
                } else {
                    peer_cfg.clone()
                }
            };
            use_tool(&mut s, writer);
            s.set(writer, "written_by", &format!("{writer:?}"));
            s.set(writer, "spaced", "a b  c");
            let after = std::fs::read(&img).unwrap();
            assert_eq!(after.len(), bytes.len(), "{name}: the image keeps its size");
            assert!(
                after[..0x100000].iter().all(|&b| b == 0),
                "{name}: bytes before the env untouched"
            );
            for reader in TOOLS {
                use_tool(&mut s, reader);
                assert_eq!(
                    s.get(reader, "written_by").as_deref(),
                    Some(format!("{writer:?}").as_str()),
                    "{name}: {writer:?} -> {reader:?}"
                );
                assert_eq!(
                    s.get(reader, "next_boot").as_deref(),
                    Some("otafs"),
                    "{name}: {writer:?} -> {reader:?}"
                );
                assert_eq!(
                    s.get(reader, "spaced").as_deref(),
                    Some("a b  c"),
                    "{name}: {writer:?} -> {reader:?}"
                );
            }
        }
    }
}
