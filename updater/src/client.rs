//! `update HOST FILE.swu`: the push client. Talks to the robot's agent (status, then the
//! authenticated reboot into recovery), uploads to SWUpdate's web server as it expects
//! (multipart `POST /upload`, field `file` with a filename), follows SWUpdate's websocket and
//! treats `FAILURE` as final. Every connect, read, write and wait has a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::events::{parse_msg, Msg};

/// Why an update did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// SWUpdate said FAILURE.
    #[error("refused by SWUpdate: {0}")]
    Refused(String),
    /// Could not connect, or the connection broke.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A wait ran out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The agent refused the request.
    #[error("the agent refused: {0}")]
    Agent(String),
    /// SWUpdate's web server wants digest authentication and did not accept ours.
    #[error("SWUpdate refused the credentials: {0}")]
    Auth(String),
    /// A local file.
    #[error("{0}")]
    Local(String),
}

/// Send REQUEST (a whole HTTP request without a body) and read the status code and the
/// headers (at most 8 KiB, bounded by the connection's timeouts).
fn http_head(addr: SocketAddr, request: &str) -> Result<(u16, String), UpdateError> {
    let mut s = connect(addr, Duration::from_secs(10))?;
    s.write_all(request.as_bytes())
        .map_err(|e| UpdateError::Unreachable(format!("{addr}: {e}")))?;
    let reply = read_one_reply(s, 64 << 10);
    read_reply(&reply[..], 64 << 10, &addr.to_string())
}

/// Read one HTTP reply up to the end of its body: the headers, then `Content-Length` bytes
/// (a header line ending in `content-length: N`, which also matches 2022.12's malformed
/// `%sContent-Length`), else to the end of the connection. SWUpdate's web server keeps the
/// connection open after a reply even when asked to close it (measured: a `GET /` waited for
/// the client's read timeout), so reading to the end costs that timeout each time.
fn read_one_reply(s: impl Read, limit: u64) -> Vec<u8> {
    let mut r = BufReader::new(s.take(limit));
    let mut out = Vec::new();
    let mut length = None::<usize>;
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return out,
            Ok(_) => {}
        }
        out.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(i) = text.find("content-length:") {
            length = text[i + 15..].trim().parse().ok();
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    match length {
        Some(n) => {
            let mut body = vec![0u8; n];
            let mut got = 0;
            while got < n {
                match r.read(&mut body[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            out.extend_from_slice(&body[..got]);
        }
        None => {
            let _ = r.read_to_end(&mut out);
        }
    }
    out
}

/// Read an HTTP reply (at most `limit` bytes) and its status code from the status line only:
/// SWUpdate 2022.12's headers are malformed ("%sContent-Length: ..."), so they are not parsed.
fn read_reply(s: impl Read, limit: u64, what: &str) -> Result<(u16, String), UpdateError> {
    let mut reply = Vec::new();
    let _ = s.take(limit).read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let code = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| UpdateError::Unreachable(format!("{what}: no HTTP reply")))?;
    Ok((code, text))
}

fn cnonce() -> String {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = (t.as_nanos() as u64 ^ u64::from(std::process::id())).to_le_bytes();
    }
    crate::hex(&b)
}

/// The `Authorization: ...\r\n` line for METHOD URI on SWUpdate at ADDR, or "" when the
/// server asks for none. Asks `GET /` for the digest challenge, then checks the credentials
/// with an authenticated `GET /` before the real request (so a wrong password is told before a
/// large upload, not by a reset in its middle).
pub fn auth_line(
    addr: SocketAddr,
    host: &str,
    who: Option<&crate::digest::Credentials>,
    method: &str,
    uri: &str,
) -> Result<String, UpdateError> {
    let get = |auth: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: {host}:{}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n",
            addr.port()
        )
    };
    let (code, head) = http_head(addr, &get(""))?;
    if code != 401 {
        return Ok(String::new());
    }
    let ch = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("www-authenticate")
                .then(|| crate::digest::parse_challenge(v))
                .flatten()
        })
        .ok_or_else(|| UpdateError::Auth(format!("{addr}: HTTP 401 without a digest challenge")))?;
    let who = who.ok_or_else(|| {
        UpdateError::Auth(format!(
            "{addr} asks for digest authentication (realm {:?}): give --http-user and --http-password-file",
            ch.realm
        ))
    })?;
    let check = crate::digest::authorization(&ch, who, "GET", "/", &cnonce(), 1);
    let (code, _) = http_head(addr, &get(&format!("Authorization: {check}\r\n")))?;
    if code == 401 {
        return Err(UpdateError::Auth(format!(
            "{addr}: user {:?}, realm {:?}: wrong user or password (HTTP 401)",
            who.user, ch.realm
        )));
    }
    Ok(format!(
        "Authorization: {}\r\n",
        crate::digest::authorization(&ch, who, method, uri, &cnonce(), 1)
    ))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, UpdateError> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| UpdateError::Unreachable(format!("{host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| UpdateError::Unreachable(format!("{host}:{port}: no address")))
}

fn connect(addr: SocketAddr, io: Duration) -> Result<TcpStream, UpdateError> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| UpdateError::Unreachable(format!("{addr}: {e}")))?;
    let _ = s.set_read_timeout(Some(io));
    let _ = s.set_write_timeout(Some(io));
    Ok(s)
}

