//! `update`'s parsers of what comes from the network and the command line, on arbitrary
//! bytes: the websocket frame decoder (whole and split), the HTTP reply readers, the digest
//! challenge and the HOST:PORT parser. Never a panic, never a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = zbot_updater::ws::Decoder::default();
    let _ = d.feed(data);
    let mut d = zbot_updater::ws::Decoder::default();
    let cut = data.len() / 3;
    let _ = d.feed(&data[..cut]).and_then(|_| d.feed(&data[cut..]));
    let _ = zbot_updater::ws::read_handshake(&mut &data[..]);
    let _ = zbot_updater::client::read_reply(data, 1 << 16, "fuzz");
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = zbot_updater::client::status_code(s);
        let _ = zbot_updater::digest::parse_challenge(s);
        let _ = zbot_updater::update::parse_target(s, 10000);
    }
});
