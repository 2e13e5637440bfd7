//! `zbot-updater inspect`'s reader on arbitrary bytes: the cpio reader, the member checks and
//! the sw-description (libconfig) parser must return errors, never panic or loop.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = zbot_updater::inspect::read(data) {
        let _ = a.problems();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(v) = zbot_updater::swdesc::parse(text) {
            let _ = zbot_updater::swdesc::artifacts(&v);
        }
    }
});
