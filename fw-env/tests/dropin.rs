//! The `fw_printenv`/`fw_setenv` drop-in against libubootenv's tools (the board's), on the
//! same inputs: where libubootenv and U-Boot's tools/env differ we must do what libubootenv
//! does; bytes that are not UTF-8 go through exactly; options, arguments and script lines
//! that the C tools would ignore are refused with nothing written.
//! libubootenv is required (`scripts/setup-debian.sh`): a missing peer fails the test.

mod common;
use common::*;
use fw_env::codec::Layout;
use zbot_tests::Peer;

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Ours,
    Lib,
    /// Ours with `FW_ENV_DROPIN=uboot-tools`.
    OursUboot,
    /// U-Boot's tools/env (`qemu/build-uboot.sh tools`).
    Uboot,
}

fn raw(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// One env file and config per tool, both starting from the same image.
struct Pair {
    case: Case,
}

const START: &[(&str, &str)] = &[
    ("BOOT_ORDER", "A B"),
    ("BOOT_A_LEFT", "3"),
    ("bootcmd", "run distro_bootcmd"),
    ("foo", "bar"),
];

impl Pair {
    fn new(pairs: &[(&str, &str)]) -> Pair {
        Self::from_image(image(pairs, Layout::Single, 0))
    }

    fn from_image(bytes: Vec<u8>) -> Pair {
        let case = Case::new();
        for who in ["ours", "lib", "ours-u", "uboot"] {
            let env = case.path(&format!("{who}.env"));
            std::fs::write(&env, &bytes).unwrap();
            std::fs::write(
                case.path(&format!("{who}.cfg")),
                format!("{} 0x0 0x4000\n", env.display()),
            )
            .unwrap();
        }
        Pair { case }
    }

    fn tag(who: Who) -> &'static str {
        match who {
            Who::Ours => "ours",
            Who::Lib => "lib",
            Who::OursUboot => "ours-u",
            Who::Uboot => "uboot",
        }
    }

    fn env(&self, who: Who) -> PathBuf {
        self.case.path(&format!("{}.env", Self::tag(who)))
    }

    fn cmd(&self, who: Who, tool: &str) -> Command {
        let mut c = match who {
            Who::Ours => {
                let mut c = self.case.cmd(tool);
                c.env_remove("FW_ENV_DROPIN");
                c
            }
            Who::OursUboot => {
                let mut c = self.case.cmd(tool);
                c.env("FW_ENV_DROPIN", "uboot-tools");
                c
            }
            Who::Uboot => {
                let peer = if tool == "fw_printenv" {
                    Peer::UbootPrintenv
                } else {
                    Peer::UbootSetenv
                };
                let mut c = Command::new(peer.require());
                c.stdin(Stdio::null());
                c
            }
            Who::Lib => {
                let peer = if tool == "fw_printenv" {
                    Peer::LibubootenvPrintenv
                } else {
                    Peer::LibubootenvSetenv
                };
                let mut c = Command::new(peer.require());
                c.stdin(Stdio::null());
                c
            }
        };
        c.arg("-c")
            .arg(self.case.path(&format!("{}.cfg", Self::tag(who))));
        c
    }

    fn run(&self, who: Who, tool: &str, args: &[OsString], stdin: Option<&[u8]>) -> Output {
        let mut c = self.cmd(who, tool);
        c.args(args);
        match stdin {
            None => c.output().unwrap(),
            Some(input) => {
                use std::io::Write;
                let mut child = c
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(input).unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }

    fn vars(&self, who: Who) -> Vec<(Vec<u8>, Vec<u8>)> {
        read_copy(&self.env(who), 0, Layout::Single)
            .expect("a valid env")
            .vars
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    /// Run the same command on ours and libubootenv's; assert the same stdout, the same
    /// success and the same variables afterwards. Returns our output.
    fn same(&self, tool: &str, args: &[OsString], stdin: Option<&[u8]>) -> Output {
        self.same_as(Who::Ours, Who::Lib, tool, args, stdin)
    }

    fn same_as(
        &self,
        us: Who,
        peer: Who,
        tool: &str,
        args: &[OsString],
        stdin: Option<&[u8]>,
    ) -> Output {
        let ours = self.run(us, tool, args, stdin);
        let lib = self.run(peer, tool, args, stdin);
        let shown = format!("{tool} {args:?}");
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&lib.stdout),
            "{shown}: stdout differs (ours stderr: {})",
            stderr(&ours)
        );
        assert_eq!(ours.stdout, lib.stdout, "{shown}: stdout bytes differ");
        assert_eq!(
            ours.status.success(),
            lib.status.success(),
            "{shown}: ours {:?} {}, libubootenv {:?} {}",
            ours.status,
            stderr(&ours),
            lib.status,
            stderr(&lib)
        );
        assert_eq!(
            self.vars(us),
            self.vars(peer),
            "{shown}: variables differ afterwards"
        );
        ours
    }
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// Every place the two C tools differ, on libubootenv and on ours, side by side
/// (docs/fw-env.md's table, column "fw-env (default)").
#[test]
fn where_the_c_tools_differ_we_do_what_libubootenv_does() {
    let p = Pair::new(START);
    let start = p.vars(Who::Ours);
    // Printing: sorted, a missing variable is `NAME=` with exit 0, -n prints values.
    let o = p.same("fw_printenv", &[], None);
    assert!(stdout(&o).starts_with("BOOT_A_LEFT=3\nBOOT_ORDER=A B\n"));
    let o = p.same("fw_printenv", &os(&["MISSING"]), None);
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("MISSING=\n", Some(0))
    );
    p.same("fw_printenv", &os(&["foo", "MISSING", "BOOT_ORDER"]), None);
    p.same("fw_printenv", &os(&["-n", "MISSING"]), None);
    p.same("fw_printenv", &os(&["-n", "foo", "BOOT_ORDER"]), None);
    p.same("fw_printenv", &os(&["--no-header", "foo"]), None);
    // Nothing changed: neither writes.
    p.same("fw_setenv", &os(&["foo", "bar"]), None);
    assert_eq!(p.vars(Who::Ours), start);
    // An empty value is stored (RAUC's mark-bad of the last slot in BOOT_ORDER).
    p.same("fw_setenv", &os(&["BOOT_ORDER", ""]), None);
    let o = p.same("fw_printenv", &os(&["BOOT_ORDER"]), None);
    assert_eq!(stdout(&o), "BOOT_ORDER=\n");
    assert!(p
        .vars(Who::Ours)
        .contains(&(b"BOOT_ORDER".to_vec(), Vec::new())));
    // Pairs; an odd last name is deleted.
    p.same("fw_setenv", &os(&["a", "1", "b", "two words"]), None);
    p.same("fw_setenv", &os(&["c", "3", "a"]), None);
    p.same("fw_setenv", &os(&["foo"]), None);
    p.same("fw_setenv", &os(&["nonexistent"]), None);
    p.same("fw_setenv", &[], None);
    // Script forms both tools read alike (libubootenv's `key=value`).
    let script = p.case.path("script");
    std::fs::write(&script, "# c\n\nx=1\ny= lead\nb=\nz==2\r\nlast=no newline").unwrap();
    p.same("fw_setenv", &[raw(b"-s"), script.clone().into()], None);
    p.same("fw_setenv", &os(&["-s", "-"]), Some(b"from=stdin\nx=\n"));
    p.same("fw_printenv", &[], None);
}

/// Regression (issue 10 A): arguments and script lines went through `to_string_lossy`, so a
/// byte that is not UTF-8 was stored as U+FFFD; a script had to be UTF-8 as a whole.
#[test]
fn bytes_are_stored_and_printed_exactly_like_libubootenv() {
    let p = Pair::new(START);
    let name = raw(b"n\xff\x80");
    let value = raw(b"v\xfe \xc3\x28 \xe2\x82");
    p.same("fw_setenv", &[name.clone(), value.clone()], None);
    assert!(p
        .vars(Who::Ours)
        .contains(&(name.as_bytes().to_vec(), value.as_bytes().to_vec())));
    let o = p.same("fw_printenv", std::slice::from_ref(&name), None);
    assert_eq!(
        o.stdout,
        [name.as_bytes(), b"=", value.as_bytes(), b"\n"].concat()
    );
    let o = p.same("fw_printenv", &[raw(b"-n"), name.clone()], None);
    assert_eq!(o.stdout, [value.as_bytes(), b"\n"].concat());
    p.same("fw_printenv", &[], None);
    // A script file and stdin holding such bytes.
    let script = p.case.path("script");
    std::fs::write(&script, b"s\xff=\xfe\xfd\nplain=\xa0ok\n").unwrap();
    p.same("fw_setenv", &[raw(b"-s"), script.into()], None);
    p.same("fw_setenv", &os(&["-s", "-"]), Some(b"in\xf0=\x9f\x92\n"));
    let o = p.same("fw_printenv", &[], None);
    for line in [
        &b"s\xff=\xfe\xfd\n"[..],
        b"plain=\xa0ok\n",
        b"in\xf0=\x9f\x92\n",
    ] {
        assert!(
            o.stdout.windows(line.len()).any(|w| w == line),
            "{line:?} not printed exactly"
        );
    }
    assert!(
        !o.stdout.windows(3).any(|w| w == "\u{fffd}".as_bytes()),
        "no replacement characters"
    );
    // A config path that is not UTF-8 is used as given.
    let dir = p.case.path("d\u{e9}");
    std::fs::create_dir(&dir).unwrap();
    let cfg = Path::new(&raw(&[dir.as_os_str().as_bytes(), b"/c\xff.cfg"].concat())).to_owned();
    std::fs::write(&cfg, format!("{} 0x0 0x4000\n", p.env(Who::Ours).display())).unwrap();
    let o = p
        .case
        .cmd("fw_printenv")
        .arg("-c")
        .arg(&cfg)
        .arg("foo")
        .output()
        .unwrap();
    assert_eq!(
        (stdout(&o).as_str(), o.status.code()),
        ("foo=bar\n", Some(0)),
        "{}",
        stderr(&o)
    );
}

/// Issue 10 B: what the C tools ignore is an error here, and nothing is written.
#[test]
fn ignored_options_and_arguments_are_errors() {
    let p = Pair::new(START);
    let env = p.env(Who::Ours);
    let before = std::fs::read(&env).unwrap();
    let script = p.case.path("script");
    std::fs::write(&script, "a=1\n").unwrap();
    let s = script.to_str().unwrap();
    let cfg = p.case.path("ours.cfg");
    let cfg = cfg.to_str().unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "fw_setenv",
            &["-s", s, "extra"],
            "-s FILE takes no NAME or VALUE",
        ),
        (
            "fw_setenv",
            &["extra", "-s", s],
            "-s FILE takes no NAME or VALUE",
        ),
        ("fw_setenv", &["-s", s, "-s", s], "given twice"),
        ("fw_setenv", &["-c", cfg, "a", "1"], "given twice"),
        (
            "fw_setenv",
            &["-f", "x", "-f", "y", "a", "1"],
            "given twice",
        ),
        (
            "fw_setenv",
            &["-l", "/tmp", "--lock=/tmp", "a", "1"],
            "given twice",
        ),
        ("fw_setenv", &["-n", "a", "1"], "not an option of fw_setenv"),
        (
            "fw_setenv",
            &["-a", "key", "a", "1"],
            "invalid option -- 'a'",
        ),
        (
            "fw_setenv",
            &["--aes=key", "a", "1"],
            "unrecognized option '--aes'",
        ),
        (
            "fw_setenv",
            &["--script", s, "x"],
            "-s FILE takes no NAME or VALUE",
        ),
        ("fw_setenv", &["-x", "a", "1"], "invalid option -- 'x'"),
        ("fw_printenv", &["-s", s], "not an option of fw_printenv"),
        (
            "fw_printenv",
            &["--noheader=yes", "foo"],
            "doesn't allow an argument",
        ),
        ("fw_printenv", &["-n"], "requires at least one argument"),
        ("fw_printenv", &["--c", cfg], "given twice"),
        ("fw_printenv", &["--bogus"], "unrecognized option '--bogus'"),
    ];
    for (tool, args, msg) in cases {
        let o = p.run(Who::Ours, tool, &os(args), None);
        assert_eq!(o.status.code(), Some(1), "{tool} {args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{tool} {args:?}: {}", stderr(&o));
        assert_eq!(
            std::fs::read(&env).unwrap(),
            before,
            "{tool} {args:?} wrote"
        );
    }
    // A drop-in style that does not exist is not the default in disguise.
    let o = p
        .cmd(Who::Ours, "fw_setenv")
        .env("FW_ENV_DROPIN", "uboot")
        .args(["a", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("FW_ENV_DROPIN"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&env).unwrap(), before);
}

