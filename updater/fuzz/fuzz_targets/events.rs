//! The parser of SWUpdate's websocket messages on arbitrary text: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = zbot_updater::events::parse_msg(s);
        let _ = zbot_updater::events::parse_msgs(s);
    }
});
