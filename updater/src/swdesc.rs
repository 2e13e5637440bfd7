//! `sw-description`: generated in the libconfig syntax SWUpdate parses, and read back (a small
//! libconfig parser) so `inspect` and `create` can find every image and its sha256.

use std::fmt::Write as _;

/// How an image is stored in the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip framing: SWUpdate's `compressed = "zlib"`.
    Gzip,
    /// zstd: `compressed = "zstd"`.
    Zstd,
    /// Stored as is.
    None,
}

impl Compression {
    /// The value of `compressed`, if any.
    pub fn swupdate_name(self) -> Option<&'static str> {
        match self {
            Compression::Gzip => Some("zlib"),
            Compression::Zstd => Some("zstd"),
            Compression::None => None,
        }
    }
    /// The file-name suffix of the stored image.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
            Compression::None => "",
        }
    }
}

/// One raw image to write to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Member name in the archive.
    pub filename: String,
    /// Target device (from the slot file).
    pub device: String,
    /// sha256 of the stored (compressed) bytes, lowercase hex.
    pub sha256: String,
    /// How it is stored.
    pub compression: Compression,
}

/// What `pack` puts in sw-description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `version`.
    pub version: String,
    /// `description`.
    pub description: String,
    /// `hardware-compatibility` (hyphen: SWUpdate ignores the seed's underscore).
    pub hardware: Vec<String>,
    /// The images.
    pub images: Vec<Image>,
    /// Files copied to a path (SWUpdate's `files`, handler "rawfile").
    pub files: Vec<FileEntry>,
    /// Shell scripts (SWUpdate's `scripts`, type "shellscript": run with `preinst` before the
    /// images and files are written, with `postinst` after).
    pub scripts: Vec<Script>,
}

/// One file SWUpdate copies to a path on the robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Member name in the archive.
    pub filename: String,
    /// Where it is written.
    pub path: String,
    /// sha256 of the member, lowercase hex.
    pub sha256: String,
}

/// One shell script of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Member name in the archive.
    pub filename: String,
    /// sha256 of the member, lowercase hex.
    pub sha256: String,
}

/// A string literal in libconfig syntax.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\x0c' => o.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Description {
    /// The sw-description text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("software =\n{\n");
        let _ = writeln!(s, "    version = {};", quote(&self.version));
        let _ = writeln!(s, "    description = {};", quote(&self.description));
        let hw: Vec<String> = self.hardware.iter().map(|h| quote(h)).collect();
        let _ = writeln!(s, "    hardware-compatibility = [ {} ];", hw.join(", "));
        // SWUpdate's own env markers (`recovery_status`, `ustate`) are off: libubootenv writes
        // them in place into the single env file, which a power cut can leave with a bad CRC
        // (U-Boot then boots its defaults). bootcount's reservation and trial are the
        // transaction (docs/design.md, "SWUpdate's env markers"). The start script passes
        // -M -m as well; these keys make a package safe on a SWUpdate started without them.
        s.push_str("    bootloader_transaction_marker = false;\n");
        s.push_str("    bootloader_state_marker = false;\n");
        s.push_str("    images: (\n");
        for (i, im) in self.images.iter().enumerate() {
            s.push_str("        {\n");
            let _ = writeln!(s, "            filename = {};", quote(&im.filename));
            let _ = writeln!(s, "            device = {};", quote(&im.device));
            s.push_str("            type = \"raw\";\n");
            let _ = writeln!(s, "            sha256 = {};", quote(&im.sha256));
            if let Some(c) = im.compression.swupdate_name() {
                let _ = writeln!(s, "            compressed = {};", quote(c));
            }
            s.push_str(if i + 1 == self.images.len() {
                "        }\n"
            } else {
                "        },\n"
            });
        }
        s.push_str("    );\n");
        if !self.files.is_empty() {
            s.push_str("    files: (\n");
            for (i, f) in self.files.iter().enumerate() {
                s.push_str("        {\n");
                let _ = writeln!(s, "            filename = {};", quote(&f.filename));
                let _ = writeln!(s, "            path = {};", quote(&f.path));
                s.push_str("            type = \"rawfile\";\n");
                s.push_str("            create-destination = true;\n");
                let _ = writeln!(s, "            sha256 = {};", quote(&f.sha256));
                s.push_str(if i + 1 == self.files.len() {
                    "        }\n"
                } else {
                    "        },\n"
                });
            }
            s.push_str("    );\n");
        }
        if !self.scripts.is_empty() {
            s.push_str("    scripts: (\n");
            for (i, f) in self.scripts.iter().enumerate() {
                s.push_str("        {\n");
                let _ = writeln!(s, "            filename = {};", quote(&f.filename));
                s.push_str("            type = \"shellscript\";\n");
                let _ = writeln!(s, "            sha256 = {};", quote(&f.sha256));
                s.push_str(if i + 1 == self.scripts.len() {
                    "        }\n"
                } else {
                    "        },\n"
                });
            }
            s.push_str("    );\n");
        }
        s.push_str("}\n");
        s
    }
}