/// Script lines libubootenv drops silently (or turns into odd names) are refused, naming
/// file and line; nothing of the script is written.
#[test]
fn script_lines_one_tool_would_drop_are_refused_by_line() {
    let p = Pair::new(START);
    let env = p.env(Who::Ours);
    let before = std::fs::read(&env).unwrap();
    for (text, line) in [
        (&b"a=1\nb 2\n"[..], 2),
        (b"a=1\nlonely\n", 2),
        (b"# c\n  a=1\n", 2),
        (b"a=1\n=x\n", 2),
        (b"ok=1\r\n\n\nbad\xff line\n", 4),
        (b"a=1\nn\x00ul=1\n", 2),
    ] {
        let script = p.case.path("s.txt");
        std::fs::write(&script, text).unwrap();
        let o = p.run(Who::Ours, "fw_setenv", &[raw(b"-s"), script.into()], None);
        assert_eq!(o.status.code(), Some(1), "{text:?}");
        assert!(
            stderr(&o).contains(&format!("s.txt:{line}:")),
            "{text:?}: {}",
            stderr(&o)
        );
        let o = p.run(Who::Ours, "fw_setenv", &os(&["-s", "-"]), Some(text));
        assert!(
            stderr(&o).contains(&format!("<stdin>:{line}:")),
            "{text:?}: {}",
            stderr(&o)
        );
        assert_eq!(std::fs::read(&env).unwrap(), before, "{text:?} wrote");
    }
}

