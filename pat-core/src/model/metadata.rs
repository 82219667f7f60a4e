//! A token's metadata: a small map of strings an app attaches to a token
//! (the team that owns it, the ticket it was made for), handed back with
//! every authentication so that the app need not look its record up.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Most entries one token's metadata holds.
pub const MAX_META_ENTRIES: usize = 16;
/// Longest key, in bytes.
pub const MAX_META_KEY_LEN: usize = 64;
/// Longest value, in bytes.
pub const MAX_META_VALUE_LEN: usize = 256;
/// Most bytes of keys and values together.
pub const MAX_META_LEN: usize = 2048;

/// A token's metadata: at most [`MAX_META_ENTRIES`] entries, keys of ASCII
/// letters, digits and `_ . -` (at most [`MAX_META_KEY_LEN`] bytes), values
/// of printable text without control or invisible formatting characters
/// (at most [`MAX_META_VALUE_LEN`] bytes), [`MAX_META_LEN`] bytes in all.
/// Sorted by key; cloned without copying (shared), and empty costs nothing.
///
/// ```
/// use pat_core::Metadata;
/// let meta = Metadata::new([("team", "payments"), ("ticket", "OPS-12")]).unwrap();
/// assert_eq!(meta.get("team"), Some("payments"));
/// assert_eq!(meta.to_string(), "team=payments ticket=OPS-12");
/// assert!("bad key=x".parse::<pat_core::MetaEntry>().is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata(Option<Arc<BTreeMap<String, String>>>);

/// Why metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// More entries than [`MAX_META_ENTRIES`].
    #[error("at most {MAX_META_ENTRIES} metadata entries, got {0}")]
    TooMany(usize),
    /// A key is given twice.
    #[error("metadata key `{0}` is given twice")]
    Repeated(String),
    /// A key that breaks the rules.
    #[error(
        "metadata key `{}`: {reason} (1 to {MAX_META_KEY_LEN} ASCII letters, digits, `_`, `.` or `-`)",
        crate::model::text::printable(key)
    )]
    Key {
        /// The key, as given.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value that breaks the rules.
    #[error("metadata `{key}`: the value {reason}")]
    Value {
        /// Its key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Larger than [`MAX_META_LEN`] in all.
    #[error("metadata of {0} bytes: at most {MAX_META_LEN} bytes of keys and values in all")]
    TooLarge(usize),
    /// `key=value` without `=`.
    #[error("metadata `{}`: give it as key=value", crate::model::text::printable(.0))]
    NoEquals(String),
}

impl Metadata {
    /// No metadata.
    pub const fn empty() -> Metadata {
        Metadata(None)
    }

    /// Metadata of `entries`, checked ([`MetadataError`]).
    pub fn new<K: Into<String>, V: Into<String>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Metadata, MetadataError> {
        let mut map = BTreeMap::new();
        let mut count = 0;
        let mut size = 0;
        for (k, v) in entries {
            let (k, v) = (k.into(), v.into());
            check_key(&k)?;
            check_value(&k, &v)?;
            count += 1;
            size += k.len() + v.len();
            if map.contains_key(&k) {
                return Err(MetadataError::Repeated(k));
            }
            map.insert(k, v);
        }
        if count > MAX_META_ENTRIES {
            return Err(MetadataError::TooMany(count));
        }
        if size > MAX_META_LEN {
            return Err(MetadataError::TooLarge(size));
        }
        Ok(Metadata((!map.is_empty()).then(|| Arc::new(map))))
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.as_ref()?.get(key).map(String::as_str)
    }

    /// The entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// As a JSON object of strings.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.iter()
                .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                .collect(),
        )
    }

    /// From a JSON object of strings (the management API's `meta`, a
    /// stored column); the error says what is wrong.
    pub fn from_json(v: &serde_json::Value) -> Result<Metadata, String> {
        let serde_json::Value::Object(map) = v else {
            return Err("must be a JSON object of strings".into());
        };
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            let serde_json::Value::String(v) = v else {
                return Err(format!(
                    "`{}` must be a string",
                    crate::model::text::printable(k)
                ));
            };
            entries.push((k.clone(), v.clone()));
        }
        Metadata::new(entries).map_err(|e| e.to_string())
    }
}

