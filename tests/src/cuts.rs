//! Power cuts as the env tests make them (docs/env-backend.md):
//!
//! - **the seeded kill loop**: the real U-Boot (sandbox or QEMU) is SIGKILLed a random delay into
//!   its save; [`seeded_cuts`] draws the delays (and a scenario per cut) from proptest's
//!   generator seeded with the test's seed, so a run is reproducible from the seed it prints.

use crate::differential::seeded_runner;
use proptest::strategy::{Strategy, ValueTree};
use std::time::Duration;

/// One power cut of a seeded kill loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// 0-based number of the cut.
    pub index: usize,
    /// Which of the test's scenarios (`0..choices`).
    pub choice: usize,
    /// How long after the save started the power goes.
    pub delay: Duration,
}

/// The seeded kill loop's cuts: `n` cuts, each a scenario in `0..choices` and a delay uniform
/// in `0..range` (whole microseconds), drawn by proptest's runner seeded with `seed`.
pub fn seeded_cuts(seed: u64, n: usize, choices: usize, range: Duration) -> Vec<Cut> {
    let mut runner = seeded_runner(seed);
    let range_us = (range.as_micros() as u64).max(1);
    let strategy = (0..choices.max(1), 0..range_us);
    (0..n)
        .map(|index| {
            let (choice, us) = strategy
                .new_tree(&mut runner)
                .expect("ranges never reject")
                .current();
            Cut {
                index,
                choice,
                delay: Duration::from_micros(us),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_are_reproducible_from_the_seed_and_in_range() {
        let a = seeded_cuts(7, 200, 3, Duration::from_millis(150));
        assert_eq!(a, seeded_cuts(7, 200, 3, Duration::from_millis(150)));
        assert_ne!(a, seeded_cuts(8, 200, 3, Duration::from_millis(150)));
        assert!(a
            .iter()
            .all(|c| c.choice < 3 && c.delay < Duration::from_millis(150)));
        assert!(
            (0..3).all(|k| a.iter().any(|c| c.choice == k)),
            "every scenario drawn"
        );
        assert_eq!(
            a.iter().map(|c| c.index).collect::<Vec<_>>(),
            (0..200).collect::<Vec<_>>()
        );
    }
}