/// `FW_ENV_DROPIN=uboot-tools` side by side with U-Boot's tools/env on the points where it
/// differs from libubootenv.
#[test]
fn uboot_tools_style_matches_uboot_tools() {
    // Storage order that is not sorted: mkenvimage keeps its input order.
    let text = b"foo=bar\nBOOT_ORDER=A B\nbootcmd=run x\nBOOT_A_LEFT=3\n";
    let p =
        Pair::from_image(fw_env::codec::mkimage_from_text(text, SIZE, Layout::Single, 0).unwrap());
    let same = |tool: &str, args: Vec<OsString>, stdin: Option<&[u8]>| {
        p.same_as(Who::OursUboot, Who::Uboot, tool, &args, stdin)
    };
    let o = same("fw_printenv", vec![], None);
    assert!(
        stdout(&o).starts_with("foo=bar\nBOOT_ORDER=A B\n"),
        "storage order"
    );
    let o = same("fw_printenv", os(&["foo", "MISSING"]), None);
    assert_eq!(o.status.code(), Some(1));
    same("fw_printenv", os(&["-n", "MISSING"]), None);
    same(
        "fw_setenv",
        os(&["bootargs", "console=ttyS0", "quiet"]),
        None,
    );
    same("fw_setenv", os(&["foo", ""]), None);
    same(
        "fw_setenv",
        vec![raw(b"n\xff"), raw(b"v\xfe"), raw(b"w\x80")],
        None,
    );
    same("fw_printenv", vec![raw(b"n\xff")], None);
    same(
        "fw_setenv",
        os(&["-s", "-"]),
        Some(b"# c\n  k   v  w\nBOOT_A_LEFT\nx=1\nb\xff \xfe\n"),
    );
}

