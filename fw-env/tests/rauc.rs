//! RAUC 1.8 (Debian's `rauc`) running its U-Boot backend on our `fw_printenv`/`fw_setenv`
//! and on libubootenv's (the board's), step by step: every `rauc status`, `mark-good`,
//! `mark-bad` and `mark-active` must print the same and leave the same variables.
//!
//! RAUC runs `fw_printenv NAME` / `fw_setenv NAME VALUE` from PATH, and the tools read
//! `/etc/fw_env.config`; so the run happens in a private mount namespace (`unshare -m`) where
//! `/etc` is a tmpfs of symlinks to the real `/etc` plus our `fw_env.config`: the host's `/etc`
//! is never touched. The RAUC service talks over a private `dbus-daemon` on a unix socket.
//! Every child runs under `timeout`. Needs root (CI and the dev machines are root).
//!
//! The steps reach the two places where RAUC once saw a difference: `mark-bad` of the last
//! slot in `BOOT_ORDER` writes `fw_setenv BOOT_ORDER ""` (libubootenv keeps `BOOT_ORDER=`),
//! and `fw_printenv` of a missing `BOOT_x_LEFT`/`BOOT_ORDER` (libubootenv: `NAME=`, exit 0).

mod common;
use common::*;
use fw_env::codec::Layout;
use zbot_tests::Peer;

use std::path::Path;
use std::process::Command;

/// The steps: a `rauc` command line (after `rauc -c system.conf`), or `!` and a command for
/// the shell, which changes the environment behind RAUC's back with our friendly CLI (the
/// same in both runs).
const STEPS: &[&str] = &[
    "status",
    "status mark-bad other",
    "status",
    "status mark-bad booted",
    "status",
    "status mark-active other",
    "status",
    "status mark-good booted",
    "status mark-active booted",
    "status",
    "! fw-env unset BOOT_B_LEFT",
    "status",
    "status mark-good other",
    "status mark-bad rootfs.1",
    "! fw-env unset BOOT_ORDER",
    "status",
    "status mark-good booted",
    "status mark-active booted",
    "status --detailed",
    "status mark-active rootfs.1",
    "status mark-bad rootfs.0",
    "status mark-bad rootfs.1",
    "status",
    "status mark-active booted",
    "status",
];

