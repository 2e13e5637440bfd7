//! The environment and command-line parsers behind the policy: any variables (as U-Boot could
//! hold them after garbage was written) and any command line give a decision that boots a slot
//! and changes only policy variables; status and the kernel command line never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "next_boot", "zbot_once", "zbot_trial", "zbot_tries", "zbot_bootlimit", "zbot_prev",
    "zbot_rb_slot", "zbot_rb_reason", "zbot_bad_rootfs", "zbot_bad_otafs", "rootfs", "otafs",
];

fuzz_target!(|data: &[u8]| {
    let cfg = bootcount::SlotConfig::builtin();
    // Split the input into one value per name, and the rest as a command line.
    let mut parts = data.split(|&b| b == 0);
    let mut vars = fw_env::Vars::new();
    for name in NAMES {
        if let Some(v) = parts.next() {
            let _ = vars.set(name.as_bytes().to_vec(), v.to_vec());
        }
    }
    let cmdline: Vec<u8> = parts.flatten().copied().collect();
    let decision = bootcount::bootloader_step(&cfg, &vars);
    let _ = cfg.name(decision.slot);
    for (name, _) in decision.changes.iter() {
        assert!(name.starts_with("zbot_") || name == "next_boot", "bootloader wrote {name}");
    }
    let booted = bootcount::cmdline::booted_slot(&cfg, &vars, &String::from_utf8_lossy(&cmdline));
    let _ = bootcount::status(&cfg, &vars, booted.ok().flatten());
});
