//! Parsing the `Authorization` header: `Bearer` (RFC 6750) and `Basic`
//! (RFC 7617), strictly, without panicking on any input.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

/// Longest `Authorization` value accepted, in bytes. A token is 42
/// characters; this leaves room for long user names in Basic.
pub const MAX_AUTHORIZATION_LEN: usize = 4096;

/// Credentials of a scheme this crate handles. `Debug` never prints the
/// Bearer token or the Basic password.
pub enum Credentials<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: Basic base64(user:password)`; the password is the token.
    Basic(BasicCredentials),
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The token may be a live secret.
            Credentials::Bearer(_) => f.write_str("Bearer(\"…\")"),
            Credentials::Basic(basic) => f.debug_tuple("Basic").field(basic).finish(),
        }
    }
}

/// Decoded HTTP Basic credentials. The password is zeroed on drop and never
/// printed by `Debug`.
pub struct BasicCredentials {
    decoded: Zeroizing<String>,
    colon: usize,
}

impl BasicCredentials {
    /// The user name (before the first `:`).
    pub fn user(&self) -> &str {
        &self.decoded[..self.colon]
    }

    /// The password (after the first `:`): for us, the token.
    pub fn password(&self) -> &str {
        &self.decoded[self.colon + 1..]
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user())
            .field("password", &"…")
            .finish()
    }
}

/// An `Authorization` header that claims a scheme we handle but is broken:
/// answered with 400 and `error="invalid_request"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// Longer than [`MAX_AUTHORIZATION_LEN`].
    #[error("the Authorization header is too long")]
    TooLong,
    /// Not valid UTF-8.
    #[error("the Authorization header is not valid UTF-8")]
    NotUtf8,
    /// `Bearer` or `Basic` with nothing after it.
    #[error("the Authorization header has a scheme but no credentials")]
    Empty,
    /// Basic credentials that are not strict, padded base64.
    #[error("the Basic credentials are not valid base64")]
    Base64,
    /// Basic credentials that do not decode to UTF-8.
    #[error("the Basic credentials are not valid UTF-8")]
    BasicNotUtf8,
    /// Basic credentials without the `:` between user and password.
    #[error("the Basic credentials have no `:` between user and password")]
    NoColon,
    /// More than one `Authorization` header.
    #[error("the request has more than one Authorization header")]
    Repeated,
}

/// The blanks around and after an `Authorization` scheme: spaces and tabs.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The scheme of an `Authorization` value, read from its bytes before
/// anything else: `(scheme, rest)`, both trimmed of spaces and tabs.
fn split_scheme(value: &[u8]) -> (&[u8], &[u8]) {
    let blank = |b: &u8| is_blank(*b);
    let start = value.iter().position(|b| !blank(b)).unwrap_or(value.len());
    let value = &value[start..];
    let end = value.iter().position(blank).unwrap_or(value.len());
    let (scheme, rest) = value.split_at(end);
    let rest_start = rest.iter().position(|b| !blank(b)).unwrap_or(rest.len());
    let rest = &rest[rest_start..];
    let rest_end = rest.iter().rposition(|b| !blank(b)).map_or(0, |i| i + 1);
    (scheme, &rest[..rest_end])
}

/// The usual form, `Bearer <token>` with one space and nothing around: the
/// token, read without the general path's scans; `None` for anything else
/// (which the general path then reads, to the same result: after one space,
/// a token that neither starts nor ends with a blank is what the general
/// path's trimming leaves).
#[inline]
fn exact_bearer(value: &[u8]) -> Option<&[u8]> {
    const HEAD: &[u8; 7] = b"bearer ";
    if value.len() <= HEAD.len() || value.len() > MAX_AUTHORIZATION_LEN {
        return None;
    }
    // `eq_ignore_ascii_case` as one comparison of a word: setting bit 5
    // lowercases an ASCII letter, and for a letter L only L and its capital
    // have L once it is set. The seventh byte, the space, is compared as it
    // is (bit 5 would turn a NUL into a space).
    let mut word = [0; 8];
    word[..HEAD.len()].copy_from_slice(&value[..HEAD.len()]);
    const LETTERS: u64 = 0x0000_2020_2020_2020;
    if u64::from_le_bytes(word) | LETTERS != u64::from_le_bytes(*b"bearer \0") {
        return None;
    }
    let rest = &value[HEAD.len()..];
    match (rest.first(), rest.last()) {
        (Some(&first), Some(&last)) if !is_blank(first) && !is_blank(last) => Some(rest),
        _ => None,
    }
}

