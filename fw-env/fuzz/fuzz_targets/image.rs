//! The image parser: any bytes, either layout, must decode or be refused, never panic; what
//! decodes must re-encode to an image that decodes to the same variables.
#![no_main]
use fw_env::codec::{self, Layout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for layout in [Layout::Single, Layout::Redundant] {
        let _ = codec::header(data, layout);
        let (vars, used) = codec::parse_data(data);
        assert!(used <= data.len().max(1));
        let _ = codec::uboot_view(&vars);
        if let Ok(d) = codec::decode(data, layout) {
            // A data area with no terminator is accepted (as U-Boot accepts it) but its
            // variables need one or two more bytes than it has: then encode says "full".
            match codec::encode(&d.vars, data.len(), layout, d.flags.unwrap_or(0)) {
                Ok(again) => assert_eq!(codec::decode(&again, layout).unwrap().vars, d.vars),
                Err(codec::EncodeError::Full { needed, available }) => {
                    assert!(needed > available && needed <= available + 2)
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
});
