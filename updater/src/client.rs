//! `update HOST FILE.swu`: the push client. Talks to the robot's agent (status, then the
//! authenticated reboot into recovery), uploads to SWUpdate's web server as it expects
//! (multipart `POST /upload`, field `file` with a filename), follows SWUpdate's websocket and
//! treats `FAILURE` as final. Every connect, read, write and wait has a timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::events::{parse_msg, parse_msgs, Msg};

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
/// head, up to its blank line (at most 8 KiB): mongoose keeps the connection open after
/// `GET /` whatever the request says, so reading to the end would wait for the timeout.
fn http_head(addr: SocketAddr, request: &str) -> Result<(u16, String), UpdateError> {
    let mut s = connect(addr, Duration::from_secs(10))?;
    s.write_all(request.as_bytes())
        .map_err(|e| UpdateError::Unreachable(format!("{addr}: {e}")))?;
    crate::ws::read_handshake(&mut s).map_err(|e| UpdateError::Unreachable(format!("{addr}: {e}")))
}

/// Read an HTTP reply (at most `limit` bytes) and its status code from the status line only:
/// SWUpdate 2022.12's headers are malformed ("%sContent-Length: ..."), so they are not parsed.
/// SWUpdate closes the connection after the upload's reply, which ends the read.
pub fn read_reply(s: impl Read, limit: u64, what: &str) -> Result<(u16, String), UpdateError> {
    let mut reply = Vec::new();
    let _ = s.take(limit).read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let code = status_code(&text)
        .ok_or_else(|| UpdateError::Unreachable(format!("{what}: no HTTP reply")))?;
    Ok((code, text))
}

/// Read one HTTP reply up to the end of its body: the head, then `Content-Length` bytes (a
/// header line ending in `content-length: N`, which also matches 2022.12's malformed
/// `%sContent-Length`), else to the end of the connection; at most `limit` bytes. SWUpdate's
/// web server keeps the connection open after a `GET`, so reading to the end would wait for
/// the read timeout.
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
            let mut body = Vec::new();
            let _ = r.take(n as u64).read_to_end(&mut body);
            out.extend_from_slice(&body);
        }
        None => {
            let _ = r.read_to_end(&mut out);
        }
    }
    out
}

/// The recovery system's `/zbot-status.json` on SWUpdate's web server (updater/dist/
/// S97zbot-status writes `{"boot_id": ..., "bootcount": <bootcount status --json>}` once per
/// boot), or `None` when it is not there (an older recovery system, digest authentication on
/// the document root, no answer). A new boot id after an install means the robot came back
/// to recovery: the new system was rolled back.
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

/// The status code of an HTTP reply's status line (`HTTP/1.x NNN ...`).
pub fn status_code(text: &str) -> Option<u16> {
    let line = text.lines().next()?;
    let mut w = line.split_whitespace();
    if !w.next()?.starts_with("HTTP/") {
        return None;
    }
    w.next()?.parse().ok()
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
    /// Upload time (connect to SWUpdate's reply).
    pub upload: Duration,
    /// From SWUpdate's reply to its SUCCESS (the install after the last byte).
    pub install: Duration,
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

/// What the websocket reader thread hands over.
enum WsItem {
    Msg(Msg),
    /// The stream ended (closed, reset, or not a websocket stream): why.
    End(String),
}

/// SWUpdate's websocket, read by a thread that never writes after the handshake; dropping it
/// shuts the socket down, which ends the thread.
struct Watch {
    rx: std::sync::mpsc::Receiver<WsItem>,
    sock: TcpStream,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// Connect SWUpdate's websocket and start reading it.
fn watch(addr: SocketAddr, host: &str, auth: &str) -> Result<Watch, UpdateError> {
    let mut s = connect(addr, Duration::from_secs(10))?;
    let broke = |e: std::io::Error| UpdateError::Unreachable(format!("websocket {addr}: {e}"));
    s.write_all(crate::ws::upgrade_request(host, addr.port(), auth).as_bytes())
        .map_err(broke)?;
    let (code, _) = crate::ws::read_handshake(&mut s).map_err(broke)?;
    match code {
        101 => {}
        401 => return Err(UpdateError::Auth(format!("{addr}: websocket: HTTP 401"))),
        c => {
            return Err(UpdateError::Unreachable(format!(
                "{addr}: websocket refused (HTTP {c}): is this SWUpdate's web server?"
            )))
        }
    }
    // Blocking reads: the thread ends when Watch's drop shuts the socket down.
    let _ = s.set_read_timeout(None);
    let sock = s.try_clone().map_err(broke)?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut d = crate::ws::Decoder::default();
        let mut buf = vec![0u8; 16 << 10];
        let why = loop {
            let n = match s.read(&mut buf) {
                Ok(0) => break "SWUpdate closed the websocket".to_string(),
                Ok(n) => n,
                Err(e) => break format!("websocket: {e}"),
            };
            match d.feed(&buf[..n]) {
                Ok(evs) => {
                    for ev in evs {
                        let items = match ev {
                            crate::ws::Event::Text(t) => crate::events::parse_msgs(&t)
                                .into_iter()
                                .map(WsItem::Msg)
                                .collect(),
                            crate::ws::Event::Close => {
                                vec![WsItem::End("SWUpdate closed the websocket".into())]
                            }
                        };
                        for item in items {
                            if tx.send(item).is_err() {
                                return;
                            }
                        }
                    }
                }
                Err(e) => break format!("websocket: {e}"),
            }
        };
        let _ = tx.send(WsItem::End(why));
    });
    Ok(Watch { rx, sock })
}