/// What [`Credentials::parse`] reads, with a Bearer token still in bytes:
/// the gate's request path, whose check of a token's shape (prefix and
/// alphabet) makes a separate UTF-8 pass over a token of ours redundant. The
/// gate runs that pass itself on what its check refuses, so that every
/// answer is the one `parse` would lead to.
pub(crate) enum RawCredentials<'a> {
    /// The bytes after `Bearer`, trimmed and not empty; not yet known to be
    /// UTF-8.
    Bearer(&'a [u8]),
    /// Decoded Basic credentials.
    Basic(BasicCredentials),
}

impl<'a> RawCredentials<'a> {
    /// [`Credentials::parse`] but for the Bearer token's UTF-8 check.
    #[inline]
    pub(crate) fn parse(value: &'a [u8]) -> Result<Option<RawCredentials<'a>>, CredentialsError> {
        if let Some(token) = exact_bearer(value) {
            return Ok(Some(RawCredentials::Bearer(token)));
        }
        Self::parse_general(value)
    }

    fn parse_general(value: &'a [u8]) -> Result<Option<RawCredentials<'a>>, CredentialsError> {
        let (scheme, rest) = split_scheme(value);
        let bearer = scheme.eq_ignore_ascii_case(b"bearer");
        if !bearer && !scheme.eq_ignore_ascii_case(b"basic") {
            return Ok(None);
        }
        if value.len() > MAX_AUTHORIZATION_LEN {
            return Err(CredentialsError::TooLong);
        }
        if rest.is_empty() {
            return Err(CredentialsError::Empty);
        }
        if bearer {
            return Ok(Some(RawCredentials::Bearer(rest)));
        }
        let rest = std::str::from_utf8(rest).map_err(|_| CredentialsError::NotUtf8)?;
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| CredentialsError::Base64)?;
        // Move the bytes into the string (no copy), zeroizing them on every
        // path.
        let decoded = match String::from_utf8(std::mem::take(&mut bytes)) {
            Ok(text) => Zeroizing::new(text),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                return Err(CredentialsError::BasicNotUtf8);
            }
        };
        let colon = decoded.find(':').ok_or(CredentialsError::NoColon)?;
        Ok(Some(RawCredentials::Basic(BasicCredentials {
            decoded,
            colon,
        })))
    }
}

