//! The generated board environment keeps what the vendor's boot builds (issue 15, part 1),
//! proven in real U-Boot (the sandbox build of `qemu/build-uboot.sh`):
//!
//! - the environment is the milkv-duos preset's default env, i.e. the vendor's default
//!   environment (`uboot-scripts/vendor/cv1813h_milkv_duos_sd.env`, transcribed from
//!   `../shared/BOARD.md`) plus the policy;
//! - `bootargs` is exactly what the vendor's own `setenv bootargs ...` statement (taken from
//!   the vendor's `sdboot` in that file and run in the same U-Boot) builds, plus
//!   ` zbot.slot=<slot>`;
//! - the final command loads `boot.sd` from the FAT boot partition and `bootm` boots the
//!   vendor's FIT configuration `config-cv1813h_milkv_duos_sd`: U-Boot selects that
//!   configuration in a real FIT image, hands over to "Linux", and the device tree's
//!   `/chosen/bootargs` holds the command line;
//! - `env-update` on a robot in the field (vendor variables, `first_boot=1`, the old
//!   `bootcmd=run sdboot`) keeps every vendor variable and runs the policy.
//!
//! Two values differ from the board, and only because the sandbox is not the board: the disk
//! is `host 0` (`zbot_devtype`, the one disk-specific variable), and `uImage_addr` points into
//! the sandbox's 128 MiB of RAM (the vendor's address is outside it).

use bootcount::SlotConfig;
use std::path::Path;
use std::process::Command;
use uboot_scripts::{parse_vendor_env, Board, Generated, DUOS_FIT_CONFIG, DUOS_VENDOR_ENV};
use zbot_tests::{find_program, run_ok, DiskImage, Sandbox};

/// Where the sandbox loads `boot.sd` (inside its RAM).
const SANDBOX_UIMAGE_ADDR: &str = "0x2000000";

fn vendor() -> Vec<(String, String)> {
    parse_vendor_env(DUOS_VENDOR_ENV, "vendor env").unwrap()
}

/// A FIT image like the vendor's `boot.sd`: a kernel and a device tree, the configuration
/// named as the vendor's build names it, and a different default configuration (so a `bootm`
/// without the name would pick the wrong one).
fn make_fit(dir: &Path) -> Vec<u8> {
    let mkimage = find_program("mkimage")
        .expect("mkimage not found: install Debian package u-boot-tools (scripts/setup-debian.sh)");
    let dtc = find_program("dtc").expect(
        "dtc not found: install Debian package device-tree-compiler (scripts/setup-debian.sh)",
    );
    std::fs::write(dir.join("kernel.bin"), b"not a kernel").unwrap();
    std::fs::write(
        dir.join("board.dts"),
        "/dts-v1/; / { model = \"zbot-test\"; compatible = \"zbot,test\"; #address-cells = <1>; \
         #size-cells = <1>; chosen { }; memory@0 { device_type = \"memory\"; reg = <0 0x8000000>; }; };",
    )
    .unwrap();
    run_ok(
        Command::new(&dtc)
            .args(["-I", "dts", "-O", "dtb", "-o"])
            .arg(dir.join("board.dtb"))
            .arg(dir.join("board.dts")),
    );
    let its = format!(
        "/dts-v1/;\n/ {{\n description = \"boot.sd\";\n #address-cells = <1>;\n images {{\n  \
         kernel-1 {{ data = /incbin/(\"kernel.bin\"); type = \"kernel\"; arch = \"sandbox\"; \
         os = \"linux\"; compression = \"none\"; load = <0x4000000>; entry = <0x4000000>; }};\n  \
         fdt-1 {{ data = /incbin/(\"board.dtb\"); type = \"flat_dt\"; arch = \"sandbox\"; \
         compression = \"none\"; }};\n }};\n configurations {{\n  default = \"config-other\";\n  \
         config-other {{ kernel = \"kernel-1\"; }};\n  {DUOS_FIT_CONFIG} {{ kernel = \"kernel-1\"; \
         fdt = \"fdt-1\"; }};\n }};\n}};\n"
    );
    std::fs::write(dir.join("boot.its"), its).unwrap();
    run_ok(
        Command::new(&mkimage)
            .current_dir(dir)
            .env("SOURCE_DATE_EPOCH", "0")
            .args(["-f", "boot.its", "boot.sd"]),
    );
    std::fs::read(dir.join("boot.sd")).unwrap()
}

