//! The command line of `uboot-scripts`: [`run`]`(args, io) -> Result<ExitCode, CliError>`, the
//! workspace's one convention (the binary, `main.rs`, prints the error and exits with its
//! code). See `uboot-scripts --help` and uboot-scripts/README.md.
use crate::{Board, GenError, Generated};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// The output streams, injectable for tests.
pub struct Io<'a> {
    /// Standard output: the generated text.
    pub out: &'a mut dyn Write,
    /// Standard error: the error line.
    pub err: &'a mut dyn Write,
}

/// Why a command stopped. Each names the file or option at fault and carries its exit code
/// ([`CliError::exit_code`]): 2 for a usage error, 1 for everything else; nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is not understood (clap's message, with the usage).
    #[error("{0}")]
    Usage(clap::Error),
    /// `--layout`: partctl's error (it names the file; said once).
    #[error("{}", named(path, source))]
    Layout {
        /// The layout file.
        path: PathBuf,
        /// partctl's reason (boxed: it is large and rare).
        source: Box<partctl::layout::LayoutError>,
    },
    /// The slot file (bootcount's error names it).
    #[error(transparent)]
    Slots(#[from] bootcount::slots::ConfigError),
    /// `--board` is not a preset.
    #[error("unknown board {0:?}: use milkv-duos, sandbox or qemu")]
    UnknownBoard(String),
    /// An option that does not fit the board or is malformed (the message names it).
    #[error("{0}")]
    BadOption(String),
    /// `--vendor-env` cannot be read.
    #[error("--vendor-env {}: cannot read it ({source}); make it with `make u-boot-initial-env` in the vendor U-Boot tree", path.display())]
    VendorEnvRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--vendor-env` cannot be used (the generator's error names the file and line).
    #[error(transparent)]
    VendorEnv(GenError),
    /// The board's settings after the options (they come from the options, not the slot file).
    #[error("board {board} with the options given: {source}")]
    Board {
        /// `--board`.
        board: String,
        /// Why.
        source: GenError,
    },
    /// The slot file cannot be turned into a script.
    #[error("{origin}: {source}")]
    Generate {
        /// The slot file (or layout) it came from.
        origin: String,
        /// Why.
        source: GenError,
    },
    /// `boot-scr --output` cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Output {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Standard output cannot be written.
    #[error("writing stdout: {0}")]
    Stdout(std::io::Error),
}

impl CliError {
    /// 2 for a usage error, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }

    /// The text for stderr: clap's own for a usage error, else `uboot-scripts: error: ...`.
    pub fn render(&self) -> String {
        match self {
            CliError::Usage(e) => e.to_string(),
            e => format!("uboot-scripts: error: {e}\n"),
        }
    }
}

/// An error message naming `path` once (partctl's layout errors mostly name it already).
fn named(path: &Path, e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let p = path.display().to_string();
    if s.contains(&p) {
        s
    } else {
        format!("layout {p}: {s}")
    }
}

/// Run `uboot-scripts` on its arguments (`args[0]` is the program), writing through `io`.
pub fn run(args: Vec<OsString>, io: &mut Io) -> Result<ExitCode, CliError> {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if e.exit_code() == 0 => {
            // --help, --version
            write!(io.out, "{e}").map_err(CliError::Stdout)?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(CliError::Usage(e)),
    };
    run_cli(cli, io.out)?;
    io.out.flush().map_err(CliError::Stdout)?;
    Ok(ExitCode::SUCCESS)
}

/// Run one parsed command, writing to `out`.
pub fn run_cli(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    let (cfg, origin) = match (&cli.slots, &cli.layout) {
        (_, Some(p)) => {
            let l = partctl::layout::Layout::load(p).map_err(|source| CliError::Layout {
                path: p.clone(),
                source: Box::new(source),
            })?;
            let text = partctl::emit::emit(&l, partctl::emit::EmitKind::Slots);
            let origin = format!("{} (partctl emit slots)", p.display());
            let cfg = bootcount::SlotConfig::from_toml(&text, &origin)?;
            (cfg, origin)
        }
        (Some(p), None) => (bootcount::SlotConfig::load(p)?, p.display().to_string()),
        (None, None) => (
            bootcount::SlotConfig::builtin(),
            "the built-in slot file".to_string(),
        ),
    };
    let mut board =
        Board::preset(&cli.board).ok_or_else(|| CliError::UnknownBoard(cli.board.clone()))?;
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
            return Err(CliError::BadOption(format!(
                "--bootargs-base: board {} builds the kernel command line from the vendor's variables ({}): change othbootargs, consoledev or baudrate in the vendor environment instead",
                cli.board, board.cmdline
            )));
        }
        board.bootargs_base = v;
    }
    if let Some(p) = &cli.vendor_env {
        let text = std::fs::read_to_string(p).map_err(|source| CliError::VendorEnvRead {
            path: p.clone(),
            source,
        })?;
        board.vendor_env = crate::parse_vendor_env(&text, &p.display().to_string())
            .map_err(CliError::VendorEnv)?;
    }
    if let Some(c) = &cli.fit_config {
        if c.is_empty()
            || !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(CliError::BadOption(format!(
                "--fit-config {c:?}: not a FIT configuration name (e.g. config-cv1813h_milkv_duos_sd)"
            )));
        }
        if !board.bootm.contains("bootm ${uImage_addr}") {
            return Err(CliError::BadOption(format!(
                "--fit-config: board {} does not boot a FIT image",
                cli.board
            )));
        }
        board.bootm = crate::board_bootm(c);
    }
    // Board settings come from the options, not the slot file: say so, not "{origin}: ...".
    board.validate().map_err(|source| CliError::Board {
        board: cli.board.clone(),
        source,
    })?;
    let g = Generated::new(&cfg, &board, &origin).map_err(|source| CliError::Generate {
        origin: origin.clone(),
        source,
    })?;
    let mut w = |s: &str| out.write_all(s.as_bytes()).map_err(CliError::Stdout);
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
            std::fs::write(&output, img).map_err(|source| CliError::Output {
                path: output.clone(),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(args: &[&str]) -> Result<String, String> {
        let argv = std::iter::once("uboot-scripts")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut o,
            err: &mut e,
        };
        match run(argv, &mut io) {
            Ok(code) => assert_eq!(code, ExitCode::SUCCESS),
            Err(e) => {
                assert_eq!(e.exit_code(), 1, "{e}");
                return Err(e.to_string());
            }
        }
        Ok(String::from_utf8(o).unwrap())
    }

    /// Each error carries its exit code and names the file or option.
    #[test]
    fn errors_carry_their_exit_code_and_name_the_file() {
        let run_err = |args: &[&str]| {
            let argv = std::iter::once("uboot-scripts")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            let (mut o, mut e) = (Vec::new(), Vec::new());
            run(
                argv,
                &mut Io {
                    out: &mut o,
                    err: &mut e,
                },
            )
            .unwrap_err()
        };
        let e = run_err(&["no-such-command"]);
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.render().contains("Usage: uboot-scripts"),
            "{}",
            e.render()
        );
        for (args, file) in [
            (
                &["--slots", "/nonexistent/slots.toml", "boot-script"][..],
                "/nonexistent/slots.toml",
            ),
            (
                &["--layout", "/nonexistent/card.toml", "boot-script"][..],
                "/nonexistent/card.toml",
            ),
            (
                &["--vendor-env", "/nonexistent/v.env", "default-env"][..],
                "/nonexistent/v.env",
            ),
            (
                &["boot-scr", "-o", "/nonexistent/dir/boot.scr"][..],
                "/nonexistent/dir/boot.scr",
            ),
        ] {
            let e = run_err(args);
            assert_eq!(e.exit_code(), 1, "{args:?}");
            let r = e.render();
            assert!(
                r.starts_with("uboot-scripts: error: ") && r.contains(file),
                "{args:?}: {r}"
            );
        }
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