/// `FW_ENV_DROPIN=uboot-tools`: U-Boot's tools/env behaviour, kept on request.
#[test]
fn uboot_tools_style_on_request() {
    let p = Pair::new(START);
    let run = |tool: &str, args: &[&str], stdin: Option<&[u8]>| {
        let mut c = p.cmd(Who::Ours, tool);
        c.env("FW_ENV_DROPIN", "uboot-tools").args(args);
        match stdin {
            None => c.output().unwrap(),
            Some(input) => {
                use std::io::Write;
                let mut child = c
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(input).unwrap();
                child.wait_with_output().unwrap()
            }
        }
    };
    let o = run("fw_printenv", &["MISSING"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("\"MISSING\" not defined"));
    assert!(run("fw_setenv", &["bootargs", "a", "b"], None)
        .status
        .success());
    assert!(run("fw_setenv", &["foo", ""], None).status.success());
    assert!(
        run("fw_setenv", &["-s", "-"], Some(b"  k   v w\nBOOT_A_LEFT\n"))
            .status
            .success()
    );
    let v = p.vars(Who::Ours);
    let get = |n: &[u8]| v.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get(b"bootargs"), Some(b"a b".to_vec()));
    assert_eq!(get(b"foo"), None, "an empty value deletes");
    assert_eq!(get(b"k"), Some(b"v w".to_vec()));
    assert_eq!(get(b"BOOT_A_LEFT"), None);
    assert_eq!(run("fw_setenv", &[], None).status.code(), Some(1));
}

/// libubootenv keeps `.flags` out of its listing; `fw_printenv` does too.
#[test]
fn flags_variable_is_not_listed() {
    let p = Pair::new(&[("foo", "bar"), (".flags", "foo:sa"), ("baz", "1")]);
    let o = p.same("fw_printenv", &[], None);
    assert_eq!(stdout(&o), "baz=1\nfoo=bar\n");
}
