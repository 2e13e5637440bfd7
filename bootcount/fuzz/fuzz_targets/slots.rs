//! The slot file parser: any text is a slot configuration or an error, never a panic; what
//! parses has exactly one recovery slot.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cfg) = bootcount::SlotConfig::from_toml(text, "fuzz.toml") {
            let r = cfg.recovery();
            assert_eq!(cfg.slot(r).role, bootcount::Role::Recovery);
            let _ = cfg.default_env();
        }
    }
});
