//! The text parsers: mkenvimage-style input, defaults files and fw_setenv scripts.
#![no_main]
use fw_env::codec::{self, Layout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for size in [8usize, 64, 4096] {
        if let Ok(img) = codec::mkimage_from_text(data, size, Layout::Redundant, 0xff) {
            assert_eq!(img.len(), size);
            assert!(codec::decode(&img, Layout::Redundant).is_ok());
        }
    }
    let _ = fw_env::store::parse_defaults_text(data);
    use fw_env::cli::dropin::{parse_script, Script, Style};
    let script = Script {
        name: "fuzz".to_owned(),
        text: data.to_vec(),
    };
    for style in [Style::Libubootenv, Style::UbootTools] {
        if let Ok(changes) = parse_script(style, &script) {
            let mut vars = fw_env::Vars::new();
            assert!(vars.apply(&changes).is_ok(), "a parsed script applies");
        }
    }
});
