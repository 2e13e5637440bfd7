//! The variables of an environment, as U-Boot holds them in its hash table.
//!
//! Names and values are bytes: U-Boot stores whatever it was given, and an environment
//! written by another tool may hold bytes that are not UTF-8. Keeping bytes means a
//! read-modify-write never changes a variable that nobody touched.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Why a name cannot be a U-Boot variable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty name: U-Boot's `env set` refuses it.
    #[error("a variable name cannot be empty")]
    Empty,
    /// `=` separates name and value in the stored format, so it cannot be part of a name.
    #[error("variable name {0:?} contains '=': use NAME=VALUE or NAME VALUE, not both")]
    ContainsEquals(String),
    /// NUL terminates entries in the stored format.
    #[error("variable name {0:?} contains a NUL byte")]
    ContainsNul(String),
}

/// Check a variable name the way U-Boot does before storing it.
pub fn check_name(name: &[u8]) -> Result<(), NameError> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.contains(&b'=') {
        Err(NameError::ContainsEquals(shown()))
    } else if name.contains(&0) {
        Err(NameError::ContainsNul(shown()))
    } else {
        Ok(())
    }
}

/// The set of variables of one environment, ordered by name as U-Boot exports them
/// (U-Boot's `hexport_r` sorts with `strcmp`, which is byte order).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Vars {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl fmt::Debug for Vars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.map
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

impl Vars {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `name`, if set. Bytes that are not UTF-8 are shown as U+FFFD.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.map
            .get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v))
    }

    /// The exact bytes of `name`'s value, if set.
    pub fn get_bytes(&self, name: &[u8]) -> Option<&[u8]> {
        self.map.get(name).map(Vec::as_slice)
    }

    /// Whether `name` is set (an empty value counts as set, as in U-Boot's hash table:
    /// but see [`Vars::set`], which treats an empty value as a deletion like `env set`).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name.as_bytes())
    }

    /// Set `name` to `value`. As U-Boot's `env set name` with no value, an empty value deletes.
    pub fn set(
        &mut self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), NameError> {
        let name = name.into();
        let value = value.into();
        check_name(&name)?;
        if value.is_empty() {
            self.map.remove(&name);
        } else {
            self.map.insert(name, value);
        }
        Ok(())
    }

    /// Insert exactly, keeping an empty value (used when decoding a stored image, which
    /// may legitimately hold `name=`).
    pub(crate) fn insert_raw(&mut self, name: Vec<u8>, value: Vec<u8>) {
        self.map.insert(name, value);
    }

    /// Remove `name`; returns whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        self.map.remove(name.as_bytes()).is_some()
    }

    /// Iterate over `(name, value)` pairs in U-Boot's export order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes these variables take in the data area: `name=value\0` each, plus the final `\0`.
    pub fn encoded_len(&self) -> usize {
        self.map
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len() + 1)
            .sum::<usize>()
            + 1
    }

    /// Apply a set of changes in order. A value set with [`Changes::set_exact`] is stored as
    /// given, an empty one included; [`Changes::set`] with an empty value unsets.
    pub fn apply(&mut self, changes: &Changes) -> Result<(), NameError> {
        for (name, value) in changes.iter_bytes() {
            check_name(name)?;
            match value {
                Some(v) => {
                    self.map.insert(name.to_vec(), v.to_vec());
                }
                None => {
                    self.map.remove(name);
                }
            }
        }
        Ok(())
    }
}

impl<K: Into<Vec<u8>>, V: Into<Vec<u8>>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut vars = Vars::new();
        for (k, v) in iter {
            vars.map.insert(k.into(), v.into());
        }
        vars
    }
}

