//! The terminal side of `update`'s [`Ui`]: progress bars when stderr is a terminal (indicatif,
//! one bar per robot), plain lines when it is not (a log file, CI), nothing with `--json`.

use crate::update::{Lines, Quiet, Ui};

/// The Ui for this run: `--json` -> nothing; stderr a terminal -> bars (when built with the
/// `bars` feature); else plain lines.
pub fn choose(json: bool) -> Box<dyn Ui> {
    if json {
        return Box::new(Quiet);
    }
    #[cfg(feature = "bars")]
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return Box::new(bars::Bars::default());
    }
    Box::new(Lines::default())
}

#[cfg(feature = "bars")]
mod bars {
    use crate::report::Report;
    use crate::update::Ui;
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// One bar per robot under a MultiProgress; lines printed above the bars.
    #[derive(Default)]
    pub struct Bars {
        mp: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    }

    impl Bars {
        fn bar(&self, host: &str, total: u64) -> ProgressBar {
            let mut m = self.bars.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(host.to_string())
                .or_insert_with(|| {
                    let b = self.mp.add(ProgressBar::new(total));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_prefix(host.to_string());
                    b
                })
                .clone()
        }
    }

    impl Ui for Bars {
        fn line(&self, host: &str, text: &str) {
            let _ = self.mp.println(format!("{host}: {text}"));
        }
        fn progress(&self, host: &str, sent: u64, total: u64) {
            let b = self.bar(host, total);
            b.set_length(total);
            b.set_position(sent);
        }
        fn finish(&self, host: &str, r: &Report) {
            let b = self
                .bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(host);
            if let Some(b) = b {
                b.finish_and_clear();
            }
            let _ = self.mp.println(format!(
                "{host}: done: {}",
                r.json()["outcome"].as_str().unwrap_or("")
            ));
        }
    }
}