impl Metadata {
    /// `self` (a parent's metadata) with `child`'s entries added, as a
    /// token made with a token gets it: the child keeps every entry of its
    /// parent and may only add keys, never change one (an app may trust an
    /// entry such as `tenant` to say whose a family is). The error names a
    /// changed key, or the limits the whole would break.
    pub fn extended_by(&self, child: &Metadata) -> Result<Metadata, String> {
        if child.is_empty() {
            return Ok(self.clone());
        }
        for (k, v) in child.iter() {
            if let Some(was) = self.get(k)
                && was != v
            {
                return Err(format!(
                    "metadata `{k}` is `{}` on the token this one is made with, and a token \
                     made with it keeps it",
                    crate::model::text::printable(was)
                ));
            }
        }
        Metadata::new(self.iter().chain(child.iter()).collect::<BTreeMap<_, _>>())
            .map_err(|e| e.to_string())
    }
}

fn check_key(key: &str) -> Result<(), MetadataError> {
    let bad = |reason| {
        Err(MetadataError::Key {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_META_KEY_LEN {
        return bad("too long");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return bad("a character that is not allowed");
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), MetadataError> {
    let bad = |reason| {
        Err(MetadataError::Value {
            key: key.to_owned(),
            reason,
        })
    };
    if value.len() > MAX_META_VALUE_LEN {
        return bad("is longer than 256 bytes");
    }
    if value
        .chars()
        .any(|c| c.is_control() || crate::model::text::is_invisible(c))
    {
        return bad("holds a control or invisible formatting character");
    }
    Ok(())
}

impl fmt::Display for Metadata {
    /// `key=value` entries separated by spaces, the values made printable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={}", crate::model::text::printable(v))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// One `key=value` entry, as `--meta` takes it (checked as a whole by
/// [`Metadata::new`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl std::str::FromStr for MetaEntry {
    type Err = MetadataError;

    fn from_str(s: &str) -> Result<MetaEntry, MetadataError> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| MetadataError::NoEquals(s.to_owned()))?;
        check_key(key)?;
        check_value(key, value)?;
        Ok(MetaEntry {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn limits_are_named() {
        assert!(
            Metadata::new([("", "x")])
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(matches!(
            Metadata::new([("a b", "x")]),
            Err(MetadataError::Key { .. })
        ));
        assert!(matches!(
            Metadata::new([("a", "x\u{1b}[31m")]),
            Err(MetadataError::Value { .. })
        ));
        assert!(matches!(
            Metadata::new([("a", "1"), ("a", "2")]),
            Err(MetadataError::Repeated(k)) if k == "a"
        ));
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(Metadata::new(many), Err(MetadataError::TooMany(17)));
        let big: Vec<(String, String)> =
            (0..9).map(|i| (format!("k{i}"), "v".repeat(250))).collect();
        assert!(matches!(
            Metadata::new(big),
            Err(MetadataError::TooLarge(_))
        ));
        assert!(
            Metadata::new(Vec::<(String, String)>::new())
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            "novalue".parse::<MetaEntry>(),
            Err(MetadataError::NoEquals(_))
        ));
        assert_eq!(
            "team=a=b".parse::<MetaEntry>().unwrap().value,
            "a=b",
            "the first = splits"
        );
    }

    proptest! {
        #[test]
        fn json_round_trips_and_any_json_gets_an_answer(
            entries in proptest::collection::btree_map("[a-z._-]{1,8}", ".{0,20}", 0..5),
            junk in ".{0,40}",
        ) {
            if let Ok(meta) = Metadata::new(entries) {
                prop_assert_eq!(Metadata::from_json(&meta.to_json()).unwrap(), meta);
            }
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&junk) {
                let _ = Metadata::from_json(&v);
            }
        }
    }
}
