//! The command line: parse, resolve the files into a [`Target`], run, print the error chain.
//! Exit codes: 0 migrated (or the plan printed), 1 could not run (I/O, layout, verify), 2 the
//! card was refused (neither the field's, nor migrated, nor mid-migration).

use crate::card::{Error, Target};
use clap::Parser;
use fw_env::Changes;
use std::path::PathBuf;
use std::process::ExitCode;

/// Migrate this robot's U-Boot environment to the redundant raw copies (run from recovery).
///
/// Steps, each skipped when already done, each power-safe: write both raw env copies with the
/// field env (and --set/--env-file); replace fip.bin by the new U-Boot; grow the env partition
/// in the GPT; switch fw_env.config. Rerun after any interruption.
#[derive(Debug, Parser)]
#[command(name = "zbot-migrate-env", version)]
pub struct Args {
    /// The new U-Boot image (built with `partctl emit uboot-fragment` of the layout).
    #[arg(long, value_name = "FILE")]
    pub fip: PathBuf,
    /// The target layout (partctl/layouts/zbot-duos-redund.toml).
    #[arg(long, value_name = "FILE")]
    pub layout: PathBuf,
    /// The SD card.
    #[arg(long, default_value = "/dev/mmcblk0")]
    pub card: PathBuf,
    /// Where the FAT boot partition holding fip.bin is mounted.
    #[arg(long, default_value = "/boot")]
    pub boot_dir: PathBuf,
    /// The field env file, as the old fw_env.config names it.
    #[arg(long, default_value = "/bootenv/uboot.env")]
    pub old_env: PathBuf,
    /// A fw_env.config to switch (repeat for several; default /etc/fw_env.config).
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// The device written into the new fw_env.config (default: the layout's linux_device).
    #[arg(long, value_name = "DEV")]
    pub config_device: Option<PathBuf>,
    /// Set a variable in the raw copies on top of the field env (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Variables to set on top of the field env, mkenvimage text (the new policy's defaults).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// fw-env's lock file, held during the run.
    #[arg(long, default_value = fw_env::lock::DEFAULT_LOCK_PATH)]
    pub lock_file: PathBuf,
    /// Print the state and the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// An error of the command line itself (before any card is read).
fn usage(msg: String) -> Result<ExitCode, Error> {
    eprintln!("zbot-migrate-env: error: {msg}");
    Ok(ExitCode::from(1))
}

/// Resolve the arguments into a [`Target`] and run it.
pub fn run(a: Args) -> Result<ExitCode, Error> {
    let new_fip = match std::fs::read(&a.fip) {
        Ok(b) if b.is_empty() => return usage(format!("--fip {}: empty file", a.fip.display())),
        Ok(b) => b,
        Err(e) => return usage(format!("--fip {}: {e}", a.fip.display())),
    };
    let layout = partctl::layout::Layout::load(&a.layout).map_err(|e| Error::Layout {
        path: a.layout.clone(),
        why: e.to_string(),
    })?;
    let mut overrides = Changes::new();
    if let Some(f) = &a.env_file {
        let text = match std::fs::read(f) {
            Ok(t) => t,
            Err(e) => return usage(format!("--env-file {}: {e}", f.display())),
        };
        for (k, v) in fw_env::defaults::parse_text(&text).iter() {
            overrides.set_exact(k.to_vec(), v.to_vec());
        }
    }
    for s in &a.set {
        match s.split_once('=') {
            Some((k, v)) if fw_env::vars::check_name(k.as_bytes()).is_ok() => {
                overrides.set_exact(k.as_bytes().to_vec(), v.as_bytes().to_vec())
            }
            _ => {
                return usage(format!(
                    "--set {s:?}: expected NAME=VALUE with a valid name"
                ))
            }
        }
    }
    let configs = if a.configs.is_empty() {
        vec![PathBuf::from("/etc/fw_env.config")]
    } else {
        a.configs
    };
    let t = Target {
        card: a.card,
        boot_dir: a.boot_dir,
        old_env: a.old_env,
        new_fip,
        layout,
        layout_path: a.layout,
        config_device: a.config_device,
        configs,
        overrides,
        lock_file: a.lock_file,
    };
    t.run(a.dry_run, &mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}

/// `main`: run and print the error chain with what to do.
pub fn main(a: Args) -> ExitCode {
    match run(a) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zbot-migrate-env: error: {}", fw_env::error_chain(&e));
            match e {
                Error::Refused { .. } => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}