impl<'a> Credentials<'a> {
    /// Whether `value` claims a scheme this crate handles (`Bearer` or
    /// `Basic`, any case), whatever follows.
    pub fn claims(value: &[u8]) -> bool {
        let (scheme, _) = split_scheme(value);
        scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"basic")
    }

    /// Parses one `Authorization` header value.
    ///
    /// The scheme is read first, case-insensitively. `Ok(None)` means another
    /// scheme (`Digest`, `Negotiate`, ...): not ours to judge, whatever its
    /// size or encoding, so that optional mode passes it on untouched. Only
    /// `Bearer` and `Basic` values are held to [`MAX_AUTHORIZATION_LEN`] and
    /// UTF-8.
    ///
    /// ```
    /// use pat_core::{Credentials, CredentialsError};
    /// let Some(Credentials::Basic(basic)) = Credentials::parse(b"basic YWxpY2U6cGF0X3g=")? else {
    ///     panic!("expected Basic credentials");
    /// };
    /// assert_eq!((basic.user(), basic.password()), ("alice", "pat_x"));
    /// assert!(matches!(Credentials::parse(b"BEARER pat_x")?, Some(Credentials::Bearer("pat_x"))));
    /// assert!(Credentials::parse(b"Negotiate abc")?.is_none());
    /// assert_eq!(Credentials::parse(b"Basic !!!").unwrap_err(), CredentialsError::Base64);
    /// # Ok::<(), CredentialsError>(())
    /// ```
    pub fn parse(value: &'a [u8]) -> Result<Option<Credentials<'a>>, CredentialsError> {
        Ok(match RawCredentials::parse(value)? {
            None => None,
            Some(RawCredentials::Bearer(token)) => Some(Credentials::Bearer(
                std::str::from_utf8(token).map_err(|_| CredentialsError::NotUtf8)?,
            )),
            Some(RawCredentials::Basic(basic)) => Some(Credentials::Basic(basic)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn basic(raw: &str) -> String {
        format!("Basic {}", STANDARD.encode(raw))
    }

    #[test]
    fn schemes_are_case_insensitive_and_spacing_is_tolerated() {
        for v in [
            "Bearer pat_x",
            "bearer pat_x",
            "BEARER   pat_x",
            "\tBeArEr\tpat_x  ",
        ] {
            assert!(
                matches!(
                    Credentials::parse(v.as_bytes()),
                    Ok(Some(Credentials::Bearer("pat_x")))
                ),
                "{v:?}"
            );
        }
        let v = basic("alice:pat_x").replace("Basic", "bAsIc");
        let Ok(Some(Credentials::Basic(b))) = Credentials::parse(v.as_bytes()) else {
            panic!()
        };
        assert_eq!((b.user(), b.password()), ("alice", "pat_x"));
    }

    #[test]
    fn password_may_contain_colons_and_user_may_be_empty() {
        let v = basic(":a:b");
        let Ok(Some(Credentials::Basic(b))) = Credentials::parse(v.as_bytes()) else {
            panic!()
        };
        assert_eq!((b.user(), b.password()), ("", "a:b"));
    }

    #[test]
    fn other_schemes_are_not_ours() {
        for v in [
            "Digest username=x",
            "Negotiate abc",
            "Token pat_x",
            "Bearerx pat_x",
            "pat_x",
        ] {
            assert!(matches!(Credentials::parse(v.as_bytes()), Ok(None)), "{v}");
        }
    }

    #[test]
    fn other_schemes_are_not_judged_by_size_or_encoding() {
        // Regression: a 5 KB Kerberos ticket or a Digest header with Latin-1
        // bytes got 400 before the scheme was known, so optional mode could
        // not pass them on to the layer that handles them.
        let ticket = format!("Negotiate {}", "YII".repeat(2000));
        let digest: &[u8] = b"Digest username=\"j\xf6rg\", realm=\"x\"";
        for v in [ticket.as_bytes(), digest, b"\xff\xfe", b""] {
            assert!(matches!(Credentials::parse(v), Ok(None)));
            assert!(!Credentials::claims(v));
        }
        assert!(Credentials::claims(b"  bAsIc x"));
        assert!(Credentials::claims(b"Bearer"));
    }

    #[test]
    fn broken_credentials_are_specific_errors() {
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_LEN));
        let cases: &[(&[u8], CredentialsError)] = &[
            (long.as_bytes(), CredentialsError::TooLong),
            (b"Bearer \xff", CredentialsError::NotUtf8),
            (b"Bearer", CredentialsError::Empty),
            (b"Bearer   ", CredentialsError::Empty),
            (b"Basic", CredentialsError::Empty),
            (b"Basic YWxpY2U6eA", CredentialsError::Base64),
            (b"Basic YWxp Y2U6eA==", CredentialsError::Base64),
            (b"Basic /w==", CredentialsError::BasicNotUtf8),
            (b"Basic YWxpY2U=", CredentialsError::NoColon),
        ];
        for (v, want) in cases {
            assert_eq!(
                Credentials::parse(v).unwrap_err(),
                *want,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let v = basic("alice:pat_secret");
        let c = Credentials::parse(v.as_bytes()).unwrap().unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("alice") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn debug_hides_the_bearer_token() {
        let c = Credentials::parse(b"Bearer pat_secret").unwrap().unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.starts_with("Bearer") && !shown.contains("secret"),
            "{shown}"
        );
    }

    #[test]
    fn the_scheme_is_compared_as_eq_ignore_ascii_case_would() {
        // Every byte at every place of the scheme and its space (the word
        // compare's one risk is a byte other than a letter's two cases).
        for place in 0..7 {
            for byte in 0..=u8::MAX {
                let mut v = b"BeArEr pat_x".to_vec();
                v[place] = byte;
                assert_eq!(
                    exact_bearer(&v).is_some(),
                    v[..7].eq_ignore_ascii_case(b"bearer "),
                    "byte {byte:#04x} at {place}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Credentials::parse(&v);
        }

        #[test]
        fn the_fast_path_reads_what_the_general_path_reads(
            scheme in "(?i)bearer",
            gap in "[ \t]{1,3}",
            token in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(b' '), Just(b'\t'), 0x21u8..0x7f],
                0..60,
            ),
            tail in "[ \t]{0,2}",
        ) {
            let mut v = format!("{scheme}{gap}").into_bytes();
            v.extend_from_slice(&token);
            v.extend_from_slice(tail.as_bytes());
            if let Some(fast) = exact_bearer(&v) {
                let general = RawCredentials::parse_general(&v);
                prop_assert!(matches!(general, Ok(Some(RawCredentials::Bearer(t))) if t == fast));
            }
        }

        #[test]
        fn basic_round_trips(user in "[^:]{0,20}", password in ".{0,40}") {
            let v = basic(&format!("{user}:{password}"));
            let Ok(Some(Credentials::Basic(b))) = Credentials::parse(v.as_bytes()) else {
                panic!("{v}")
            };
            prop_assert_eq!(b.user(), user.as_str());
            prop_assert_eq!(b.password(), password.as_str());
        }
    }
}
