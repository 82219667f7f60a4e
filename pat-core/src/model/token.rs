//! The token format: generation, offline validation and the SHA-256 digest.
//!
//! A token reads `<prefix>_<body><checksum>`:
//! - the prefix (the store's: `pat` unless it was given another, see
//!   [`Prefix`]) and `_`, so people and secret scanners recognise it and
//!   tell whose it is;
//! - body: 32 characters drawn uniformly from `[A-Za-z0-9]` by the
//!   OS-seeded CSPRNG (about 190 bits), alphanumeric so a double-click selects
//!   the whole token;
//! - checksum: CRC32 of `<prefix>_<body>`, as 6 base62 digits, so a mistyped or
//!   truncated token is refused without touching the store.
//!
//! The store never sees a token, only its [`TokenDigest`].

use std::fmt;
use std::str::FromStr;

use rand::{Rng, TryRngCore as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::error::{ParseTokenError, ParseTokenIdError};
use crate::model::prefix::{MAX_PREFIX_LEN, MIN_PREFIX_LEN, Prefix};

/// The default prefix, before the `_` separator: a store's tokens carry it
/// unless the store was given another ([`Prefix`]).
pub const TOKEN_PREFIX: &str = "pat";

pub(crate) const BODY_LEN: usize = 32;
pub(crate) const CHECKSUM_LEN: usize = 6;
/// Length of a whole token of the default prefix, prefix included (a token
/// of prefix `p` has `p.len() + 1 + 38` characters).
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 1 + BODY_LEN + CHECKSUM_LEN;
/// What follows a token's head: the body and the checksum.
const TAIL_LEN: usize = BODY_LEN + CHECKSUM_LEN;

pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn checksum_digits(head_and_body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(head_and_body);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Whether every byte is an ASCII letter or digit: branchless arithmetic
/// LLVM vectorises, several times faster than `all(is_ascii_alphanumeric)`
/// (`cargo bench -p pat-core`, `token/validate_and_digest`; figures in
/// BENCHMARKS.md).
fn all_alphanumeric(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        let lower = b | 0x20;
        ok & ((lower.wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10))
    })
}

/// Checks the format and checksum of a presented token of any prefix,
/// without allocating.
fn validate(presented: &str) -> Result<(), ParseTokenError> {
    let bytes = presented.as_bytes();
    let head = any_head(bytes)?;
    check_length(bytes, head)?;
    check_alphabet_and_checksum(bytes, head)
}

/// The length of the head (a prefix of the format's shape and `_`) of a
/// value of any prefix.
fn any_head(bytes: &[u8]) -> Result<usize, ParseTokenError> {
    let n = bytes
        .iter()
        .take(MAX_PREFIX_LEN + 1)
        .position(|&b| !b.is_ascii_alphanumeric())
        .ok_or(ParseTokenError::Foreign)?;
    if n < MIN_PREFIX_LEN || bytes[n] != b'_' {
        return Err(ParseTokenError::Foreign);
    }
    Ok(n + 1)
}

/// The length after a head of `head` bytes: enough, with the prefix, to
/// tell a value meant as one of our tokens (whose digest a backend may
/// remember) from anything else.
#[inline]
fn check_length(bytes: &[u8], head: usize) -> Result<(), ParseTokenError> {
    let found = bytes.len() - head;
    if found != TAIL_LEN {
        return Err(ParseTokenError::Length {
            found,
            expected: TAIL_LEN,
        });
    }
    Ok(())
}

/// The alphabet and the checksum of a value [`check_length`] accepted. A
/// value that passes is ASCII.
fn check_alphabet_and_checksum(bytes: &[u8], head: usize) -> Result<(), ParseTokenError> {
    if !all_alphanumeric(&bytes[head..]) {
        return Err(ParseTokenError::Charset);
    }
    let (head_and_body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    // Fixed-width base62 spells each CRC32 one way, so comparing the digits
    // compares the values.
    if checksum != checksum_digits(head_and_body) {
        return Err(ParseTokenError::Checksum);
    }
    Ok(())
}

/// A presented value of a token's prefix and length, with its digest, its
/// alphabet and checksum not checked yet: the gate's request path, which
/// asks the backend's memory first and checks the rest only when that does
/// not know the digest.
///
/// Skipping those checks on a remembered digest changes no answer: only a
/// token of the right alphabet and checksum is ever issued, and the memory
/// asked first answers only for tokens the backend holds (see
/// [`Verifier::verify_cached`](crate::Verifier::verify_cached)), so a value
/// that fails them is never a hit (short of a SHA-256 collision) and goes on
/// to be refused as before, still without touching the store. What it saves is the alphabet pass, the CRC32 and its base62
/// digits on every cached request (BENCHMARKS.md, section 14).
#[derive(Clone, Copy)]
pub(crate) struct Presented<'a> {
    token: &'a [u8],
    head: usize,
    digest: TokenDigest,
}