/// A parsed libconfig value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `"..."` (adjacent literals concatenated).
    Str(String),
    /// An integer (decimal, hex, with an optional `L`).
    Int(i64),
    /// A float.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `{ name = value; ... }`.
    Group(Vec<(String, Value)>),
    /// `[ ... ]` or `( ... )`.
    List(Vec<Value>),
}

impl Value {
    /// A member of a group.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Group(g) => g.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A libconfig syntax error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sw-description line {line}: {what}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What was expected.
    pub what: String,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, ParseError> {
        let line = 1 + self.s[..self.i.min(self.s.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        Err(ParseError {
            line,
            what: what.into(),
        })
    }
    fn ws(&mut self) {
        loop {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            let rest = &self.s[self.i..];
            if rest.starts_with(b"#") || rest.starts_with(b"//") {
                while self.i < self.s.len() && self.s[self.i] != b'\n' {
                    self.i += 1;
                }
            } else if rest.starts_with(b"/*") {
                match rest[2..].windows(2).position(|w| w == b"*/") {
                    Some(p) => self.i += p + 4,
                    None => self.i = self.s.len(),
                }
            } else {
                return;
            }
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn name(&mut self) -> Result<String, ParseError> {
        self.ws();
        let st = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"-_*".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        if st == self.i || !self.s[st].is_ascii_alphabetic() && self.s[st] != b'*' {
            self.i = st;
            return self.err("expected a setting name");
        }
        Ok(String::from_utf8_lossy(&self.s[st..self.i]).into_owned())
    }
    fn settings(&mut self, end: Option<u8>) -> Result<Vec<(String, Value)>, ParseError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None if end.is_none() => return Ok(out),
                None => return self.err("unexpected end of text (missing '}'?)"),
                Some(c) if Some(c) == end => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => {}
            }
            let n = self.name()?;
            match self.peek() {
                Some(b'=') | Some(b':') => self.i += 1,
                _ => return self.err(format!("expected '=' or ':' after {n}")),
            }
            let v = self.value()?;
            if matches!(self.peek(), Some(b';') | Some(b',')) {
                self.i += 1;
            }
            out.push((n, v));
        }
    }
    fn string(&mut self) -> Result<String, ParseError> {
        let mut out = Vec::new();
        while self.peek() == Some(b'"') {
            self.i += 1;
            loop {
                let Some(&c) = self.s.get(self.i) else {
                    return self.err("unterminated string");
                };
                self.i += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            return self.err("unterminated string");
                        };
                        self.i += 1;
                        match e {
                            b'n' => out.push(b'\n'),
                            b'r' => out.push(b'\r'),
                            b't' => out.push(b'\t'),
                            b'f' => out.push(0x0c),
                            b'\\' => out.push(b'\\'),
                            b'"' => out.push(b'"'),
                            b'x' => {
                                let h = self.s.get(self.i..self.i + 2).and_then(|h| {
                                    u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
                                });
                                match h {
                                    Some(b) => {
                                        out.push(b);
                                        self.i += 2;
                                    }
                                    None => return self.err("bad \\x escape"),
                                }
                            }
                            _ => return self.err("unknown escape in string"),
                        }
                    }
                    c => out.push(c),
                }
            }
        }
        String::from_utf8(out).or_else(|_| self.err("string is not UTF-8"))
    }
    fn values(&mut self, end: u8) -> Result<Vec<Value>, ParseError> {
        let mut out = Vec::new();
        if self.peek() == Some(end) {
            self.i += 1;
            return Ok(out);
        }
        loop {
            out.push(self.value()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == end => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => return self.err(format!("expected ',' or '{}'", end as char)),
            }
        }
    }
    fn value(&mut self) -> Result<Value, ParseError> {
        self.depth += 1;
        if self.depth > 64 {
            return self.err("nested too deeply");
        }
        let v = match self.peek() {
            Some(b'"') => Value::Str(self.string()?),
            Some(b'{') => {
                self.i += 1;
                Value::Group(self.settings(Some(b'}'))?)
            }
            Some(b'[') => {
                self.i += 1;
                Value::List(self.values(b']')?)
            }
            Some(b'(') => {
                self.i += 1;
                Value::List(self.values(b')')?)
            }
            Some(_) => {
                let st = self.i;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || b"+-.".contains(&self.s[self.i]))
                {
                    self.i += 1;
                }
                let tok = std::str::from_utf8(&self.s[st..self.i])
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let t = tok.trim_end_matches('l');
                if tok == "true" {
                    Value::Bool(true)
                } else if tok == "false" {
                    Value::Bool(false)
                } else if let Some(h) = t.strip_prefix("0x") {
                    match i64::from_str_radix(h, 16) {
                        Ok(n) => Value::Int(n),
                        Err(_) => return self.err(format!("bad number {tok:?}")),
                    }
                } else if let Ok(n) = t.parse::<i64>() {
                    Value::Int(n)
                } else if let (true, Ok(f)) = (t.contains(['.', 'e']), t.parse::<f64>()) {
                    Value::Float(f)
                } else {
                    self.i = st;
                    return self.err(format!("expected a value, found {tok:?}"));
                }
            }
            None => return self.err("expected a value, found the end"),
        };
        self.depth -= 1;
        Ok(v)
    }
}

