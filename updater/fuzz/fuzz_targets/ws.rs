//! The websocket frame decoder and the HTTP reply readers (`update`'s parsers of what
//! SWUpdate's web server sends) on arbitrary bytes: never a panic, never a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = zbot_updater::ws::Decoder::default();
    // The same bytes whole and in two pieces.
    let _ = d.feed(data);
    let mut d = zbot_updater::ws::Decoder::default();
    let cut = data.len() / 3;
    let _ = d.feed(&data[..cut]).and_then(|_| d.feed(&data[cut..]));
    let _ = zbot_updater::ws::read_handshake(&mut &data[..]);
    let _ = zbot_updater::client::read_reply(data, 1 << 16, "fuzz");
});