/// Follows SWUpdate's messages to a verdict.
#[derive(Default)]
struct Verdict {
    messages: Vec<String>,
    errors: Vec<String>,
    success: Option<Instant>,
    done: bool,
    failure: bool,
}

impl Verdict {
    fn take(&mut self, m: &Msg) {
        match m {
            Msg::Message { level, text } => {
                self.messages.push(text.clone());
                if *level <= 3 && !crate::events::is_connection_noise(text) {
                    self.errors.push(crate::events::plain(text).to_string());
                }
            }
            Msg::Status(s) if s == "SUCCESS" => self.success = Some(Instant::now()),
            Msg::Status(s) if s == "DONE" && self.success.is_some() => self.done = true,
            Msg::Status(s) if s == "FAILURE" => self.failure = true,
            _ => {}
        }
    }
    /// SWUpdate's own reason: its error messages, else all it said.
    fn reason(&self) -> String {
        let v = if self.errors.is_empty() {
            &self.messages
        } else {
            &self.errors
        };
        if v.is_empty() {
            "FAILURE without a message".into()
        } else {
            v.join("; ")
        }
    }
}

/// SWUpdate's websocket as the install reads it: the verdict so far, and why the stream
/// ended if it did.
struct Follow<'a> {
    rx: &'a std::sync::mpsc::Receiver<WsItem>,
    log: &'a mut dyn FnMut(&Msg),
    v: Verdict,
    ended: Option<String>,
}

impl<'a> Follow<'a> {
    fn new(watch: &'a Watch, log: &'a mut dyn FnMut(&Msg)) -> Self {
        Follow {
            rx: &watch.rx,
            log,
            v: Verdict::default(),
            ended: None,
        }
    }

