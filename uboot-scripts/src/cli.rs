//! The command line of `uboot-scripts` (the binary is `main.rs`: parse, [`run`], print the
//! error). See `uboot-scripts --help` and uboot-scripts/README.md.
use crate::{Board, Generated};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

/// The command line.
#[derive(Parser)]
#[command(
    name = "uboot-scripts",
    version,
    about = "Generate ZBot's U-Boot boot script and default environment from the slot file (docs/boot-contract.md)"
)]
pub struct Cli {
    /// Slot file (default: the built-in rootfs + otafs board, bootcount/dist/slots.toml).
    #[arg(long, global = true, conflicts_with = "layout")]
    pub slots: Option<PathBuf>,
    /// Or the card's partctl layout: the slots are `partctl emit slots LAYOUT`.
    #[arg(long, global = true)]
    pub layout: Option<PathBuf>,
    /// Board preset: milkv-duos (board), sandbox, qemu.
    #[arg(long, global = true, default_value = "milkv-duos")]
    pub board: String,
    /// Disk interface of the boot partition (overrides the preset: mmc, host, virtio).
    #[arg(long, global = true)]
    pub devtype: Option<String>,
    /// Disk device number, 0..255 (overrides the preset; written in hex, as U-Boot reads it).
    #[arg(long, global = true)]
    pub devnum: Option<u32>,
    /// Boot partition number, 1..128 (overrides the preset; written in hex, as U-Boot reads it).
    #[arg(long, global = true)]
    pub bootpart: Option<u32>,
    /// Kernel arguments before root= (overrides the preset; only boards whose command line
    /// is `${bootargs_base} ${root}`: sandbox, qemu. milkv-duos keeps the vendor's line).
    #[arg(long, global = true)]
    pub bootargs_base: Option<String>,
    /// The vendor U-Boot's default environment (`make u-boot-initial-env` in the vendor tree):
    /// kept in default-env, left alone by env-update and the board header (milkv-duos default:
    /// the built-in transcription of ../shared/BOARD.md, uboot-scripts/vendor/).
    #[arg(long, global = true)]
    pub vendor_env: Option<PathBuf>,
    /// The FIT configuration `bootm` boots (milkv-duos: config-cv1813h_milkv_duos_sd).
    #[arg(long, global = true)]
    pub fit_config: Option<String>,
    #[command(subcommand)]
    /// What to generate.
    pub cmd: Cmd,
}

