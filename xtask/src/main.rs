//! `cargo xtask man OUT_DIR` | `cargo xtask completions OUT_DIR`: see xtask/README.md.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, out) = match args.as_slice() {
        [task, out] => (task.as_str(), PathBuf::from(out)),
        _ => return usage(),
    };
    let written = match task {
        "man" => xtask::write_man(&out),
        "completions" => xtask::write_completions(&out),
        _ => return usage(),
    };
    match written {
        Ok(n) => {
            println!("xtask: {n} files written under {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask: error: cannot write under {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask man OUT_DIR          (pages in OUT_DIR/man1: install as /usr/share/man)\n       \
         cargo xtask completions OUT_DIR  (bash, zsh, fish: install OUT_DIR as /usr/share)"
    );
    ExitCode::from(2)
}