impl<'a> Presented<'a> {
    /// Checks the length of `token`, whose first `head` bytes are one of
    /// the store's prefixes and `_` (see
    /// [`Prefixes`](crate::Prefixes)), and hashes it.
    #[inline]
    pub(crate) fn parse(token: &'a [u8], head: usize) -> Result<Presented<'a>, ParseTokenError> {
        check_length(token, head)?;
        Ok(Presented {
            token,
            head,
            digest: TokenDigest(Sha256::digest(token).into()),
        })
    }

    /// The digest of the presented value.
    pub(crate) fn digest(&self) -> &TokenDigest {
        &self.digest
    }

    /// Checks the alphabet and the checksum: a value that fails is
    /// mistyped, damaged or made up. One that passes is ASCII.
    pub(crate) fn check_rest(&self) -> Result<(), ParseTokenError> {
        check_alphabet_and_checksum(self.token, self.head)
    }

    /// The request path's order, for the gate and
    /// [`Store::authenticate`](crate::Store::authenticate) alike: what the
    /// backend remembers answers at once (`remembered`, which must answer
    /// only for tokens it holds: see
    /// [`Verifier::verify_cached`](crate::Verifier::verify_cached)); any
    /// other value must pass the rest of the checks before `read` may look
    /// it up. `Err` is a value that fails them (nothing was looked up).
    #[inline]
    pub(crate) fn verify<T>(
        &self,
        remembered: impl FnOnce(&TokenDigest) -> Option<T>,
        read: impl FnOnce(&TokenDigest) -> T,
    ) -> Result<T, ParseTokenError> {
        if let Some(answer) = remembered(&self.digest) {
            return Ok(answer);
        }
        self.check_rest()?;
        Ok(read(&self.digest))
    }
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value may be a live secret: only its digest is shown.
        f.debug_struct("Presented")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// The SHA-256 digest of a token: the only key the store knows it by.
///
/// A digest cannot be turned back into a token, so it is not a secret; its
/// `Debug` still shows only the first bytes, which is enough to tell two apart.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// Validates a presented token of any prefix (its shape, length,
    /// alphabet, checksum) and returns its digest. No allocation, no store
    /// access. Whether the token is a given store's, by its prefix, is
    /// [`Prefixes::digest`](crate::Prefixes::digest).
    ///
    /// ```
    /// use pat_core::{ParseTokenError, TokenDigest, TokenSecret};
    /// let secret = TokenSecret::generate();
    /// assert_eq!(TokenDigest::from_token(secret.expose_secret())?, secret.digest());
    /// assert_eq!(
    ///     TokenDigest::from_token("Bearer notours"),
    ///     Err(ParseTokenError::Foreign)
    /// );
    /// # Ok::<(), ParseTokenError>(())
    /// ```
    pub fn from_token(presented: &str) -> Result<TokenDigest, ParseTokenError> {
        validate(presented)?;
        Ok(TokenDigest::hash(presented))
    }

    fn hash(token: &str) -> TokenDigest {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }

    /// The digest's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Rebuilds a digest from its bytes, as read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> TokenDigest {
        TokenDigest(bytes)
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A plaintext token, as handed to its owner once at creation.
///
/// Its memory is zeroed on drop. `Debug` prints its prefix only
/// (`TokenSecret("pat_…")`), and
/// there is no `Display`: reading the token takes an explicit call to
/// [`expose_secret`](TokenSecret::expose_secret).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(Zeroizing<String>);

/// The operating system's generator (`getrandom`), for every secret and id
/// pat makes: nothing to seed, nothing in userspace to leak or fork, and a
/// draw per token is nothing beside the store write that follows. Panics,
/// as `rand::rng()` would, if the OS has no randomness to give.
pub(crate) fn os_rng() -> impl Rng {
    rand::rngs::OsRng.unwrap_err()
}

impl TokenSecret {
    /// Generates a fresh token of the default prefix `pat` from the
    /// operating system's CSPRNG; a store makes its tokens with its own
    /// ([`Prefixes::generate`](crate::Prefixes::generate)).
    pub fn generate() -> TokenSecret {
        TokenSecret::generate_with(Prefix::DEFAULT)
    }

    /// Generates a fresh token of `prefix` from the operating system's
    /// CSPRNG.
    pub fn generate_with(prefix: Prefix) -> TokenSecret {
        let mut text = Zeroizing::new(String::with_capacity(prefix.head_len() + TAIL_LEN));
        text.push_str(prefix.as_str());
        text.push('_');
        let mut rng = os_rng();
        for _ in 0..BODY_LEN {
            text.push(char::from(rng.sample(rand::distr::Alphanumeric)));
        }
        let checksum = checksum_digits(text.as_bytes());
        text.extend(checksum.iter().map(|&b| char::from(b)));
        TokenSecret(text)
    }

    /// Validates `presented`, of any prefix (see
    /// [`TokenDigest::from_token`]), and keeps a zeroizing copy.
    pub fn parse(presented: &str) -> Result<TokenSecret, ParseTokenError> {
        validate(presented)?;
        Ok(TokenSecret(Zeroizing::new(presented.to_owned())))
    }

    /// The token's prefix (no secret: it names the store that made it).
    pub fn prefix(&self) -> Prefix {
        // A secret is well formed, so its head is found and is a prefix.
        let head = any_head(self.0.as_bytes()).unwrap_or(1);
        Prefix::new(&self.0[..head - 1]).unwrap_or_default()
    }

    /// The plaintext token. Show it to its owner once; never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The digest the store knows this token by.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::hash(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The prefix is no secret; the rest is. A secret is well formed,
        // so its head is found.
        let head = any_head(self.0.as_bytes()).unwrap_or(0);
        write!(f, "TokenSecret(\"{}…\")", &self.0[..head])
    }
}

/// The public, non-secret name of a token: 16 hex digits, shown in listings
/// and used to show or revoke it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(u64);

impl TokenId {
    /// A random id from the operating system's CSPRNG, for a new token. A backend
    /// draws again on the (astronomically unlikely) collision with an id it
    /// holds.
    pub fn generate() -> TokenId {
        TokenId(os_rng().random())
    }

