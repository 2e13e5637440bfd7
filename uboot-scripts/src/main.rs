//! `uboot-scripts`: generate the U-Boot boot script, default environment, board header and
//! `boot.scr` from the slot file. See `uboot-scripts --help` and uboot-scripts/README.md.
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use uboot_scripts::{image, Board, Generated};

#[derive(Parser)]
#[command(
    name = "uboot-scripts",
    version,
    about = "Generate ZBot's U-Boot boot script and default environment from the slot file (docs/boot-contract.md)"
)]
struct Cli {
    /// Slot file (default: the built-in rootfs + otafs board, bootcount/dist/slots.toml).
    #[arg(long, global = true)]
    slots: Option<PathBuf>,
    /// Board preset: milkv-duos (board), sandbox, qemu.
    #[arg(long, global = true, default_value = "milkv-duos")]
    board: String,
    /// Disk interface of the boot partition (overrides the preset: mmc, host, virtio).
    #[arg(long, global = true)]
    devtype: Option<String>,
    /// Disk device number, 0..255 (overrides the preset; written in hex, as U-Boot reads it).
    #[arg(long, global = true)]
    devnum: Option<u32>,
    /// Boot partition number, 1..128 (overrides the preset; written in hex, as U-Boot reads it).
    #[arg(long, global = true)]
    bootpart: Option<u32>,
    /// Kernel arguments before root= (overrides the preset).
    #[arg(long, global = true)]
    bootargs_base: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
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

fn run(cli: Cli) -> Result<(), String> {
    let (cfg, origin) = match &cli.slots {
        Some(p) => (
            bootcount::SlotConfig::load(p).map_err(|e| e.to_string())?,
            p.display().to_string(),
        ),
        None => (
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
        board.bootargs_base = v;
    }
    // Board settings come from the options, not the slot file: say so, not "{origin}: ...".
    board
        .validate()
        .map_err(|e| format!("board {} with the options given: {e}", cli.board))?;
    let g = Generated::new(&cfg, &board, &origin).map_err(|e| format!("{origin}: {e}"))?;
    let mut out = std::io::stdout().lock();
    let w = |out: &mut std::io::StdoutLock, s: &str| {
        out.write_all(s.as_bytes())
            .map_err(|e| format!("writing stdout: {e}"))
    };
    match cli.cmd {
        Cmd::BootScript => w(&mut out, &g.boot_cmd()),
        Cmd::DefaultEnv => w(&mut out, &g.default_env_text()),
        Cmd::BoardHeader => w(&mut out, &g.board_header()),
        Cmd::EnvUpdate => {
            let text: String = g
                .script_vars(&cfg)
                .iter()
                .map(|(n, v)| format!("{n}={v}\n"))
                .collect();
            w(&mut out, &text)
        }
        Cmd::BootScr { output } => {
            let img = image::script_image(g.boot_cmd().as_bytes(), "zbot boot script", 0);
            std::fs::write(&output, img)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uboot-scripts: error: {e}");
            ExitCode::from(1)
        }
    }
}