/// What answers on the robot's port.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Our agent (rootfs), with its status.
    Agent(serde_json::Value),
    /// SWUpdate's web server (the recovery system).
    Swupdate,
}

/// Ask what runs on HOST:PORT: the agent answers `status` with JSON, SWUpdate answers HTTP.
pub fn probe(host: &str, port: u16) -> Result<Probe, UpdateError> {
    let addr = resolve(host, port)?;
    let s = connect(addr, Duration::from_secs(5))?;
    let mut w = s
        .try_clone()
        .map_err(|e| UpdateError::Unreachable(e.to_string()))?;
    // A valid HTTP request whose first line is also an (unknown) agent request: SWUpdate answers
    // HTTP, the agent answers JSON for the `status` line that follows.
    let _ = w.write_all(b"GET / HTTP/1.0\r\n\r\nstatus\n");
    let mut r = BufReader::new(s);
    for _ in 0..3 {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) if line.starts_with("HTTP/") => return Ok(Probe::Swupdate),
            Ok(_) => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) {
                    if v.get("robot").is_some() {
                        return Ok(Probe::Agent(v));
                    }
                }
            }
            Err(e) => return Err(UpdateError::Unreachable(format!("{addr}: {e}"))),
        }
    }
    Err(UpdateError::Unreachable(format!(
        "{addr}: neither the zbot agent nor SWUpdate answers"
    )))
}

/// The recovery system's `/zbot-status.json` on SWUpdate's web server (updater/dist/
/// S97zbot-status: `{"boot_id": ..., "bootcount": <bootcount status --json>}`, written once per
/// boot), or `None` when it is not there (an older recovery system, digest authentication on
/// the document root, no answer).
pub fn recovery_status(host: &str, port: u16) -> Option<serde_json::Value> {
    let addr = resolve(host, port).ok()?;
    let mut s = connect(addr, Duration::from_secs(5)).ok()?;
    write!(
        s,
        "GET /zbot-status.json HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let reply = read_one_reply(s, 64 << 10);
    let (code, text) = read_reply(&reply[..], 64 << 10, "zbot-status.json").ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(text.split("\r\n\r\n").nth(1)?.trim()).ok()?;
    v.get("boot_id")?.as_str()?;
    Some(v)
}

/// Ask the agent to reboot into recovery, proving the secret (challenge-response).
pub fn request_recovery(host: &str, port: u16, secret: &[u8]) -> Result<String, UpdateError> {
    let addr = resolve(host, port)?;
    let s = connect(addr, Duration::from_secs(10))?;
    let mut w = s
        .try_clone()
        .map_err(|e| UpdateError::Unreachable(e.to_string()))?;
    let mut r = BufReader::new(s);
    let mut ask = |line: &str| -> Result<serde_json::Value, UpdateError> {
        writeln!(w, "{line}").map_err(|e| UpdateError::Unreachable(e.to_string()))?;
        let mut a = String::new();
        r.read_line(&mut a)
            .map_err(|e| UpdateError::Unreachable(e.to_string()))?;
        serde_json::from_str(a.trim())
            .map_err(|_| UpdateError::Agent(format!("unexpected answer {a:?}")))
    };
    let c = ask("challenge")?;
    let nonce = c["nonce"]
        .as_str()
        .ok_or_else(|| UpdateError::Agent(c.to_string()))?
        .to_string();
    let mac = crate::agent::mac_hex(secret, "recovery", &nonce);
    let a = ask(&format!("recovery {nonce} {mac}"))?;
    if a["ok"] == true {
        Ok(a["message"].as_str().unwrap_or("").to_string())
    } else {
        Err(UpdateError::Agent(
            a["error"].as_str().unwrap_or("refused").to_string(),
        ))
    }
}

/// Wait until `done` returns Some, polling every `every`, at most `timeout`.
pub fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut done: impl FnMut() -> Option<T>,
) -> Result<T, UpdateError> {
    let start = Instant::now();
    loop {
        if let Some(t) = done() {
            return Ok(t);
        }
        if start.elapsed() > timeout {
            return Err(UpdateError::Timeout(format!("{what} after {timeout:?}")));
        }
        std::thread::sleep(every);
    }
}