const SCRIPT: &str = r#"#!/bin/bash
# run.sh WORK MODE... (inside `unshare -m --propagation private`)
set -u
W=$1; shift
mkdir -p "$W/realetc"
mount --bind /etc "$W/realetc" || exit 90
mount -t tmpfs tmpfs /etc || exit 91
for f in "$W"/realetc/* "$W"/realetc/.[!.]*; do
    [ -e "$f" ] || [ -L "$f" ] && ln -s "$f" "/etc/$(basename "$f")"
done
cp "$W/fw_env.config" /etc/fw_env.config
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$W/bus"
export FW_ENV_LOCK_FILE="$W/lock"
for mode in "$@"; do
    out="$W/out-$mode"; mkdir -p "$out"
    cp "$W/start.env" "$W/uboot.env"
    rm -f "$W/bus" "$W/status.raucs"
    timeout 120 dbus-daemon --config-file="$W/bus.conf" --nofork > "$out/dbus.log" 2>&1 &
    dbus=$!
    for _ in $(seq 50); do [ -S "$W/bus" ] && break; sleep 0.1; done
    PATH="$W/bin-$mode:$PATH" timeout 120 rauc service -c "$W/system.conf" \
        --override-boot-slot=A > "$out/service.log" 2>&1 &
    svc=$!
    ready=0
    for _ in $(seq 100); do
        if PATH="$W/bin-$mode:$PATH" timeout 5 rauc -c "$W/system.conf" status > /dev/null 2>&1; then
            ready=1; break
        fi
        sleep 0.1
    done
    [ "$ready" = 1 ] || echo "rauc service did not answer within 10 s" > "$out/not-ready"
    n=0
    while IFS= read -r step; do
        n=$((n + 1))
        case "$step" in
            "! "*) PATH="$W/bin-ours:$PATH" timeout 10 ${step#! } > "$out/$n.out" 2>&1 ;;
            *) PATH="$W/bin-$mode:$PATH" timeout 10 rauc -c "$W/system.conf" $step > "$out/$n.out" 2>&1 ;;
        esac
        echo "exit $?" >> "$out/$n.out"
        cp "$W/uboot.env" "$out/$n.env"
    done < "$W/steps"
    kill "$svc" "$dbus" 2> /dev/null
    wait "$svc" "$dbus" 2> /dev/null
done
exit 0
"#;

fn found(program: &str) -> bool {
    have(program)
}

/// RAUC missing: fail with the fix, unless the package cannot be installed here at all, in
/// which case say so loudly and skip.
fn require_rauc() -> bool {
    if found("rauc") {
        return true;
    }
    let installable = Command::new("apt-cache")
        .args(["show", "rauc"])
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false);
    if installable {
        panic!(
            "rauc is not installed: run `sudo {}/scripts/setup-debian.sh` (it installs rauc, dbus-daemon)",
            env!("CARGO_MANIFEST_DIR").trim_end_matches("/fw-env")
        );
    }
    eprintln!(
        "\n**************** SKIPPED: rauc_backend_sees_the_same_as_with_libubootenv ****************\n\
         rauc is neither installed nor installable from the configured apt sources here;\n\
         this test proves nothing on this machine. Install Debian's `rauc` (1.8) to run it.\n\
         ****************************************************************************************\n"
    );
    false
}

/// Drop what differs between any two runs: `HH:MM:SS.mmm` timestamps, the `(rauc:PID)`
/// of GLib's warnings, the activation times of `status --detailed`.
fn normalise(text: &str) -> String {
    let text = text
        .split("(rauc:")
        .enumerate()
        .map(|(i, part)| match (i, part.split_once(')')) {
            (0, _) | (_, None) => part.to_owned(),
            (_, Some((pid, rest))) if pid.bytes().all(|b| b.is_ascii_digit()) => {
                format!("(rauc:PID){rest}")
            }
            (_, Some(_)) => format!("(rauc:{part}"),
        })
        .collect::<String>();
    // `status --detailed`: when a slot was activated (RAUC's status file).
    let text = text
        .lines()
        .map(|l| match l.split_once("timestamp=") {
            Some((indent, _)) => format!("{indent}timestamp=TIME\n"),
            None => format!("{l}\n"),
        })
        .collect::<String>();
    let text = text.as_str();
    let mut out = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let stamp = b.len() - i >= 12
            && b[i..i + 12].iter().enumerate().all(|(k, c)| match k {
                2 | 5 => *c == b':',
                8 => *c == b'.',
                _ => c.is_ascii_digit(),
            });
        if stamp {
            out.push_str("HH:MM:SS.mmm");
            i += 12;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn env_vars(path: &Path) -> String {
    match std::fs::read(path)
        .ok()
        .and_then(|b| fw_env::codec::decode(&b[..SIZE.min(b.len())], Layout::Single).ok())
    {
        Some(d) => d
            .vars
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}\n",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect(),
        None => "<no valid environment>\n".to_owned(),
    }
}

#[test]
fn rauc_backend_sees_the_same_as_with_libubootenv() {
    if !require_rauc() {
        return;
    }
    for program in ["dbus-daemon", "unshare", "timeout"] {
        assert!(
            found(program),
            "{program} not found: run scripts/setup-debian.sh"
        );
    }
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        stdout(&uid).trim(),
        "0",
        "this test needs root (a private mount namespace over /etc)"
    );
    let host_config = Path::new("/etc/fw_env.config").exists();
    let lib_print = Peer::LibubootenvPrintenv.require();
    let lib_set = Peer::LibubootenvSetenv.require();
    let case = Case::new();
    let w = case.path("");
    let w = w.to_str().unwrap().trim_end_matches('/');
    let ours = env!("CARGO_BIN_EXE_fw-env");
    for (dir, links) in [
        (
            "bin-ours",
            [("fw_printenv", ours), ("fw_setenv", ours), ("fw-env", ours)],
        ),
        (
            "bin-lib",
            [
                ("fw_printenv", lib_print.to_str().unwrap()),
                ("fw_setenv", lib_set.to_str().unwrap()),
                ("fw-env", ours),
            ],
        ),
    ] {
        std::fs::create_dir(case.path(dir)).unwrap();
        for (name, target) in links {
            std::os::unix::fs::symlink(target, case.path(dir).join(name)).unwrap();
        }
    }
    for slot in ["rootfs0.img", "rootfs1.img"] {
        std::fs::write(case.path(slot), vec![0u8; 4096]).unwrap();
    }
    std::fs::create_dir(case.path("mnt")).unwrap();
    std::fs::write(
        case.path("bus.conf"),
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={w}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#
        ),
    )
    .unwrap();
    std::fs::write(
        case.path("system.conf"),
        format!(
            "[system]\ncompatible=zbot-test\nbootloader=uboot\nstatusfile={w}/status.raucs\n\
             mountprefix={w}/mnt\n\n\
             [slot.rootfs.0]\ndevice={w}/rootfs0.img\ntype=raw\nbootname=A\n\n\
             [slot.rootfs.1]\ndevice={w}/rootfs1.img\ntype=raw\nbootname=B\n"
        ),
    )
    .unwrap();
    std::fs::write(
        case.path("start.env"),
        image(
            &[
                ("BOOT_ORDER", "A B"),
                ("BOOT_A_LEFT", "3"),
                ("BOOT_B_LEFT", "3"),
                ("bootcmd", "run distro_bootcmd"),
            ],
            Layout::Single,
            0,
        ),
    )
    .unwrap();
    std::fs::write(
        case.path("fw_env.config"),
        format!("{w}/uboot.env 0x0 0x4000\n"),
    )
    .unwrap();
    std::fs::write(case.path("steps"), STEPS.join("\n") + "\n").unwrap();
    std::fs::write(case.path("run.sh"), SCRIPT).unwrap();

    let started = std::time::Instant::now();
    let o = Command::new("timeout")
        .args(["300", "unshare", "-m", "--propagation", "private", "bash"])
        .arg(case.path("run.sh"))
        .args([w, "lib", "ours"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "run.sh failed ({:?}): {}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(
        Path::new("/etc/fw_env.config").exists(),
        host_config,
        "the host's /etc was not touched"
    );
    let mut report = String::new();
    let mut differences = Vec::new();
    for mode in ["lib", "ours"] {
        let nr = case.path(&format!("out-{mode}/not-ready"));
        assert!(
            !nr.exists(),
            "{mode}: {} (service log: {})",
            std::fs::read_to_string(&nr).unwrap_or_default(),
            std::fs::read_to_string(case.path(&format!("out-{mode}/service.log")))
                .unwrap_or_default()
        );
    }
    for (i, step) in STEPS.iter().enumerate() {
        let n = i + 1;
        let read = |mode: &str| {
            let out = std::fs::read_to_string(case.path(&format!("out-{mode}/{n}.out")))
                .unwrap_or_else(|e| format!("<no output: {e}>"));
            let env = env_vars(&case.path(&format!("out-{mode}/{n}.env")));
            (normalise(&out), env)
        };
        let (lib_out, lib_env) = read("lib");
        let (our_out, our_env) = read("ours");
        report.push_str(&format!("## {n}: {step}\n{lib_out}-- env:\n{lib_env}"));
        if lib_out != our_out || lib_env != our_env {
            differences.push(format!(
                "step {n} `{step}`:\n-- libubootenv:\n{lib_out}{lib_env}-- ours:\n{our_out}{our_env}"
            ));
        }
    }
    eprintln!(
        "rauc on libubootenv and on fw-env, {} steps in {:.1} s:\n{report}",
        STEPS.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        differences.is_empty(),
        "RAUC sees a difference:\n{}\n(service logs: {}/out-*/service.log)",
        differences.join("\n"),
        w
    );
    // The steps did reach the cases that once differed.
    assert!(
        report.contains("BOOT_ORDER=\n"),
        "BOOT_ORDER= was never stored"
    );
    assert!(report.contains("exit 0"));
}
