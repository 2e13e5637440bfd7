//! A receive-only websocket client for SWUpdate's progress stream: the upgrade request, then
//! frames read and never answered. SWUpdate's websocket is server-to-client only; this client
//! writes nothing after the handshake (no pong, no close, no masking state), so it cannot
//! disturb the upload running beside it on another connection (see updater/README.md,
//! "The push client"). The frame decoder is pure, for the property tests and the fuzz target.

use std::io::Read;

/// Largest frame payload accepted: SWUpdate's messages are under 4.2 KiB.
pub const MAX_PAYLOAD: u64 = 1 << 20;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN bit.
    pub fin: bool,
    /// Opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong, 0 continuation).
    pub opcode: u8,
    /// Payload, unmasked.
    pub payload: Vec<u8>,
}

/// Why a byte stream is not a websocket stream we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Length over [`MAX_PAYLOAD`].
    #[error("websocket frame of {0} bytes (at most {MAX_PAYLOAD})")]
    TooLong(u64),
    /// Reserved bits set (no extension was negotiated).
    #[error("websocket frame with reserved bits {0:#x}")]
    Reserved(u8),
}

/// Decode the first frame of `buf`: `Ok(None)` when more bytes are needed, else the frame and
/// the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved(b0 & 0x70));
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLong(len));
    }
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        let m = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
        at += 4;
        Some(m)
    } else {
        None
    };
    let end = at + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let mut payload = buf[at..end].to_vec();
    if let Some(m) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= m[i % 4];
        }
    }
    Ok(Some((
        Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload,
        },
        end,
    )))
}

/// Reassembles text messages from a byte stream (fragments joined, control frames dropped).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    partial: Option<Vec<u8>>,
}

/// What the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole text (or binary) message.
    Text(String),
    /// The server sent a close frame.
    Close,
}

impl Decoder {
    /// Feed bytes; returns the messages completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some((f, n)) = decode(&self.buf)? {
            self.buf.drain(..n);
            match f.opcode {
                1 | 2 => {
                    if f.fin {
                        out.push(Event::Text(
                            String::from_utf8_lossy(&f.payload).into_owned(),
                        ));
                    } else {
                        self.partial = Some(f.payload);
                    }
                }
                0 => {
                    if let Some(p) = self.partial.as_mut() {
                        p.extend_from_slice(&f.payload);
                        if p.len() as u64 > MAX_PAYLOAD {
                            return Err(FrameError::TooLong(p.len() as u64));
                        }
                        if f.fin {
                            let p = self.partial.take().unwrap_or_default();
                            out.push(Event::Text(String::from_utf8_lossy(&p).into_owned()));
                        }
                    }
                }
                8 => out.push(Event::Close),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// The upgrade request for `/ws` (the key is fixed: the server only echoes it back hashed, and
/// we do not check its answer beyond the status 101).
pub fn upgrade_request(host: &str, port: u16, auth: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Read the handshake reply up to its blank line (at most 8 KiB), one byte at a time so no
/// frame byte after it is consumed. Returns the status code and the head.
pub fn read_handshake(r: &mut impl Read) -> std::io::Result<(u16, String)> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 8 << 10 {
            return Err(std::io::Error::other("websocket reply head over 8 KiB"));
        }
        if r.read(&mut b)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed during the websocket handshake",
            ));
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status in the websocket reply"))?;
    Ok((code, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame as a server (unmasked) or a client (masked) writes it.
    fn encode(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut v = vec![(u8::from(fin) << 7) | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => v.push(m | n as u8),
            n if n < 65536 => {
                v.push(m | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(m | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                v.extend_from_slice(&k);
                v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => v.extend_from_slice(payload),
        }
        v
    }

    #[test]
    fn swupdate_frames() {
        // As mongoose 7.8 sends SWUpdate's messages: FIN+text, unmasked, 16-bit length when long.
        let msg = "{\r\n\t\"type\": \"status\",\r\n\t\"status\": \"FAILURE\"\r\n}\r\n";
        let f = encode(true, 1, msg.as_bytes(), None);
        assert_eq!(
            decode(&f).unwrap(),
            Some((
                Frame {
                    fin: true,
                    opcode: 1,
                    payload: msg.as_bytes().to_vec()
                },
                f.len()
            ))
        );
        let long = "x".repeat(4000);
        let f = encode(true, 1, long.as_bytes(), None);
        assert_eq!(f[1], 126);
        assert_eq!(decode(&f).unwrap().unwrap().0.payload.len(), 4000);
        // Incomplete: more bytes needed, never an error.
        for cut in 0..f.len() {
            assert_eq!(decode(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(
            decode(&[0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0]),
            Err(FrameError::TooLong(1 << 32))
        );
        assert_eq!(decode(&[0xC1, 0]), Err(FrameError::Reserved(0x40)));
    }

    #[test]
    fn fragments_are_joined_and_control_frames_dropped() {
        let mut d = Decoder::default();
        let mut s = encode(false, 1, b"{\"type\":", None);
        s.extend(encode(true, 9, b"ping", None));
        s.extend(encode(true, 0, b"\"status\"}", None));
        s.extend(encode(true, 8, b"", None));
        assert_eq!(
            d.feed(&s).unwrap(),
            vec![Event::Text("{\"type\":\"status\"}".into()), Event::Close]
        );
    }

    #[test]
    fn handshake_reply_is_read_to_its_blank_line_only() {
        let mut r: &[u8] =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi";
        let (code, head) = read_handshake(&mut r).unwrap();
        assert_eq!(code, 101);
        assert!(head.ends_with("\r\n\r\n"));
        assert_eq!(r, b"\x81\x02hi");
        let mut r: &[u8] = b"HTTP/1.1 401 Unauth";
        assert!(read_handshake(&mut r).is_err());
    }

    proptest! {
        /// Any sequence of frames, cut into any pieces, decodes to the same messages.
        #[test]
        fn roundtrip_any_split(
            msgs in proptest::collection::vec(("[ -~]{0,300}", any::<bool>(), any::<[u8; 4]>()), 0..6),
            cuts in proptest::collection::vec(1usize..97, 0..40),
        ) {
            let mut stream = Vec::new();
            for (m, masked, k) in &msgs {
                stream.extend(encode(true, 1, m.as_bytes(), masked.then_some(*k)));
            }
            let mut d = Decoder::default();
            let mut got = Vec::new();
            let mut rest = &stream[..];
            for c in cuts.iter().cycle().take(stream.len() + 1) {
                if rest.is_empty() { break; }
                let n = (*c).min(rest.len());
                got.extend(d.feed(&rest[..n]).unwrap());
                rest = &rest[n..];
            }
            got.extend(d.feed(rest).unwrap());
            let want: Vec<Event> = msgs.iter().map(|(m, _, _)| Event::Text(m.clone())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Decoder::default().feed(&bytes);
        }
    }
}
