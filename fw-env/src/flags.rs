//! U-Boot's `.flags` variable: per-variable type and access rules, enforced on every change
//! exactly as U-Boot's `env/flags.c` and `tools/env` enforce them.
//!
//! `.flags` is a comma-separated list of `name:TA` entries: `T` is the type (`s` string,
//! `d` decimal, `x` hex, `b` bool, `i` IPv4 address, `m` MAC address) and `A` the access
//! (`a` any, `r` read-only, `o` write-once, `c` change-default). Only the environment's own
//! `.flags` is known here: the static list compiled into a particular U-Boot
//! (`CONFIG_ENV_FLAGS_LIST_STATIC`) is not visible from Linux.

use crate::vars::Vars;

/// Name of the variable holding the rules.
pub const FLAGS_VAR: &str = ".flags";

/// A variable's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarType {
    /// Anything.
    String,
    /// Decimal digits only.
    Decimal,
    /// Hex digits, optionally after `0x`.
    Hex,
    /// One of `1yYtT0nNfF`.
    Bool,
    /// Dotted IPv4 address.
    IpAddr,
    /// Six colon-separated groups of one or two hex digits.
    MacAddr,
}

/// Who may change a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, any change.
    Any,
    /// No create, change or delete.
    ReadOnly,
    /// May be created once; never changed or deleted.
    WriteOnce,
    /// May be changed only while it holds its default value; never deleted.
    ChangeDefault,
}

/// A change refused by the rules; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    /// The value is not of the declared type.
    #[error("flags type check failure for \"{name}\" <= \"{value}\" (type: {type_char}); see the `.flags` variable")]
    Type {
        /// Variable name.
        name: String,
        /// Refused value.
        value: String,
        /// Declared type letter.
        type_char: char,
    },
    /// The access rule forbids this kind of change.
    #[error("Can't {action} \"{name}\": `.flags` makes it {rule}")]
    Access {
        /// Variable name.
        name: String,
        /// `create`, `overwrite` or `delete`.
        action: &'static str,
        /// The rule, in words.
        rule: &'static str,
    },
}

fn parse_type(c: Option<char>) -> VarType {
    match c {
        Some('d') => VarType::Decimal,
        Some('x') => VarType::Hex,
        Some('b') => VarType::Bool,
        Some('i') => VarType::IpAddr,
        Some('m') => VarType::MacAddr,
        _ => VarType::String,
    }
}

fn type_char(t: VarType) -> char {
    match t {
        VarType::String => 's',
        VarType::Decimal => 'd',
        VarType::Hex => 'x',
        VarType::Bool => 'b',
        VarType::IpAddr => 'i',
        VarType::MacAddr => 'm',
    }
}

fn parse_access(c: Option<char>) -> Access {
    match c {
        Some('r') => Access::ReadOnly,
        Some('o') => Access::WriteOnce,
        Some('c') => Access::ChangeDefault,
        _ => Access::Any,
    }
}

/// The rule for `name` in a `.flags` value: the first entry naming it.
pub fn lookup(flags_list: &str, name: &str) -> Option<(VarType, Access)> {
    flags_list.split(',').find_map(|entry| {
        let (n, attrs) = entry.split_once(':').unwrap_or((entry, ""));
        (n.trim() == name).then(|| {
            let mut chars = attrs.trim().chars();
            (parse_type(chars.next()), parse_access(chars.next()))
        })
    })
}

fn count_digits(s: &[u8], hex: bool, max: usize) -> usize {
    s.iter()
        .take(max)
        .take_while(|b| {
            if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        })
        .count()
}

/// Whether `value` is of type `t`, as `_env_flags_validate_type` decides.
pub fn type_ok(value: &str, t: VarType) -> bool {
    let v = value.as_bytes();
    match t {
        VarType::String => true,
        VarType::Decimal => count_digits(v, false, usize::MAX) == v.len(),
        VarType::Hex => {
            let body = v
                .strip_prefix(b"0x")
                .or_else(|| v.strip_prefix(b"0X"))
                .unwrap_or(v);
            count_digits(body, true, usize::MAX) == body.len()
                && !(body.is_empty() && body.len() != v.len())
        }
        VarType::Bool => v.len() == 1 && b"1yYtT0nNfF".contains(&v[0]),
        VarType::IpAddr => {
            let parts: Vec<&[u8]> = v.split(|&b| b == b'.').collect();
            parts.len() == 4
                && parts
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && count_digits(p, false, 3) == p.len())
        }
        VarType::MacAddr => {
            let parts: Vec<&[u8]> = v.split(|&b| b == b':').collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| (1..=2).contains(&p.len()) && count_digits(p, true, 2) == p.len())
        }
    }
}