    /// The id as a number, as stored.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from its stored number.
    pub const fn from_u64(n: u64) -> TokenId {
        TokenId(n)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl FromStr for TokenId {
    type Err = ParseTokenIdError;

    fn from_str(s: &str) -> Result<TokenId, ParseTokenIdError> {
        let err = || ParseTokenIdError {
            input: s.to_owned(),
        };
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        u64::from_str_radix(s, 16).map(TokenId).map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let t = TokenSecret::generate();
        let s = t.expose_secret();
        assert_eq!(s.len(), TOKEN_LEN);
        assert!(s.starts_with("pat_"));
        assert!(s[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(TokenSecret::generate(), t);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = TokenSecret::generate();
        let body = &t.expose_secret()[4..];
        assert!(!format!("{t:?}").contains(body));
        assert!(!format!("{:?}", t.digest()).contains(body));
    }

    #[test]
    fn errors_are_specific_and_never_echo_the_token() {
        let t = TokenSecret::generate();
        let s = t.expose_secret();
        assert_eq!(
            TokenSecret::parse("Bearer x"),
            Err(ParseTokenError::Foreign)
        );
        assert_eq!(TokenSecret::parse(""), Err(ParseTokenError::Foreign));
        assert_eq!(
            TokenSecret::parse(&s[..TOKEN_LEN - 1]),
            Err(ParseTokenError::Length {
                found: 37,
                expected: 38
            })
        );
        let mut bad = s.to_owned();
        bad.replace_range(10..11, "-");
        assert_eq!(TokenSecret::parse(&bad), Err(ParseTokenError::Charset));
        let mut multibyte = s[..TOKEN_LEN - 2].to_owned();
        multibyte.push('é');
        assert_eq!(
            TokenSecret::parse(&multibyte),
            Err(ParseTokenError::Charset)
        );
        for e in [ParseTokenError::Charset, ParseTokenError::Checksum] {
            assert!(!e.to_string().contains(&s[4..]));
        }
    }

    #[test]
    fn token_id_round_trips_and_rejects_garbage() {
        let id = TokenId::from_u64(0x00ab_cdef_0123_4567);
        assert_eq!(id.to_string(), "00abcdef01234567");
        assert_eq!("00ABCDEF01234567".parse::<TokenId>().unwrap(), id);
        for bad in [
            "",
            "abc",
            "00abcdef0123456g",
            "+0abcdef01234567",
            "00abcdef012345678",
        ] {
            let e = bad.parse::<TokenId>().unwrap_err();
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
    }

    fn token() -> impl Strategy<Value = String> {
        any::<u64>().prop_map(|_| TokenSecret::generate().expose_secret().to_owned())
    }

    proptest! {
        #[test]
        fn any_generated_token_parses_back(s in token()) {
            let t = TokenSecret::parse(&s).unwrap();
            prop_assert_eq!(t.expose_secret(), s.as_str());
            prop_assert_eq!(TokenDigest::from_token(&s).unwrap(), t.digest());
        }

        #[test]
        fn any_single_character_change_is_refused(
            s in token(),
            pos in 0..TOKEN_LEN,
            c in proptest::char::any(),
        ) {
            let mut chars: Vec<char> = s.chars().collect();
            prop_assume!(chars[pos] != c);
            chars[pos] = c;
            let changed: String = chars.into_iter().collect();
            prop_assert!(TokenDigest::from_token(&changed).is_err(), "{changed}");
        }

        #[test]
        fn any_alphanumeric_change_is_caught_by_the_checksum(
            s in token(),
            pos in 4..TOKEN_LEN,
            c in proptest::char::range('0', 'z').prop_filter("alnum", char::is_ascii_alphanumeric),
        ) {
            let mut bytes = s.into_bytes();
            prop_assume!(bytes[pos] != c as u8);
            bytes[pos] = c as u8;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(TokenDigest::from_token(&changed), Err(ParseTokenError::Checksum));
        }

        #[test]
        fn truncation_and_extension_are_refused(s in token(), cut in 0..TOKEN_LEN, tail in "[A-Za-z0-9]{1,8}") {
            prop_assert!(TokenDigest::from_token(&s[..cut]).is_err());
            let longer = format!("{s}{tail}");
            prop_assert!(TokenDigest::from_token(&longer).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = TokenDigest::from_token(&s);
        }

        #[test]
        fn a_token_of_another_prefix_is_read_by_from_token_alone(prefix in "[a-z][a-z0-9]{1,7}") {
            let prefix = crate::Prefix::new(&prefix).unwrap();
            let token = TokenSecret::generate_with(prefix);
            let s = token.expose_secret();
            prop_assert_eq!(TokenDigest::from_token(s), Ok(token.digest()));
            if prefix != crate::Prefix::DEFAULT {
                prop_assert_eq!(crate::Prefixes::default().digest(s), Err(ParseTokenError::Foreign));
            }
        }

        #[test]
        fn presented_then_checksum_is_from_token(
            s in prop_oneof![
                token(),
                token().prop_map(|t| format!("{}0", &t[..TOKEN_LEN - 1])),
                token().prop_map(|t| format!("{}é{}", &t[..10], &t[12..])),
                any::<u64>().prop_map(|_| {
                    let other = crate::Prefix::new("Aa").unwrap();
                    TokenSecret::generate_with(other).expose_secret().to_owned()
                }),
                "[A-Za-z0-9]{2,4}_.*",
                ".*",
            ],
        ) {
            // `from_token` reads a token of any prefix; the store's check
            // only its own (`pat`): another is foreign to it.
            let split = crate::Prefixes::default().digest(&s);
            let expected = match s.starts_with("pat_") {
                true => TokenDigest::from_token(&s),
                false => Err(ParseTokenError::Foreign),
            };
            prop_assert_eq!(split, expected);
        }

        #[test]
        fn the_fast_charset_check_is_is_ascii_alphanumeric(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(all_alphanumeric(&bytes), bytes.iter().all(u8::is_ascii_alphanumeric));
        }
    }
}
