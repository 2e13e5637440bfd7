//! HTTP digest authentication (RFC 7616 with MD5, the form SWUpdate's mongoose web server
//! checks with `--auth-domain REALM --global-auth-file HTDIGEST`): parse the server's
//! `WWW-Authenticate: Digest ...` challenge, answer with an `Authorization` header.
//! Pure functions; the client does the I/O.

use md5::{Digest, Md5};

/// A server's digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `qop` offered (we use `auth` when offered).
    pub qop: Option<String>,
    /// `opaque`, echoed back.
    pub opaque: Option<String>,
}

/// Credentials for SWUpdate's web server.
#[derive(Clone)]
pub struct Credentials {
    /// User name (htdigest's first field).
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.user)
    }
}

fn md5_hex(s: &str) -> String {
    crate::hex(&Md5::digest(s.as_bytes()))
}

/// Parse the value of a `WWW-Authenticate` header; None unless it is a Digest challenge with
/// a realm and a nonce and (if named) the MD5 algorithm.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let v = value.trim();
    let rest = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("digest"))
        .map(|_| &v[6..])?;
    let (mut realm, mut nonce, mut qop, mut opaque, mut algo) = (None, None, None, None, None);
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let val = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut s = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                s.push(b[i] as char);
                i += 1;
            }
            i += 1;
            s
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            rest[vs..i].trim().to_string()
        };
        match key.as_str() {
            "realm" => realm = Some(val),
            "nonce" => nonce = Some(val),
            "qop" => qop = Some(val),
            "opaque" => opaque = Some(val),
            "algorithm" => algo = Some(val),
            _ => {}
        }
    }
    if let Some(a) = algo {
        if !a.eq_ignore_ascii_case("md5") {
            return None;
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        qop,
        opaque,
    })
}

/// The `Authorization` header value for METHOD URI (RFC 7616, MD5; `qop=auth` when the
/// server offers it, else the RFC 2069 form).
pub fn authorization(
    c: &Challenge,
    who: &Credentials,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let ha1 = md5_hex(&format!("{}:{}:{}", who.user, c.realm, who.password));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let auth = c
        .qop
        .as_deref()
        .is_some_and(|q| q.split(',').any(|x| x.trim() == "auth"));
    let q = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut h = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm=MD5",
        q(&who.user),
        q(&c.realm),
        q(&c.nonce),
        q(uri)
    );
    if auth {
        let nc = format!("{nc:08x}");
        let resp = md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce));
        h.push_str(&format!(
            ", qop=auth, nc={nc}, cnonce=\"{}\", response=\"{resp}\"",
            q(cnonce)
        ));
    } else {
        let resp = md5_hex(&format!("{ha1}:{}:{ha2}", c.nonce));
        h.push_str(&format!(", response=\"{resp}\""));
    }
    if let Some(o) = &c.opaque {
        h.push_str(&format!(", opaque=\"{}\"", q(o)));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // RFC 2617 section 3.5: Mufasa / Circle Of Life, GET /dir/index.html.
        let c = parse_challenge(
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        let who = Credentials {
            user: "Mufasa".into(),
            password: "Circle Of Life".into(),
        };
        let h = authorization(&c, &who, "GET", "/dir/index.html", "0a4f113b", 1);
        assert!(
            h.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{h}"
        );
        assert!(
            h.contains("nc=00000001") && h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"")
        );
    }

    #[test]
    fn parses_swupdates_challenge_and_refuses_others() {
        let c = parse_challenge(r#"Digest qop="auth", realm="zbot", nonce="6b0e05da""#).unwrap();
        assert_eq!(c.realm, "zbot");
        assert_eq!(c.nonce, "6b0e05da");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge("Digest realm=\"x\"").is_none());
        assert!(parse_challenge("Digest realm=\"x\", nonce=\"n\", algorithm=SHA-256").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(s in "[ -~]{0,120}") {
            let _ = parse_challenge(&s);
        }
    }
}