/// A set of changes applied as one write: each name is set to a value or unset (`None`).
/// Later entries for the same name win. Names and values are bytes (the drop-in
/// `fw_setenv` stores arguments that are not UTF-8 exactly, as the C tools do); the `&str`
/// methods are the everyday interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `Some(empty)` only comes from [`Changes::set_exact`]: every other way of giving an
    /// empty value unsets.
    entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Changes {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set `name` to `value` (an empty value unsets, as in U-Boot).
    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(name, Some(value.into()));
        self
    }

    /// Unset `name`.
    pub fn unset(mut self, name: impl Into<String>) -> Self {
        self.push(name, None);
        self
    }

    /// Add a change in place (an empty value unsets).
    pub fn push(&mut self, name: impl Into<String>, value: Option<String>) {
        self.push_bytes(
            name.into().into_bytes(),
            value.filter(|v| !v.is_empty()).map(String::into_bytes),
        );
    }

    /// Set `name` to exactly `value`, any bytes, **an empty value included** (stored as
    /// `name=`, as libubootenv's `fw_setenv NAME ""` does).
    pub fn set_exact(&mut self, name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.entries.push((name.into(), Some(value.into())));
    }

    /// Add a change in place, as bytes; `Some(b"")` stores an empty value (see
    /// [`Changes::set_exact`]), `None` unsets.
    pub fn push_bytes(&mut self, name: impl Into<Vec<u8>>, value: Option<Vec<u8>>) {
        self.entries.push((name.into(), value));
    }

    /// The changes in order, as text for people and reports: a name or value that is not
    /// UTF-8 (only [`Changes::set_exact`] and [`Changes::push_bytes`] make those) is shown
    /// lossily here and stored exactly by a write ([`Changes::iter_bytes`]).
    pub fn iter(&self) -> impl Iterator<Item = (Cow<'_, str>, Option<Cow<'_, str>>)> {
        self.entries.iter().map(|(k, v)| {
            (
                String::from_utf8_lossy(k),
                v.as_deref().map(String::from_utf8_lossy),
            )
        })
    }

    /// The changes in order, exactly.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether applying these changes to `vars` would change nothing.
    pub fn is_noop_for(&self, vars: &Vars) -> bool {
        let mut after = vars.clone();
        after.apply(self).is_ok() && after == *vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_uboot() {
        assert_eq!(check_name(b""), Err(NameError::Empty));
        assert!(matches!(
            check_name(b"a=b"),
            Err(NameError::ContainsEquals(_))
        ));
        assert!(matches!(
            check_name(b"a\0b"),
            Err(NameError::ContainsNul(_))
        ));
        assert_eq!(check_name(b"next_boot"), Ok(()));
    }

    #[test]
    fn empty_value_deletes_like_env_set() {
        let mut v = Vars::new();
        v.set("a", "1").unwrap();
        v.set("a", "").unwrap();
        assert!(!v.contains("a"));
    }

    #[test]
    fn order_is_strcmp_order() {
        let v: Vars = [("b", "1"), ("B", "2"), ("a", "3"), ("_", "4")]
            .into_iter()
            .collect();
        let names: Vec<_> = v.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(
            names,
            vec![b"B".to_vec(), b"_".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn changes_apply_in_order_and_last_wins() {
        let mut v = Vars::new();
        v.apply(
            &Changes::new()
                .set("x", "1")
                .set("y", "2")
                .unset("x")
                .set("y", "3"),
        )
        .unwrap();
        assert_eq!(v.get("x"), None);
        assert_eq!(v.get("y").as_deref(), Some("3"));
    }

    #[test]
    fn exact_changes_keep_bytes_and_empty_values() {
        let mut c = Changes::new();
        c.set_exact(b"n\xff".to_vec(), b"v\xfe".to_vec());
        c.set_exact("e", "");
        c.push("gone", Some(String::new()));
        let mut v = vars_of(&[("gone", "1")]);
        v.apply(&c).unwrap();
        assert_eq!(v.get_bytes(b"n\xff"), Some(&b"v\xfe"[..]));
        assert_eq!(
            v.get_bytes(b"e"),
            Some(&b""[..]),
            "set_exact keeps an empty value"
        );
        assert!(!v.contains("gone"), "push with an empty value unsets");
    }

    fn vars_of(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }
}