    /// Take the next websocket item, waiting at most until `until`; false when none came
    /// (the wait ran out, or the stream ended).
    fn next(&mut self, until: Instant) -> bool {
        if self.ended.is_some() {
            return false;
        }
        let wait = until.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(WsItem::Msg(m)) => {
                (self.log)(&m);
                self.v.take(&m);
                true
            }
            Ok(WsItem::End(why)) => {
                self.ended = Some(why);
                false
            }
            Err(_) => false,
        }
    }

    /// After FAILURE, take the messages still in flight: SWUpdate sends its status and its
    /// messages from two threads, so the error text can come after the FAILURE status. Reads
    /// until 300 ms pass without a message (at most 2 s).
    fn settle(&mut self) {
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end
            && self.next((Instant::now() + Duration::from_millis(300)).min(end))
        {}
    }

    /// The refusal, with SWUpdate's reason once its messages have settled.
    fn refused(&mut self) -> UpdateError {
        self.settle();
        UpdateError::Refused(self.v.reason())
    }

    /// Follow SWUpdate after the upload until its result (see [`step`]).
    fn until_result(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
        deadline: Instant,
        done_grace: Duration,
    ) -> Result<(), UpdateError> {
        loop {
            match step(&self.v, Instant::now(), deadline, done_grace) {
                Step::Refused => return Err(self.refused()),
                Step::Finished => return Ok(()),
                Step::TimedOut => {
                    return Err(UpdateError::Timeout(format!(
                        "no result from SWUpdate at {addr} within {timeout:?}"
                    )))
                }
                Step::WaitUntil(until) => {
                    if !self.next(until) {
                        if let Some(why) = &self.ended {
                            if self.v.success.is_none() {
                                return Err(UpdateError::Unreachable(format!(
                                    "{addr}: {why} before a result"
                                )));
                            }
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// What to do next after the upload, from the verdict so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// FAILURE came: settle and refuse.
    Refused,
    /// DONE came, or SUCCESS and then `done_grace` without DONE.
    Finished,
    /// The deadline passed with neither SUCCESS nor FAILURE.
    TimedOut,
    /// Read the websocket until then.
    WaitUntil(Instant),
}

/// The decision of the install's loop at `now`: FAILURE is final; after SUCCESS, DONE is
/// waited for `done_grace` at most (never past `deadline`).
fn step(v: &Verdict, now: Instant, deadline: Instant, done_grace: Duration) -> Step {
    if v.failure {
        return Step::Refused;
    }
    if v.done {
        return Step::Finished;
    }
    let until = match v.success {
        Some(t) => (t + done_grace).min(deadline),
        None => deadline,
    };
    if now >= until {
        return if v.success.is_some() {
            Step::Finished
        } else {
            Step::TimedOut
        };
    }
    Step::WaitUntil(until)
}

/// SWUpdate resets the upload when it refuses the package early (signature, hardware,
/// version); its FAILURE and reason are on the websocket within a moment. No FAILURE: tell a
/// refusal (the server still answers) from a server that went away.
fn cut_upload(f: &mut Follow, host: &str, port: u16, e: String) -> UpdateError {
    let until = Instant::now() + Duration::from_secs(5);
    while !f.v.failure && f.next(until) {}
    if f.v.failure {
        return f.refused();
    }
    match probe(host, port) {
        Ok(Probe::Swupdate) => UpdateError::Refused(format!(
            "SWUpdate cut the upload ({e}) and still runs, without saying why: it refused the package (signature, hardware revision or version; its log on the robot says which)"
        )),
        _ => UpdateError::Unreachable(e),
    }
}

/// SWUpdate's HTTP answer to the upload: 200 is accepted, 401 is our credentials.
fn check_upload_reply(addr: SocketAddr, code: u16, body: &str) -> Result<(), UpdateError> {
    if code == 401 {
        return Err(UpdateError::Auth(format!("{addr}: upload: HTTP 401")));
    }
    if code != 200 {
        return Err(UpdateError::Refused(format!("HTTP {code}: {body}")));
    }
    Ok(())
}

/// Upload `swu` to SWUpdate at HOST:PORT and follow its websocket until SUCCESS (then DONE, or
/// `done_grace` without it) or FAILURE, at most `timeout` in all.
///
/// The websocket is connected before the upload and only read (see [`crate::ws`]), so no
/// message is missed however fast SWUpdate decides, and when SWUpdate cuts the upload (a
/// refused signature, hardware revision or version) its own reason is at hand.
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
    let ws_auth = auth_line(addr, host, who, "GET", "/ws")?;
    let deadline = Instant::now() + timeout;
    let io = Duration::from_secs(30).min(timeout);
    let watch = watch(addr, host, &ws_auth)?;
    let start = Instant::now();
    let mut follow = Follow::new(&watch, log);
    let up = upload(addr, host, swu, io, &auth, progress);
    let upload_time = start.elapsed();
    let (code, body) = match up {
        Ok(r) => r,
        Err(UpdateError::Unreachable(e)) => return Err(cut_upload(&mut follow, host, port, e)),
        Err(e) => return Err(e),
    };
    check_upload_reply(addr, code, &body)?;
    let uploaded = Instant::now();
    follow.until_result(addr, timeout, deadline, done_grace)?;
    let v = follow.v;
    Ok(Installed {
        install: v
            .success
            .map(|t| t.saturating_duration_since(uploaded))
            .unwrap_or_default(),
        done: v.done,
        messages: v.messages,
        upload: upload_time,
        bytes: std::fs::metadata(swu).map(|m| m.len()).unwrap_or(0),
    })
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
    let (code, _) = http_head(
        addr,
        &format!("POST /restart HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"),
    )?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_loop_decides_from_the_verdict_and_the_clock() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let deadline = t0 + s(100);
        let grace = s(10);
        let v = |success: Option<u64>, done, failure| Verdict {
            success: success.map(|x| t0 + s(x)),
            done,
            failure,
            ..Verdict::default()
        };
        #[rustfmt::skip]
        let rows = [
            // nothing yet: read until the deadline, then time out
            (v(None, false, false), 0, Step::WaitUntil(deadline)),
            (v(None, false, false), 100, Step::TimedOut),
            // FAILURE is final, even after SUCCESS and DONE
            (v(None, false, true), 0, Step::Refused),
            (v(Some(5), true, true), 0, Step::Refused),
            // DONE after SUCCESS: finished at once
            (v(Some(5), true, false), 6, Step::Finished),
            // SUCCESS without DONE: wait done_grace for it, then finish without it
            (v(Some(5), false, false), 6, Step::WaitUntil(t0 + s(15))),
            (v(Some(5), false, false), 15, Step::Finished),
            // ... but never past the deadline
            (v(Some(95), false, false), 96, Step::WaitUntil(deadline)),
            (v(Some(95), false, false), 100, Step::Finished),
        ];
        for (i, (verdict, now, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                step(&verdict, t0 + s(now), deadline, grace),
                want,
                "row {i}"
            );
        }
    }

    #[test]
    fn upload_reply_200_is_accepted_401_is_the_credentials() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(check_upload_reply(addr, 200, "").is_ok());
        let e = check_upload_reply(addr, 401, "x").unwrap_err();
        assert!(
            matches!(&e, UpdateError::Auth(m) if m == "127.0.0.1:8080: upload: HTTP 401"),
            "{e}"
        );
        let e = check_upload_reply(addr, 500, "busy").unwrap_err();
        assert!(
            matches!(&e, UpdateError::Refused(m) if m == "HTTP 500: busy"),
            "{e}"
        );
    }
}