/// What to generate.
#[derive(Subcommand)]
pub enum Cmd {
    /// The hush script (boot.cmd) on stdout: the policy and the kernel part.
    BootScript,
    /// boot.scr: the script as a legacy `mkimage -T script` image.
    BootScr {
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The default environment as u-boot-initial-env text (mkenvimage, fw-env --defaults).
    DefaultEnv,
    /// The C fragment for the vendor U-Boot board header (replaces SD_BOOTM_COMMAND).
    BoardHeader,
    /// Only the script variables (no next_boot, root arguments or root), as `name=value`
    /// lines for `fw_setenv -s -`: installs the policy into an existing environment.
    EnvUpdate,
}

/// Run one command, writing to `out` (stdout in the binary). The error is the whole message
/// (the binary prefixes `uboot-scripts: error: ` and exits 1).
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), String> {
    let (cfg, origin) = match (&cli.slots, &cli.layout) {
        (_, Some(p)) => {
            let l = partctl::layout::Layout::load(p).map_err(|e| e.to_string())?;
            let text = partctl::emit::emit(&l, partctl::emit::EmitKind::Slots);
            let origin = format!("{} (partctl emit slots)", p.display());
            let cfg =
                bootcount::SlotConfig::from_toml(&text, &origin).map_err(|e| e.to_string())?;
            (cfg, origin)
        }
        (Some(p), None) => (
            bootcount::SlotConfig::load(p).map_err(|e| e.to_string())?,
            p.display().to_string(),
        ),
        (None, None) => (
            bootcount::SlotConfig::builtin(),
            "the built-in slot file".to_string(),
        ),
    };
    let mut board = Board::preset(&cli.board).ok_or_else(|| {
        format!(
            "unknown board {:?}: use milkv-duos, sandbox or qemu",
            cli.board
        )
    })?;
    if let Some(v) = cli.devtype {
        board.devtype = v;
    }
    if let Some(v) = cli.devnum {
        board.devnum = v;
    }
    if let Some(v) = cli.bootpart {
        board.bootpart = v;
    }
    if let Some(v) = cli.bootargs_base {
        if !board.uses_bootargs_base() {
            return Err(format!(
                "--bootargs-base: board {} builds the kernel command line from the vendor's variables ({}): change othbootargs, consoledev or baudrate in the vendor environment instead",
                cli.board, board.cmdline
            ));
        }
        board.bootargs_base = v;
    }
    if let Some(p) = &cli.vendor_env {
        let text = std::fs::read_to_string(p).map_err(|e| {
            format!(
                "--vendor-env {}: cannot read it ({e}); make it with `make u-boot-initial-env` in the vendor U-Boot tree",
                p.display()
            )
        })?;
        board.vendor_env =
            crate::parse_vendor_env(&text, &p.display().to_string()).map_err(|e| e.to_string())?;
    }
    if let Some(c) = &cli.fit_config {
        if c.is_empty()
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!(
                "--fit-config {c:?}: not a FIT configuration name (e.g. config-cv1813h_milkv_duos_sd)"
            ));
        }
        if !board.bootm.contains("bootm ${uImage_addr}") {
            return Err(format!(
                "--fit-config: board {} does not boot a FIT image",
                cli.board
            ));
        }
        board.bootm = crate::board_bootm(c);
    }
    // Board settings come from the options, not the slot file: say so, not "{origin}: ...".
    board
        .validate()
        .map_err(|e| format!("board {} with the options given: {e}", cli.board))?;
    let g = Generated::new(&cfg, &board, &origin).map_err(|e| format!("{origin}: {e}"))?;
    let mut w = |s: &str| {
        out.write_all(s.as_bytes())
            .map_err(|e| format!("writing stdout: {e}"))
    };
    match cli.cmd {
        Cmd::BootScript => w(&g.boot_cmd()),
        Cmd::DefaultEnv => w(&g.default_env_text()),
        Cmd::BoardHeader => w(&g.board_header()),
        Cmd::EnvUpdate => {
            let text: String = g
                .script_vars(&cfg)
                .iter()
                .map(|(n, v)| format!("{n}={v}\n"))
                .collect();
            w(&text)
        }
        Cmd::BootScr { output } => {
            let img = crate::image::script_image(g.boot_cmd().as_bytes(), "zbot boot script", 0);
            std::fs::write(&output, img)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(args: &[&str]) -> Result<String, String> {
        let cli = Cli::try_parse_from(std::iter::once("uboot-scripts").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let mut o = Vec::new();
        run(cli, &mut o)?;
        Ok(String::from_utf8(o).unwrap())
    }

    #[test]
    fn commands_print_the_generated_text() {
        let g = Generated::new(&bootcount::SlotConfig::builtin(), &Board::qemu(), "x").unwrap();
        assert_eq!(
            out(&["--board", "qemu", "default-env"]).unwrap(),
            g.default_env_text()
        );
        assert!(out(&["env-update"])
            .unwrap()
            .starts_with("bootcmd=run zbot-policy\n"));
        let e = out(&["--board", "nope", "boot-script"]).unwrap_err();
        assert!(e.contains("unknown board \"nope\""), "{e}");
        // The card's layout gives the same slots as its committed slot file.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let layout = format!("{root}/partctl/layouts/zbot-duos.toml");
        assert_eq!(
            out(&["--layout", &layout, "default-env"]).unwrap(),
            out(&["default-env"]).unwrap()
        );
        let e = out(&["--bootargs-base", "console=ttyS1", "default-env"]).unwrap_err();
        assert!(
            e.contains("builds the kernel command line from the vendor's variables"),
            "{e}"
        );
        assert!(out(&[
            "--board",
            "sandbox",
            "--bootargs-base",
            "c=1",
            "default-env"
        ])
        .unwrap()
        .contains("\nbootargs_base=c=1\n"));
        let t = out(&[
            "--fit-config",
            "config-cv1812cp_milkv_duo256m_sd",
            "default-env",
        ])
        .unwrap();
        assert!(
            t.contains("bootm ${uImage_addr}#config-cv1812cp_milkv_duo256m_sd\n"),
            "{t}"
        );
        let e = out(&["--fit-config", "a b", "default-env"]).unwrap_err();
        assert!(e.contains("not a FIT configuration name"), "{e}");
        let e = out(&["--vendor-env", "/nonexistent/v.env", "default-env"]).unwrap_err();
        assert!(
            e.starts_with("--vendor-env /nonexistent/v.env: cannot read it")
                && e.contains("make u-boot-initial-env"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("uboot-scripts-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = dir.join("vendor.env");
        std::fs::write(
            &v,
            "uImage_addr=0x81400000\nsdboot=old\nfirst_boot=1\nbootcmd=run sdboot\n",
        )
        .unwrap();
        let t = out(&["--vendor-env", v.to_str().unwrap(), "default-env"]).unwrap();
        assert!(
            t.starts_with("bootcmd=run zbot-policy\nuImage_addr=0x81400000\n"),
            "{t}"
        );
        assert!(
            !t.contains("first_boot") && !t.contains("sdboot=old"),
            "{t}"
        );
        let u = out(&["--vendor-env", v.to_str().unwrap(), "env-update"]).unwrap();
        assert!(
            !u.contains("\nuImage_addr=") && u.contains("\nsdboot=run zbot-policy\n"),
            "{u}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e = out(&["--bootpart", "0", "boot-script"]).unwrap_err();
        assert!(
            e.starts_with("board milkv-duos with the options given: bootpart 0"),
            "{e}"
        );
    }
}