/// What SWUpdate reported for an install.
#[derive(Debug, Clone, Default)]
pub struct Installed {
    /// Its messages (text of `message` events).
    pub messages: Vec<String>,
    /// Whether `DONE` came (the post-update command ran).
    pub done: bool,
    /// Upload time.
    pub upload: Duration,
    /// Bytes sent.
    pub bytes: u64,
}

fn upload(
    addr: SocketAddr,
    host: &str,
    swu: &Path,
    io: Duration,
    auth: &str,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u16, String), UpdateError> {
    let mut f = std::fs::File::open(swu)
        .map_err(|e| UpdateError::Local(format!("{}: {e}", swu.display())))?;
    let size = f
        .metadata()
        .map_err(|e| UpdateError::Local(format!("{}: {e}", swu.display())))?
        .len();
    let name = swu
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\r', '\n'], "_"))
        .unwrap_or_else(|| "update.swu".into());
    let boundary = format!(
        "------------------------zbot{:012x}",
        size & 0xffff_ffff_ffff
    );
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let len = head.len() as u64 + size + tail.len() as u64;
    let mut stream = connect(addr, io)?;
    let broke = |e: std::io::Error| UpdateError::Unreachable(format!("upload to {addr}: {e}"));
    // The request head in one write, then the body in 64 KiB writes, as curl sends it: SWUpdate
    // 2022.12's upload handler lost or garbled bytes when the head and the start of the body
    // came in other segmentations (measured: "HASH mismatch", or a stalled install).
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {host}:{}\r\n{auth}Accept: */*\r\nContent-Length: {len}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n",
        addr.port()
    );
    stream.write_all(request.as_bytes()).map_err(broke)?;
    // Body segments of exactly 64 KiB, the part header at the start of the first and the
    // closing boundary at the end of the last, as curl sends them.
    const SEG: usize = 64 << 10;
    let mut seg: Vec<u8> = Vec::with_capacity(SEG + tail.len());
    seg.extend_from_slice(head.as_bytes());
    let mut sent = 0u64;
    loop {
        let have = seg.len();
        seg.resize(SEG, 0);
        let mut filled = have;
        while filled < SEG {
            let n = f
                .read(&mut seg[filled..])
                .map_err(|e| UpdateError::Local(format!("{}: {e}", swu.display())))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        seg.truncate(filled);
        let eof = filled < SEG;
        sent += (filled - have.min(filled)) as u64;
        if eof {
            seg.extend_from_slice(tail.as_bytes());
        }
        stream.write_all(&seg).map_err(broke)?;
        progress(sent.min(size), size);
        seg.clear();
        if eof {
            break;
        }
    }
    stream.flush().map_err(broke)?;
    let s = stream;
    // The reply. 2022.12's header is malformed ("%sContent-Length: ..."): read the status line
    // and the body after the blank line, ignore the headers.
    let (code, text) = read_reply(s, 64 << 10, &format!("upload to {addr}"))?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok((code, body))
}

/// Upload `swu` to SWUpdate at HOST:PORT and follow its websocket until SUCCESS (then DONE, or
/// `done_grace` without it) or FAILURE, at most `timeout` in all.
#[allow(clippy::too_many_arguments)]
pub fn install(
    host: &str,
    port: u16,
    swu: &Path,
    timeout: Duration,
    done_grace: Duration,
    who: Option<&crate::digest::Credentials>,
    progress: &mut dyn FnMut(u64, u64),
    log: &mut dyn FnMut(&Msg),
) -> Result<Installed, UpdateError> {
    let addr = resolve(host, port)?;
    let auth = auth_line(addr, host, who, "POST", "/upload")?;
    // The websocket's header too, now: after the upload's reply every millisecond counts (a
    // small package is installed within milliseconds, and SWUpdate does not repeat the result
    // to a websocket that connects later; measured: one extra request there lost it).
    let ws_auth = auth_line(addr, host, who, "GET", "/ws")?;
    let deadline = Instant::now() + timeout;
    let io = Duration::from_secs(30).min(timeout);
    let start = Instant::now();
    let mut out = Installed::default();
    // Upload first, websocket after. Measured on SWUpdate 2022.12: with this client's websocket
    // connected and read in a loop while another thread uploaded, the image arrived corrupted
    // ("HASH mismatch" or a stalled install, 3 runs of 3); with a passive websocket listener
    // connected, uploads arrived intact. Cause not found; this order avoids it. The reply comes
    // when the last byte is handed to the installer, before the result, so the result is seen.
    let (code, body) = match upload(addr, host, swu, io, &auth, progress) {
        Ok(r) => r,
        // SWUpdate resets the upload when it refuses the package early (signature, hardware,
        // version: measured with a wrong hardware revision). Without a websocket during the
        // upload (see above) the reason is not seen: tell a refusal (the server still answers)
        // from a server that went away (it does not).
        Err(UpdateError::Unreachable(e)) => {
            std::thread::sleep(Duration::from_millis(500));
            return Err(match probe(host, port) {
                Ok(Probe::Swupdate) => UpdateError::Refused(format!(
                    "SWUpdate cut the upload ({e}) and still runs: it refused the package (signature, hardware revision or version; its log on the robot says which)"
                )),
                _ => UpdateError::Unreachable(e),
            });
        }
        Err(e) => return Err(e),
    };
    out.upload = start.elapsed();
    if code == 401 {
        return Err(UpdateError::Auth(format!("{addr}: upload: HTTP 401")));
    }
    if code != 200 {
        return Err(UpdateError::Refused(format!("HTTP {code}: {body}")));
    }
    use tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{host}:{port}/ws")
        .into_client_request()
        .map_err(|e| UpdateError::Unreachable(format!("websocket {addr}: {e}")))?;
    if let Some(v) = ws_auth
        .strip_prefix("Authorization: ")
        .map(|v| v.trim_end())
        .and_then(|v| v.parse().ok())
    {
        req.headers_mut().insert("Authorization", v);
    }
    let s = connect(addr, Duration::from_millis(250))?;
    let (mut ws, _) = tungstenite::client(req, s)
        .map_err(|e| UpdateError::Unreachable(format!("websocket {addr}: {e}")))?;
    let mut success = None::<Instant>;
    let mut errors: Vec<String> = Vec::new();
    loop {
        if Instant::now() > deadline {
            return Err(UpdateError::Timeout(format!(
                "no result from SWUpdate within {timeout:?} (it may have finished before the websocket connected)"
            )));
        }
        if let Some(t) = success {
            if t.elapsed() > done_grace {
                out.done = false;
                break;
            }
        }
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let Some(m) = parse_msg(t.as_str()) else {
                    continue;
                };
                log(&m);
                match &m {
                    Msg::Message { level, text } => {
                        out.messages.push(text.clone());
                        if *level <= 3 {
                            errors.push(text.clone());
                        }
                    }
                    Msg::Status(s) if s == "SUCCESS" => success = Some(Instant::now()),
                    Msg::Status(s) if s == "DONE" && success.is_some() => {
                        out.done = true;
                        break;
                    }
                    Msg::Status(s) if s == "FAILURE" => {
                        let why = if errors.is_empty() {
                            out.messages.join("; ")
                        } else {
                            errors.join("; ")
                        };
                        return Err(UpdateError::Refused(why));
                    }
                    _ => {}
                }
            }
            Ok(tungstenite::Message::Close(_)) => {
                return Err(UpdateError::Unreachable(
                    "SWUpdate closed the websocket".into(),
                ))
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(UpdateError::Unreachable(format!("websocket: {e}"))),
        }
    }
    out.bytes = std::fs::metadata(swu).map(|m| m.len()).unwrap_or(0);
    Ok(out)
}

/// `POST /restart`: SWUpdate runs its post-update command (what a successful web upload does
/// itself; 2022.12 sometimes skips it).
pub fn restart(
    host: &str,
    port: u16,
    who: Option<&crate::digest::Credentials>,
) -> Result<u16, UpdateError> {
    let addr = resolve(host, port)?;
    let auth = auth_line(addr, host, who, "POST", "/restart")?;
    let mut s = connect(addr, Duration::from_secs(30))?;
    write!(s, "POST /restart HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
        .map_err(|e| UpdateError::Unreachable(e.to_string()))?;
    let mut reply = Vec::new();
    let _ = s.take(4096).read_to_end(&mut reply);
    String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| UpdateError::Unreachable(format!("{addr}: no reply to POST /restart")))
}
