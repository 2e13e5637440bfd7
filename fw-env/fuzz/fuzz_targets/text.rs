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
    // Defaults validation: never a panic; an empty or bootcmd-less file is never usable.
    let d = fw_env::Defaults::parse(data, None, fw_env::DefaultsFrom::Caller);
    let why = d.unusable(&["next_boot".to_owned()], "fuzz");
    if d.vars.get("bootcmd").is_none() {
        assert!(why.is_some());
    }
    // The line-tracking split used for messages sees the entries mkenvimage stores.
    let n: usize = fw_env::defaults::entries_with_lines(data)
        .iter()
        .map(|(_, e)| e.split(|&c| c == 0).filter(|e| !e.is_empty()).count())
        .sum();
    // (Without NULs: a NUL in the text ends mkenvimage's data area early.)
    if !data.contains(&0) {
        if let Ok(img) = codec::mkimage_from_text(data, data.len() + 16, Layout::Single, 0) {
            assert_eq!(n, codec::raw_entries(&img[codec::CRC_SIZE..]).len());
        }
    }
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
