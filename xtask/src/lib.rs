//! Chores for the workspace, as Rust rather than bash (see xtask/README.md).
//!
//! Man pages and shell completions come from the `clap::Command` each crate's library already
//! parses with, so a page cannot describe an option the binary does not have. No binary is
//! built or run to make them.
#![deny(missing_docs)]

pub mod dist;
pub mod fuzz;
pub mod suite;
pub mod summary;

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use fw_env::cli::dropin::{self, Tool};

/// Every installed program, under the name it is run as: `fw_printenv` and `fw_setenv` are
/// the `fw-env` binary under other names (symlinks), with their own options and pages.
pub fn programs() -> Vec<clap::Command> {
    vec![
        fw_env::cli::friendly::Cli::command(),
        dropin::command(Tool::Print),
        dropin::command(Tool::Set),
        bootcount::cli::Cli::command(),
        partctl::cli::Cli::command(),
        uboot_scripts::cli::Cli::command(),
        zbot_updater::cli::Cli::command(),
        zbot_migrate_env::cli::Args::command(),
    ]
}

/// The shells we write completions for, each with where its file goes under `/usr/share`
/// (the directories Debian and Buildroot's bash, zsh and fish packages read).
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash-completion/completions"),
    (Shell::Zsh, "zsh/site-functions"),
    (Shell::Fish, "fish/vendor_completions.d"),
];

/// The subcommands a user can type, depth first: `(path, command)` with the path from the
/// program's name (`["bootcount", "health", "run"]`). clap's implicit `help` is left out.
pub fn subcommands(cmd: &clap::Command) -> Vec<(Vec<String>, clap::Command)> {
    fn walk(path: &[String], cmd: &clap::Command, out: &mut Vec<(Vec<String>, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let mut p = path.to_vec();
            p.push(sub.get_name().to_owned());
            out.push((p.clone(), sub.clone()));
            walk(&p, sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&[cmd.get_name().to_owned()], cmd, &mut out);
    out
}

/// The man pages of one program: `NAME.1`, and `NAME-SUB.1` for every subcommand (as git
/// does), as `(file name, roff)`.
pub fn man_pages(cmd: &clap::Command) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut pages = vec![(format!("{}.1", cmd.get_name()), render(cmd.clone())?)];
    for (path, sub) in subcommands(&cmd) {
        let name = path.join("-");
        // After `build`, a subcommand's display name is `NAME-SUB`: the page's title.
        let page = render(sub)?;
        pages.push((format!("{name}.1"), page));
    }
    Ok(pages)
}

fn render(cmd: clap::Command) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    Ok(out)
}

/// The completion script of one program for `shell`, and its file name in that shell's
/// directory (`NAME`, `_NAME`, `NAME.fish`).
pub fn completion(cmd: &clap::Command, shell: Shell) -> (String, Vec<u8>) {
    let mut cmd = cmd.clone();
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, &name, &mut out);
    let file = match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        _ => name,
    };
    (file, out)
}

/// `cargo xtask man OUT_DIR`: every page into `OUT_DIR/man1/` (install `OUT_DIR` as
/// `/usr/share/man`).
pub fn write_man(out_dir: &Path) -> io::Result<usize> {
    let dir = out_dir.join("man1");
    std::fs::create_dir_all(&dir)?;
    let mut n = 0;
    for cmd in programs() {
        for (file, page) in man_pages(&cmd)? {
            std::fs::write(dir.join(file), page)?;
            n += 1;
        }
    }
    Ok(n)
}

/// `cargo xtask completions OUT_DIR`: every script into `OUT_DIR/<shell's directory>/`
/// (install `OUT_DIR` as `/usr/share`).
pub fn write_completions(out_dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for (shell, sub) in SHELLS {
        let dir = out_dir.join(sub);
        std::fs::create_dir_all(&dir)?;
        for cmd in programs() {
            let (file, script) = completion(&cmd, shell);
            std::fs::write(dir.join(file), script)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the installed programs are run as: the binaries and the drop-in's symlinks.
    const NAMES: [&str; 8] = [
        "fw-env",
        "fw_printenv",
        "fw_setenv",
        "bootcount",
        "partctl",
        "uboot-scripts",
        "zbot-updater",
        "zbot-migrate-env",
    ];

    #[test]
    fn every_program_has_a_page_per_subcommand_naming_its_subcommands() {
        let programs = programs();
        let names: Vec<&str> = programs.iter().map(|c| c.get_name()).collect();
        assert_eq!(names, NAMES);
        for cmd in &programs {
            let pages = man_pages(cmd).unwrap();
            let text = |file: &str| {
                let (_, page) = pages.iter().find(|(f, _)| f == file).unwrap_or_else(|| {
                    panic!("{}: no page {file}", cmd.get_name());
                });
                String::from_utf8(page.clone()).unwrap()
            };
            let top = text(&format!("{}.1", cmd.get_name()));
            assert!(top.contains(".TH"), "{}: not a man page", cmd.get_name());
            for (path, _) in subcommands(cmd) {
                let parent = text(&format!("{}.1", path[..path.len() - 1].join("-")));
                // roff writes a `-` as `\-`.
                let name = path.last().unwrap().replace('-', "\\-");
                assert!(parent.contains(&name), "{path:?} not in its parent's page");
                text(&format!("{}.1", path.join("-")));
            }
            assert_eq!(pages.len(), 1 + subcommands(cmd).len());
        }
    }

    #[test]
    fn every_completion_names_every_subcommand() {
        for cmd in programs() {
            let subs = subcommands(&cmd);
            let drop_in = matches!(cmd.get_name(), "fw_printenv" | "fw_setenv");
            // The drop-ins and the one-job migration take options only.
            let flat = drop_in || cmd.get_name() == "zbot-migrate-env";
            assert_eq!(subs.is_empty(), flat, "{}", cmd.get_name());
            for (shell, _) in SHELLS {
                let (file, script) = completion(&cmd, shell);
                let script = String::from_utf8(script).unwrap();
                assert!(file.contains(cmd.get_name()));
                for (path, _) in &subs {
                    let name = path.last().unwrap();
                    assert!(
                        script.contains(name.as_str()),
                        "{shell}: {path:?} in {file}"
                    );
                }
                for long in ["config", "help"] {
                    if drop_in {
                        assert!(script.contains(long), "{shell}: --{long} in {file}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_commands_write_the_install_trees() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_man(dir.path()).unwrap();
        let scripts = write_completions(dir.path()).unwrap();
        assert_eq!(scripts, 3 * NAMES.len());
        for name in NAMES {
            assert!(dir.path().join(format!("man1/{name}.1")).is_file());
            assert!(dir
                .path()
                .join(format!("bash-completion/completions/{name}"))
                .is_file());
            assert!(dir
                .path()
                .join(format!("zsh/site-functions/_{name}"))
                .is_file());
            assert!(dir
                .path()
                .join(format!("fish/vendor_completions.d/{name}.fish"))
                .is_file());
        }
        assert!(dir.path().join("man1/bootcount-health-run.1").is_file());
        assert_eq!(
            std::fs::read_dir(dir.path().join("man1")).unwrap().count(),
            pages
        );
    }
}