/// Parse libconfig text into its top-level group.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    Ok(Value::Group(p.settings(None)?))
}

/// Every `{ filename = ...; sha256 = ...; }` anywhere under `software` (images, files,
/// scripts, board- and selection-specific sections): (filename, sha256 if given).
pub fn artifacts(root: &Value) -> Vec<(String, Option<String>)> {
    fn walk(v: &Value, out: &mut Vec<(String, Option<String>)>) {
        match v {
            Value::Group(g) => {
                if let Some(f) = v.get("filename").and_then(Value::as_str) {
                    out.push((
                        f.to_string(),
                        v.get("sha256").and_then(Value::as_str).map(str::to_string),
                    ));
                }
                for (_, c) in g {
                    walk(c, out);
                }
            }
            Value::List(l) => l.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(sw) = root.get("software") {
        walk(sw, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Description {
        Description {
            version: "1.2.3".into(),
            description: "ZBot \"rootfs\" 1.2.3\\".into(),
            hardware: vec!["1.0".into(), "1.1".into()],
            images: vec![Image {
                filename: "rootfs.ext4.gz".into(),
                device: "/dev/mmcblk0p4".into(),
                sha256: "ab".repeat(32),
                compression: Compression::Gzip,
            }],
            files: vec![],
            scripts: vec![],
        }
    }

    #[test]
    fn files_and_scripts_render_for_swupdate_and_parse_back() {
        let mut d = sample();
        d.files.push(FileEntry {
            filename: "fip.bin".into(),
            path: "/tmp/zbot-migrate-env/fip.bin".into(),
            sha256: "cd".repeat(32),
        });
        d.scripts.push(Script {
            filename: "zbot-migrate-env.sh".into(),
            sha256: "ef".repeat(32),
        });
        let t = d.render();
        assert!(t.contains("type = \"shellscript\";"), "{t}");
        assert!(t.contains("type = \"rawfile\";"), "{t}");
        assert!(
            t.contains("path = \"/tmp/zbot-migrate-env/fip.bin\";"),
            "{t}"
        );
        let v = parse(&t).unwrap();
        assert_eq!(
            artifacts(&v),
            vec![
                ("rootfs.ext4.gz".into(), Some("ab".repeat(32))),
                ("fip.bin".into(), Some("cd".repeat(32))),
                ("zbot-migrate-env.sh".into(), Some("ef".repeat(32))),
            ]
        );
    }

    #[test]
    fn renders_what_swupdate_expects() {
        let t = sample().render();
        assert!(
            t.contains("hardware-compatibility = [ \"1.0\", \"1.1\" ];"),
            "{t}"
        );
        assert!(!t.contains("hardware_compatibility"));
        // SWUpdate's env markers are off (see render).
        let v = parse(&t).unwrap();
        let sw = v.get("software").unwrap();
        for k in ["bootloader_transaction_marker", "bootloader_state_marker"] {
            assert!(matches!(sw.get(k), Some(Value::Bool(false))), "{k}: {t}");
        }
        assert!(t.contains("compressed = \"zlib\";"));
        assert!(t.contains("type = \"raw\";"));
        let v = parse(&t).unwrap();
        let sw = v.get("software").unwrap();
        assert_eq!(sw.get("version").unwrap().as_str(), Some("1.2.3"));
        assert_eq!(
            sw.get("description").unwrap().as_str(),
            Some("ZBot \"rootfs\" 1.2.3\\")
        );
        assert_eq!(
            artifacts(&v),
            vec![("rootfs.ext4.gz".into(), Some("ab".repeat(32)))]
        );
    }

    #[test]
    fn parses_the_seed_sw_description_and_libconfig_forms() {
        let seed = r#"
software = {
    version = "1.01";   # comment
    description = "Zeroth01 v1.01 Update";
    hardware_compatibility = ["1.0", "1.1"];
    /* block
       comment */
    images = ( { filename = "rootfs.ext4.gz"; device = "/dev/mmcblk0p4"; type = "raw";
                 sha256 = "00"; compressed = "zlib"; installed-directly = true; offset = 0x10L; } );
    zbot: { stable: { files: ( { filename = "a" "b"; path = "/x"; ratio = 1.5; } ) } }
}
"#;
        let v = parse(seed).unwrap();
        let a = artifacts(&v);
        assert_eq!(
            a,
            vec![
                ("rootfs.ext4.gz".into(), Some("00".into())),
                ("ab".into(), None)
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = parse("software = {\n version = \"1\"\n images = ( { ) };").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(parse("software = { version = \"1 };").is_err());
    }

    proptest! {
        #[test]
        fn any_description_roundtrips(version in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}",
                                      desc in any::<String>(),
                                      hw in proptest::collection::vec("[ -~]{0,12}", 1..4),
                                      names in proptest::collection::vec("[a-z0-9._-]{1,20}", 1..3)) {
            let d = Description {
                version: version.clone(),
                description: desc.replace('\0', ""),
                hardware: hw.clone(),
                images: names.iter().map(|n| Image {
                    filename: n.clone(), device: "/dev/vda4".into(), sha256: "0".repeat(64),
                    compression: Compression::Zstd }).collect(),
                files: vec![],
                scripts: vec![],
            };
            let v = parse(&d.render()).unwrap();
            let sw = v.get("software").unwrap();
            prop_assert_eq!(sw.get("version").unwrap().as_str(), Some(version.as_str()));
            prop_assert_eq!(sw.get("description").unwrap().as_str(), Some(d.description.as_str()));
            let got_hw: Vec<String> = match sw.get("hardware-compatibility").unwrap() {
                Value::List(l) => l.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                _ => panic!(),
            };
            prop_assert_eq!(got_hw, hw);
            prop_assert_eq!(artifacts(&v).len(), names.len());
        }

        #[test]
        fn parser_never_panics(s in "[ -~\\n]{0,200}") {
            let _ = parse(&s);
        }
    }
}