/// A card with the FIT `boot.sd` on its FAT partition 1.
fn card(dir: &Path) -> DiskImage {
    let disk = DiskImage::create(dir.join("disk.img")).unwrap();
    disk.mkfs_p1_fat().unwrap();
    disk.write_fat_file("boot.sd", &make_fit(dir)).unwrap();
    disk
}

fn env_text(vars: &[(String, String)]) -> String {
    vars.iter().map(|(n, v)| format!("{n}={v}\n")).collect()
}

/// Run `script` in the sandbox after importing `env` (replacing the whole environment).
fn run_with_env(disk: &DiskImage, dir: &Path, env: &str, script: &str) -> zbot_tests::UbootRun {
    std::fs::write(dir.join("env.txt"), env).unwrap();
    Sandbox::new(disk)
        .load_env(false)
        .run(&format!(
            "load hostfs - 0x100000 env.txt; env import -d -t 0x100000 ${{filesize}}; {script}"
        ))
        .unwrap()
}

/// What the vendor's own `setenv bootargs ...` (from its `sdboot`) builds for `root`.
fn vendor_bootargs(disk: &DiskImage, dir: &Path, root: &str) -> String {
    let vendor = vendor();
    let sdboot = &vendor.iter().find(|(n, _)| n == "sdboot").unwrap().1;
    let stmt = sdboot
        .split("; ")
        .find(|s| s.starts_with("setenv bootargs "))
        .expect("the vendor's sdboot sets bootargs");
    let run = run_with_env(
        disk,
        dir,
        &env_text(&vendor),
        &format!("setenv root ${{{root}}}; {stmt}; printenv bootargs"),
    );
    run.printed_var("bootargs")
        .unwrap_or_else(|| panic!("no bootargs: {}", run.output))
        .to_string()
}

fn board_env(extra: &[(&str, &str)]) -> String {
    let g = Generated::new(&SlotConfig::builtin(), &Board::milkv_duos(), "built-in").unwrap();
    let mut env = g.default_env.clone();
    for (n, v) in [
        ("zbot_devtype", "host"),
        ("uImage_addr", SANDBOX_UIMAGE_ADDR),
    ]
    .iter()
    .chain(extra)
    {
        match env.iter_mut().find(|(m, _)| m == n) {
            Some(kv) => kv.1 = v.to_string(),
            None => env.push((n.to_string(), v.to_string())),
        }
    }
    env_text(&env)
}

/// Boot through `bootcmd` and report what the kernel would get.
struct Booted {
    bootargs: String,
    chosen: String,
    output: String,
}

fn boot(disk: &DiskImage, dir: &Path, env: &str) -> Booted {
    let run = run_with_env(
        disk,
        dir,
        env,
        "run bootcmd; echo @@after-bootm; printenv bootargs; fdt print /chosen bootargs",
    );
    let out = run.script_output().to_string();
    let bootargs = run
        .printed_var("bootargs")
        .unwrap_or_else(|| panic!("no bootargs: {}", run.output))
        .to_string();
    let chosen = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("bootargs = \""))
        .and_then(|l| l.strip_suffix("\""))
        .unwrap_or_else(|| panic!("no /chosen/bootargs: {}", run.output))
        .to_string();
    Booted {
        bootargs,
        chosen,
        output: run.output,
    }
}

