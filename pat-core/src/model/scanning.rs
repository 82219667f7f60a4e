//! Rules that let secret scanners find a store's tokens: a regular
//! expression, a [gitleaks] rule and a [detect-secrets] plugin, made from
//! the token format (see [`TokenSecret`](crate::TokenSecret)) and the
//! prefixes a store's tokens carry.
//!
//! A scanner routes what it finds by the prefix, so the rules name each
//! prefix exactly and end the token at a word boundary. Where the tool can
//! run code (detect-secrets), the rule checks the token's checksum too, so
//! that a value of the right shape but a broken checksum (a typo, a made-up
//! example) is not reported; gitleaks cannot, and reports by shape.
//!
//! ```
//! use pat_core::scanning::{RuleFormat, ScanRules};
//!
//! let rules = ScanRules::new(["pat"]).unwrap();
//! assert_eq!(
//!     rules.render(RuleFormat::Regex),
//!     "((?:pat)_[0-9A-Za-z]{38})(?:[^0-9A-Za-z]|$)\n"
//! );
//! assert!(ScanRules::new(["p"]).is_err());
//! ```
//!
//! [gitleaks]: https://github.com/gitleaks/gitleaks#configuration
//! [detect-secrets]: https://github.com/Yelp/detect-secrets

use std::fmt;

use super::prefix::Prefix;
pub use super::prefix::{MAX_PREFIX_LEN, MIN_PREFIX_LEN};
use super::token::{BASE62, BODY_LEN, CHECKSUM_LEN};

/// The id of the gitleaks rule [`RuleFormat::Gitleaks`] prints (GitLab's
/// secret detection names its findings after it, see
/// [`crate::gitlab_revocation`]).
pub const GITLEAKS_RULE_ID: &str = "pat-personal-access-token";

/// The output a scanner reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleFormat {
    /// One regular expression on one line, in the syntax RE2 (Go), PCRE,
    /// Python's `re` and Rust's `regex` share; its group 1 is the token.
    Regex,
    /// A gitleaks configuration (TOML) extending gitleaks' default rules
    /// with one rule for these tokens.
    Gitleaks,
    /// A detect-secrets plugin (a Python file for `--plugin`) that reports
    /// only tokens whose checksum holds.
    DetectSecrets,
}

/// The rules for tokens of some prefixes (a store's current one and those
/// it had before).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRules {
    prefixes: Vec<String>,
}

/// A prefix the rules cannot be made for: tokens never carry it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPrefix {
    /// No prefix at all.
    #[error("no token prefix given")]
    None,
    /// Not 2 to 16 ASCII letters and digits.
    #[error("token prefix {0:?} is not 2 to 16 ASCII letters and digits (as `pat` or `acme`)")]
    Shape(String),
}