/// Check one change (`value` `None` or empty = delete) against the rules in `current`'s
/// `.flags`. `default` is the variable's default value, for the change-default rule.
pub fn check_change(
    current: &Vars,
    name: &str,
    value: Option<&str>,
    default: Option<&str>,
) -> Result<(), FlagsError> {
    let Some(list) = current.get(FLAGS_VAR) else {
        return Ok(());
    };
    let Some((vartype, access)) = lookup(&list, name) else {
        return Ok(());
    };
    let old = current.get(name);
    let new = value.filter(|v| !v.is_empty());
    let deleting = old.is_some() && new.is_none();
    let creating = old.is_none() && new.is_some();
    let overwriting = matches!((&old, new), (Some(o), Some(n)) if o.as_ref() != n);
    let refuse = |action, rule| {
        Err(FlagsError::Access {
            name: name.to_owned(),
            action,
            rule,
        })
    };
    if deleting {
        match access {
            Access::Any => {}
            Access::ReadOnly => return refuse("delete", "read-only"),
            Access::WriteOnce => return refuse("delete", "write-once"),
            Access::ChangeDefault => return refuse("delete", "change-default"),
        }
    } else if overwriting {
        match access {
            Access::Any => {}
            Access::ReadOnly => return refuse("overwrite", "read-only"),
            Access::WriteOnce => return refuse("overwrite", "write-once"),
            Access::ChangeDefault => {
                if old.as_deref() != Some(default.unwrap_or("")) {
                    return refuse(
                        "overwrite",
                        "change-default and it no longer holds its default",
                    );
                }
            }
        }
    } else if creating && access == Access::ReadOnly {
        return refuse("create", "read-only");
    }
    if let Some(v) = new {
        if !type_ok(v, vartype) {
            return Err(FlagsError::Type {
                name: name.to_owned(),
                value: v.to_owned(),
                type_char: type_char(vartype),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_parses_entries_with_blanks() {
        let list = " a:dr , b : x, c, ,d:";
        assert_eq!(
            lookup(list, "a"),
            Some((VarType::Decimal, Access::ReadOnly))
        );
        assert_eq!(lookup(list, "b"), Some((VarType::Hex, Access::Any)));
        assert_eq!(lookup(list, "c"), Some((VarType::String, Access::Any)));
        assert_eq!(lookup(list, "d"), Some((VarType::String, Access::Any)));
        assert_eq!(lookup(list, "e"), None);
    }

    #[test]
    fn types_follow_env_flags_c() {
        let rows: &[(&str, VarType, bool)] = &[
            ("123", VarType::Decimal, true),
            ("-1", VarType::Decimal, false), // no sign in skip_num
            ("12a", VarType::Decimal, false),
            ("0x1f", VarType::Hex, true),
            ("1F", VarType::Hex, true),
            ("0x", VarType::Hex, false), // prefix alone
            ("0xg", VarType::Hex, false),
            ("y", VarType::Bool, true),
            ("yes", VarType::Bool, false),
            ("2", VarType::Bool, false),
            ("192.168.1.10", VarType::IpAddr, true),
            ("1.2.3", VarType::IpAddr, false),
            ("1.2.3.4444", VarType::IpAddr, false),
            ("00:11:22:aa:bb:c", VarType::MacAddr, true),
            ("00:11:22:aa:bb", VarType::MacAddr, false),
            ("000:11:22:aa:bb:cc", VarType::MacAddr, false),
        ];
        for &(v, t, ok) in rows {
            assert_eq!(type_ok(v, t), ok, "{v:?} as {t:?}");
        }
    }

    #[test]
    fn access_rules() {
        let env: Vars = [
            (".flags", "ro:sr,once:so,def:sc,num:d"),
            ("ro", "1"),
            ("once", "1"),
            ("def", "d"),
        ]
        .into_iter()
        .collect();
        assert!(check_change(&env, "ro", Some("2"), None).is_err());
        assert!(check_change(&env, "ro", None, None).is_err());
        assert!(
            check_change(&env, "ro", Some("1"), None).is_ok(),
            "same value is no change"
        );
        assert!(check_change(&env, "once", Some("2"), None).is_err());
        assert!(check_change(&env, "def", Some("x"), Some("d")).is_ok());
        assert!(check_change(&env, "def", Some("x"), Some("other")).is_err());
        assert!(check_change(&env, "def", None, Some("d")).is_err());
        assert!(check_change(&env, "num", Some("12"), None).is_ok());
        let e = check_change(&env, "num", Some("x"), None).unwrap_err();
        assert!(e.to_string().contains("type: d"), "{e}");
        let mut empty = env.clone();
        empty.remove("once");
        assert!(
            check_change(&empty, "once", Some("1"), None).is_ok(),
            "write-once may create"
        );
        empty.remove("ro");
        assert!(
            check_change(&empty, "ro", Some("1"), None).is_err(),
            "read-only may not create"
        );
    }
}