fn assert_booted_the_vendors_fit(b: &Booted) {
    for want in [
        "## Loading kernel from FIT Image at 02000000",
        &format!("Using '{DUOS_FIT_CONFIG}' configuration"),
        "## Transferring control to Linux",
        "@@after-bootm",
    ] {
        assert!(b.output.contains(want), "{want:?} missing:\n{}", b.output);
    }
    assert!(
        !b.output.contains("Saving Environment"),
        "a healthy boot writes nothing:\n{}",
        b.output
    );
    assert!(!b.output.contains("syntax error") && !b.output.contains("Unknown command"));
}

#[test]
fn board_env_boots_the_vendors_command_line_and_fit_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let disk = card(dir.path());
    for (next, slot) in [
        (None, "otafs"),
        (Some("rootfs"), "rootfs"),
        (Some("otafs"), "otafs"),
    ] {
        let extra: Vec<(&str, &str)> = next.map(|n| ("next_boot", n)).into_iter().collect();
        let b = boot(&disk, dir.path(), &board_env(&extra));
        assert_booted_the_vendors_fit(&b);
        let want = format!(
            "{} zbot.slot={slot}",
            vendor_bootargs(&disk, dir.path(), slot)
        );
        assert_eq!(b.bootargs, want, "{}", b.output);
        assert_eq!(b.chosen, want, "the kernel's /chosen/bootargs");
    }
    // The exact line, spelled out (reserved_mem unset and mtdparts empty vanish, as in the
    // vendor's boot).
    let b = boot(&disk, dir.path(), &board_env(&[("next_boot", "rootfs")]));
    assert_eq!(
        b.bootargs,
        "root=/dev/mmcblk0p4 rootwait rw console=ttyS0,115200 earlycon=sbi riscv.fwsz=0x80000 loglevel=9 zbot.slot=rootfs"
    );
    // Every vendor variable is there with its value, but the boot command the policy replaces.
    let text = board_env(&[]);
    for (n, v) in vendor() {
        let line = format!("{n}={v}");
        match n.as_str() {
            "sdboot" => assert!(text.contains("\nsdboot=run zbot-policy\n")),
            "uImage_addr" => {}
            _ => assert!(text.lines().any(|l| l == line), "{line} kept"),
        }
    }
}

#[test]
fn values_with_hush_syntax_reach_the_kernel_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let disk = card(dir.path());
    let b = boot(
        &disk,
        dir.path(),
        &board_env(&[
            ("next_boot", "rootfs"),
            ("reserved_mem", "mem=64M"),
            (
                "othbootargs",
                "earlycon=sbi riscv.fwsz=0x80000 loglevel=0 release x=$y;z",
            ),
        ]),
    );
    assert_booted_the_vendors_fit(&b);
    assert_eq!(
        b.bootargs,
        "mem=64M root=/dev/mmcblk0p4 rootwait rw console=ttyS0,115200 earlycon=sbi riscv.fwsz=0x80000 loglevel=0 release x=$y;z zbot.slot=rootfs"
    );
}