impl ScanRules {
    /// The rules for tokens of `prefixes` (each 2 to 16 ASCII letters and
    /// digits, without the `_` that follows it in a token); duplicates are
    /// dropped, the order kept.
    pub fn new<I>(prefixes: I) -> Result<ScanRules, InvalidPrefix>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut kept: Vec<String> = Vec::new();
        for prefix in prefixes {
            let prefix = prefix.as_ref();
            if Prefix::new(prefix).is_err() {
                return Err(InvalidPrefix::Shape(prefix.to_owned()));
            }
            if !kept.iter().any(|k| k == prefix) {
                kept.push(prefix.to_owned());
            }
        }
        if kept.is_empty() {
            return Err(InvalidPrefix::None);
        }
        Ok(ScanRules { prefixes: kept })
    }

    /// The prefixes the rules find.
    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    /// The regular expression: a prefix, `_`, the body and checksum
    /// characters, then anything but a letter or digit, or the end (a
    /// longer run of them is not a token). Group 1 is the whole token.
    /// Nothing is asked of what comes before: a token is still found after
    /// `%20`, an escaped `\n` or an `ID_`. Prefixes are letters and digits,
    /// so nothing in it needs escaping.
    pub fn regex(&self) -> String {
        format!(
            r"((?:{})_[0-9A-Za-z]{{{}}})(?:[^0-9A-Za-z]|$)",
            self.prefixes.join("|"),
            BODY_LEN + CHECKSUM_LEN
        )
    }

    /// The rules in `format`, ending with a newline.
    pub fn render(&self, format: RuleFormat) -> String {
        match format {
            RuleFormat::Regex => format!("{}\n", self.regex()),
            RuleFormat::Gitleaks => self.gitleaks(),
            RuleFormat::DetectSecrets => self.detect_secrets(),
        }
    }

    fn names(&self) -> String {
        self.prefixes.join(", ")
    }

    fn gitleaks(&self) -> String {
        // Keywords are matched against the lowercased text.
        let keywords: Vec<String> = self
            .prefixes
            .iter()
            .map(|p| format!("{:?}", format!("{}_", p.to_ascii_lowercase())))
            .collect();
        format!(
            "# gitleaks rules for personal access tokens with the prefix {names}\n\
             # (made by `pat-cli scan-rules --format gitleaks`). gitleaks runs no code,\n\
             # so it matches a token's shape only: a value with a broken checksum is\n\
             # reported too (`pat-cli token check` tells one from a real token).\n\
             title = \"personal access tokens ({names})\"\n\
             \n\
             [extend]\n\
             useDefault = true\n\
             \n\
             [[rules]]\n\
             id = \"{GITLEAKS_RULE_ID}\"\n\
             description = \"Personal access token ({names})\"\n\
             regex = '''{regex}'''\n\
             secretGroup = 1\n\
             # 38 random letters and digits carry about 4.5 bits per character.\n\
             entropy = 3.5\n\
             keywords = [{keywords}]\n\
             tags = [\"personal-access-token\"]\n",
            names = self.names(),
            regex = self.regex(),
            keywords = keywords.join(", "),
        )
    }

    fn detect_secrets(&self) -> String {
        format!(
            r#""""A detect-secrets plugin for personal access tokens with the prefix {names}.

Made by `pat-cli scan-rules --format detect-secrets`; use it with
`detect-secrets scan --plugin THIS_FILE`. A value is reported only if its
checksum holds (CRC32 of the prefix, `_` and body, as {checksum_len} base62 digits),
so a typo or a made-up example is not.
"""

import re
import zlib

from detect_secrets.plugins.base import RegexBasedDetector

_BASE62 = "{base62}"
_CHECKSUM_LEN = {checksum_len}


def _checksum(head_and_body):
    n = zlib.crc32(head_and_body.encode("ascii"))
    digits = []
    for _ in range(_CHECKSUM_LEN):
        digits.append(_BASE62[n % 62])
        n //= 62
    return "".join(reversed(digits))


class PatTokenDetector(RegexBasedDetector):
    """Scans for personal access tokens ({names}) whose checksum holds."""

    secret_type = "Personal access token ({names})"

    denylist = [re.compile(r"{regex}")]

    def analyze_string(self, string):
        for token in super().analyze_string(string):
            if _checksum(token[:-_CHECKSUM_LEN]) == token[-_CHECKSUM_LEN:]:
                yield token
"#,
            names = self.names(),
            base62 = std::str::from_utf8(BASE62).expect("ASCII"),
            checksum_len = CHECKSUM_LEN,
            regex = self.regex(),
        )
    }
}

impl fmt::Display for RuleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleFormat::Regex => "regex",
            RuleFormat::Gitleaks => "gitleaks",
            RuleFormat::DetectSecrets => "detect-secrets",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenSecret;

    #[test]
    fn prefixes_are_checked_and_deduplicated() {
        for bad in [
            "",
            "p",
            "seventeen-chars-x",
            "pat_",
            "pät",
            "a b",
            "abcdefghijklmnopq",
        ] {
            assert_eq!(
                ScanRules::new([bad]),
                Err(InvalidPrefix::Shape(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(
            ScanRules::new(Vec::<String>::new()),
            Err(InvalidPrefix::None)
        );
        let rules = ScanRules::new(["acme", "pat", "acme", "Ab16charsXXXXXXX"]).unwrap();
        assert_eq!(rules.prefixes(), ["acme", "pat", "Ab16charsXXXXXXX"]);
    }

    #[test]
    fn the_regex_finds_a_token_as_a_whole_word_only() {
        let token = TokenSecret::generate();
        let token = token.expose_secret();
        let re = regex_lite::Regex::new(&ScanRules::new(["acme", "pat"]).unwrap().regex()).unwrap();
        for (text, found) in [
            (format!("PAT={token}\n"), Some(token)),
            (format!("\"{token}\","), Some(token)),
            (format!("x{token}"), Some(token)),
            (format!("Bearer%20{token}"), Some(token)),
            (format!("\\n{token}\\n"), Some(token)),
            (format!("{token}_old"), Some(token)),
            (format!("{token}0"), None),
            (format!("ghp_{}", &token[4..]), None),
            (token[..token.len() - 1].to_owned(), None),
        ] {
            let got = re
                .captures(&text)
                .map(|c| c.get(1).unwrap().as_str().to_owned());
            assert_eq!(got.as_deref(), found, "{text:?}");
        }
    }
}
