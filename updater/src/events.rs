//! SWUpdate's websocket events, parsed (no dependencies beyond serde_json, so the fuzz
//! target and the robot build can use it).

/// One websocket message from SWUpdate 2022.12 (all values are strings on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// `{"type":"status","status":"START|RUN|SUCCESS|FAILURE|DONE|..."}`.
    Status(String),
    /// `{"type":"step","number":"N","step":"I","name":"IMAGE","percent":"P"}`.
    Step {
        /// Image name.
        name: String,
        /// Percent of that image.
        percent: u8,
    },
    /// `{"type":"message","level":"3|4|6|7","text":"..."}`; level 3 is an error.
    Message {
        /// syslog-like level.
        level: u8,
        /// The text.
        text: String,
    },
    /// `source` / `info` and anything else with a type.
    Other(String),
}

/// Parse one websocket text frame. `None` when it is not a JSON object with a `type`.
pub fn parse_msg(s: &str) -> Option<Msg> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let kind = v.get("type")?.as_str()?;
    Some(match kind {
        "status" => Msg::Status(get("status")),
        "step" => Msg::Step {
            name: get("name"),
            percent: get("percent").parse::<u32>().unwrap_or(0).min(100) as u8,
        },
        "message" => Msg::Message {
            level: get("level").parse().unwrap_or(6),
            text: get("text"),
        },
        other => Msg::Other(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn swupdate_2022_12_messages() {
        // As SWUpdate 2022.12 sends them (SWUPDATE.md): every value a string, "info" keyed "source".
        assert_eq!(
            parse_msg(r#"{"type":"status","status":"FAILURE"}"#),
            Some(Msg::Status("FAILURE".into()))
        );
        assert_eq!(
            parse_msg(
                r#"{"type":"step","number":"1","step":"1","name":"rootfs.ext4.gz","percent":"42"}"#
            ),
            Some(Msg::Step {
                name: "rootfs.ext4.gz".into(),
                percent: 42
            })
        );
        assert_eq!(
            parse_msg(r#"{"type":"message","level":"3","text":"Installation failed !"}"#),
            Some(Msg::Message {
                level: 3,
                text: "Installation failed !".into()
            })
        );
        assert_eq!(
            parse_msg(r#"{"type":"info","source":"x"}"#),
            Some(Msg::Other("info".into()))
        );
        assert_eq!(
            parse_msg(r#"{"type":"step","percent":"999"}"#),
            Some(Msg::Step {
                name: "".into(),
                percent: 100
            })
        );
        assert_eq!(parse_msg("not json"), None);
        assert_eq!(parse_msg(r#"{"status":"DONE"}"#), None);
        assert_eq!(parse_msg(r#"[1,2]"#), None);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = parse_msg(&s);
        }
    }
}
