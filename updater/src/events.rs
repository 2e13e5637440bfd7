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

/// Parse one websocket text frame: every JSON object in it, in order. SWUpdate 2022.12's web
/// server forwards whatever its broadcast socket holds as one frame, so when its two reporting
/// threads write close together a frame carries two or more objects (`{..}\r\n{..}\r\n`);
/// reading only the first would lose a SUCCESS or FAILURE. Stops at the first thing that is
/// not JSON.
pub fn parse_msgs(s: &str) -> Vec<Msg> {
    serde_json::Deserializer::from_str(s)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .filter_map(|v| from_value(&v))
        .collect()
}

/// Parse one JSON object. `None` when it is not a JSON object with a `type`.
pub fn parse_msg(s: &str) -> Option<Msg> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    from_value(&v)
}

fn from_value(v: &serde_json::Value) -> Option<Msg> {
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

/// SWUpdate's message text without its source location: `ERROR core/x.c : func : 187 : text`
/// becomes `text`; any other text is returned as it is.
pub fn plain(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("ERROR ") {
        let mut parts = rest.splitn(4, " : ");
        if let (Some(_), Some(_), Some(line), Some(msg)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            if line.trim().bytes().all(|b| b.is_ascii_digit()) {
                return msg.trim();
            }
        }
    }
    t
}

/// Errors SWUpdate's web server logs about the upload connection it just cut ("0xf socket
/// error", "Writing to IPC fails due to Broken pipe"): consequences, not the reason.
pub fn is_connection_noise(text: &str) -> bool {
    let t = plain(text);
    t.ends_with("socket error") || t.starts_with("Writing to IPC fails")
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

    #[test]
    fn plain_drops_the_source_location() {
        assert_eq!(
            plain("ERROR core/stream_interface.c : extract_files : 187 : SW not compatible with hardware"),
            "SW not compatible with hardware"
        );
        assert_eq!(plain("Installation failed !"), "Installation failed !");
        assert_eq!(plain("ERROR a : b : c : d"), "ERROR a : b : c : d");
    }

    #[test]
    fn a_frame_with_several_objects_gives_each() {
        // As mongoose forwards two broadcasts read at once: one frame, two objects.
        let f = "{\r\n\t\"type\": \"message\",\r\n\t\"level\": \"3\",\r\n\t\"text\": \"HASH mismatch\"\r\n}\r\n{\r\n\t\"type\": \"status\",\r\n\t\"status\": \"FAILURE\"\r\n}\r\n";
        assert_eq!(
            parse_msgs(f),
            vec![
                Msg::Message {
                    level: 3,
                    text: "HASH mismatch".into()
                },
                Msg::Status("FAILURE".into())
            ]
        );
        assert_eq!(parse_msgs("garbage {"), vec![]);
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = parse_msg(&s);
            let _ = parse_msgs(&s);
        }

        /// Any sequence of status objects, concatenated as SWUpdate does, parses back in order.
        #[test]
        fn concatenated_statuses_roundtrip(st in proptest::collection::vec("[A-Z]{1,10}", 0..6)) {
            let f: String = st.iter().map(|s| format!("{{\r\n\t\"type\": \"status\",\r\n\t\"status\": \"{s}\"\r\n}}\r\n")).collect();
            let want: Vec<Msg> = st.iter().map(|s| Msg::Status(s.clone())).collect();
            prop_assert_eq!(parse_msgs(&f), want);
        }
    }
}
