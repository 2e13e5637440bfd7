//! The fw_env.config parser: any text is a config or an error naming the line, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match fw_env::Config::parse(text, "fuzz.config") {
            Ok(c) => {
                assert!(matches!(c.copies.len(), 1 | 2));
                // Whatever parses is within bounds: no allocation or arithmetic from an
                // unchecked number, no overlapping copies.
                c.validate().expect("a parsed config validates");
                for copy in &c.copies {
                    assert!(copy.size <= fw_env::config::MAX_ENV_SIZE);
                }
            }
            Err(e) => assert!(e.to_string().contains("fuzz.config")),
        }
    }
});