/// A robot in the field: the vendor's variables as its U-Boot saved them, `first_boot=1`,
/// the old `bootcmd=run sdboot`. `env-update` installs the policy in one write and keeps every
/// vendor variable; the next boot runs the policy with the vendor's command line, writes
/// nothing, and a console `run sdboot` runs the policy too.
#[test]
fn env_update_on_a_field_robot_keeps_the_vendor_variables() {
    let dir = tempfile::tempdir().unwrap();
    let disk = card(dir.path());
    let cfg = SlotConfig::builtin();
    let g = Generated::new(&cfg, &Board::milkv_duos(), "built-in").unwrap();
    let mut field = vendor();
    for (n, v) in [
        ("bootcmd", "run sdboot"),
        ("first_boot", "1"),
        ("next_boot", "rootfs"),
        ("root", "root=/dev/mmcblk0p4 rootwait rw"),
        ("uImage_addr", SANDBOX_UIMAGE_ADDR),
        ("zbot_devtype", "host"),
    ] {
        match field.iter_mut().find(|(m, _)| m == n) {
            Some(kv) => kv.1 = v.to_string(),
            None => field.push((n.to_string(), v.to_string())),
        }
    }
    let update = g.script_vars(&cfg);
    let names: Vec<&str> = update.iter().map(|(n, _)| n.as_str()).collect();
    for kept in [
        "uImage_addr",
        "othbootargs",
        "consoledev",
        "baudrate",
        "mtdparts",
        "first_boot",
        "next_boot",
        "root",
    ] {
        assert!(!names.contains(&kept), "env-update must not touch {kept}");
    }
    assert!(names.contains(&"bootcmd") && names.contains(&"sdboot"));
    let before = field.clone();
    for (n, v) in update.iter().filter(|(n, _)| n != "zbot_devtype") {
        match field.iter_mut().find(|(m, _)| m == n) {
            Some(kv) => kv.1 = v.clone(),
            None => field.push((n.clone(), v.clone())),
        }
    }
    for (n, v) in &before {
        if !names.contains(&n.as_str()) {
            assert!(field.contains(&(n.clone(), v.clone())), "{n} kept");
        }
    }
    let b = boot(&disk, dir.path(), &env_text(&field));
    assert_booted_the_vendors_fit(&b);
    let want = format!(
        "{} zbot.slot=rootfs",
        vendor_bootargs(&disk, dir.path(), "rootfs")
    );
    assert_eq!(b.bootargs, want);
    let run = run_with_env(
        &disk,
        dir.path(),
        &env_text(&field),
        "run sdboot; printenv bootargs",
    );
    assert_eq!(
        run.printed_var("bootargs"),
        Some(want.as_str()),
        "{}",
        run.output
    );
}

/// The board header is valid C, and the vendor's `CONFIG_EXTRA_ENV_SETTINGS` with its
/// `"sdboot=" SD_BOOTM_COMMAND "\0"` line replaced by `ZBOT_ENV_SETTINGS` is exactly the
/// default environment Linux gets (`default-env`, i.e. /etc/u-boot-initial-env), but
/// `bootcmd`, which is `CONFIG_BOOTCOMMAND`. Compiled with the host's C compiler and printed.
#[test]
fn board_header_plus_the_vendors_settings_is_the_default_env() {
    let cc = find_program("cc")
        .expect("cc not found: install build-essential (scripts/setup-debian.sh)");
    let dir = tempfile::tempdir().unwrap();
    let g = Generated::new(&SlotConfig::builtin(), &Board::milkv_duos(), "built-in").unwrap();
    std::fs::write(dir.path().join("zbot-env.h"), g.board_header()).unwrap();
    let c_str = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut vendor_lines = String::new();
    for (n, v) in vendor() {
        if n == "sdboot" {
            vendor_lines.push_str("\tZBOT_ENV_SETTINGS \\\n");
        } else {
            vendor_lines.push_str(&format!("\t\"{}={}\\0\" \\\n", c_str(&n), c_str(&v)));
        }
    }
    let prog = format!(
        "#include <stdio.h>\n#include \"zbot-env.h\"\n\
         #define CONFIG_EXTRA_ENV_SETTINGS \\\n{vendor_lines}\t\"\"\n\
         static const char env[] = CONFIG_EXTRA_ENV_SETTINGS;\n\
         int main(void) {{ for (size_t i = 0; i + 1 < sizeof env; i++) putchar(env[i] ? env[i] : '\\n'); return 0; }}\n"
    );
    std::fs::write(dir.path().join("env.c"), prog).unwrap();
    run_ok(
        Command::new(&cc)
            .current_dir(dir.path())
            .args(["-Wall", "-Werror", "-o", "env", "env.c"]),
    );
    let out = run_ok(&mut Command::new(dir.path().join("env")));
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut want: Vec<String> = g
        .default_env_text()
        .lines()
        .filter(|l| !l.starts_with("bootcmd="))
        .map(String::from)
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
