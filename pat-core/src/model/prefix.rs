//! Token prefixes: each store's own, so that a secret scanner can tell
//! whose a leaked token is.
//!
//! A store has a current [`Prefix`] (`pat` unless it was created with
//! another), which every token made from then on carries, and remembers the
//! prefixes it had before, so that tokens made under them keep working.
//! [`Prefixes`] is that set as the request path reads it: lock-free, and
//! changed in place when an admin sets a new prefix, in this process or on
//! another replica.
//!
//! ```
//! use pat_core::{Prefix, Prefixes};
//!
//! let acme: Prefix = "acme".parse()?;
//! let prefixes = Prefixes::new(acme);
//! let secret = prefixes.generate();
//! assert!(secret.expose_secret().starts_with("acme_"));
//! assert!(prefixes.digest(secret.expose_secret()).is_ok());
//! // A token of another store's prefix is not this one's.
//! let other = Prefixes::default().generate();
//! assert!(prefixes.digest(other.expose_secret()).unwrap_err().is_foreign());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::error::ParseTokenError;
use crate::model::text::Echo;
use crate::model::token::{Presented, TokenDigest, TokenSecret};

/// The shortest prefix a store may give its tokens.
pub const MIN_PREFIX_LEN: usize = 2;
/// The longest prefix a store may give its tokens.
pub const MAX_PREFIX_LEN: usize = 16;
/// How many prefixes a store keeps, its current one included: a store that
/// has had this many refuses another (setting one it had before is always
/// allowed).
pub const MAX_PREFIXES: usize = 16;

/// A token prefix: 2 to 16 ASCII letters and digits, written before the
/// `_` that starts a token (`acme` in `acme_…`).
///
/// Inline and `Copy`: no allocation to hold or compare one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    bytes: [u8; MAX_PREFIX_LEN],
    len: u8,
}

impl Prefix {
    /// `pat`, the prefix of a store that was not given another.
    pub const DEFAULT: Prefix = Prefix {
        bytes: *b"pat\0\0\0\0\0\0\0\0\0\0\0\0\0",
        len: 3,
    };

    /// Checks `s` (2 to 16 ASCII letters and digits).
    pub fn new(s: &str) -> Result<Prefix, ParsePrefixError> {
        let problem = if s.len() < MIN_PREFIX_LEN {
            "it is shorter than 2 characters"
        } else if s.len() > MAX_PREFIX_LEN {
            "it is longer than 16 characters"
        } else if !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            "it has a character that is not an ASCII letter or digit"
        } else {
            let mut bytes = [0; MAX_PREFIX_LEN];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            return Ok(Prefix {
                bytes,
                len: s.len() as u8,
            });
        };
        Err(ParsePrefixError {
            input: s.to_owned(),
            problem,
        })
    }

    /// The prefix's letters and digits.
    pub fn as_str(&self) -> &str {
        // ASCII by construction, so this never fails.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The prefix's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The length of a token's head: the prefix and its `_`.
    pub(crate) fn head_len(&self) -> usize {
        usize::from(self.len) + 1
    }

    /// Whether `token` starts with this prefix and `_`.
    #[inline]
    pub(crate) fn heads(&self, token: &[u8]) -> bool {
        let n = usize::from(self.len);
        token.len() > n && token[n] == b'_' && token[..n] == self.bytes[..n]
    }

    const fn to_words(self) -> [u64; 2] {
        let mut words = [0u64; 2];
        let mut i = 0;
        while i < MAX_PREFIX_LEN {
            words[i / 8] |= (self.bytes[i] as u64) << (8 * (i % 8));
            i += 1;
        }
        words
    }

    fn from_words(words: [u64; 2], len: u8) -> Prefix {
        let mut bytes = [0; MAX_PREFIX_LEN];
        bytes[..8].copy_from_slice(&words[0].to_le_bytes());
        bytes[8..].copy_from_slice(&words[1].to_le_bytes());
        Prefix { bytes, len }
    }
}

impl Default for Prefix {
    fn default() -> Prefix {
        Prefix::DEFAULT
    }
}

impl FromStr for Prefix {
    type Err = ParsePrefixError;

    fn from_str(s: &str) -> Result<Prefix, ParsePrefixError> {
        Prefix::new(s)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({:?})", self.as_str())
    }
}

/// A value that is not a token prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a token prefix: {problem}; a prefix is 2 to 16 ASCII letters and digits, \
     such as `acme`",
    Echo(input)
)]
#[non_exhaustive]
pub struct ParsePrefixError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// A store cannot take another prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// The store has had [`MAX_PREFIXES`] prefixes already.
    #[error(
        "the store has had {max} prefixes already, the most it keeps; set one of them again \
         (`pat-cli prefix list` shows them)",
        max = MAX_PREFIXES
    )]
    TooMany,
    /// These prefixes are not a store's: they cannot change.
    #[error("this backend's token prefixes are fixed")]
    Fixed,
}

/// One remembered prefix: written once, before it is published, never
/// changed after; two words and a length so that it can be built in a
/// `const` and read without a lock, and the masks of the words' bytes that
/// hold it, so that a token's first 16 bytes are compared with it in two
/// words (BENCHMARKS.md, section 16).
struct Slot {
    words: [AtomicU64; 2],
    masks: [AtomicU64; 2],
    len: AtomicU8,
}

/// The masks of the first `len` bytes of two little-endian words.
const fn masks(len: u8) -> [u64; 2] {
    let bits = 8 * len as u32;
    let low = if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    let high = if bits >= 128 {
        u64::MAX
    } else if bits <= 64 {
        0
    } else {
        (1 << (bits - 64)) - 1
    };
    [low, high]
}

impl Slot {
    const fn empty() -> Slot {
        Slot {
            words: [AtomicU64::new(0), AtomicU64::new(0)],
            masks: [AtomicU64::new(0), AtomicU64::new(0)],
            len: AtomicU8::new(0),
        }
    }

    /// The length of `token`'s head if it starts with this prefix and
    /// `_`; `None` otherwise, or when the token is too short to be read as
    /// two words (no token of ours is).
    #[inline]
    fn head_of(&self, token: &[u8]) -> Option<usize> {
        let len = usize::from(self.len.load(Ordering::Relaxed));
        let (Some(first), Some(second), Some(&sep)) =
            (token.first_chunk::<8>(), token.get(8..16), token.get(len))
        else {
            return None;
        };
        let second: [u8; 8] = second.try_into().ok()?;
        let word = |i: usize, bytes: [u8; 8]| {
            u64::from_le_bytes(bytes) & self.masks[i].load(Ordering::Relaxed)
                == self.words[i].load(Ordering::Relaxed)
        };
        (word(0, *first) & word(1, second) & (sep == b'_')).then_some(len + 1)
    }

    fn load(&self) -> Prefix {
        Prefix::from_words(
            [
                self.words[0].load(Ordering::Relaxed),
                self.words[1].load(Ordering::Relaxed),
            ],
            self.len.load(Ordering::Relaxed),
        )
    }

    const fn of(prefix: Prefix) -> Slot {
        let words = prefix.to_words();
        let masks = masks(prefix.len);
        Slot {
            words: [AtomicU64::new(words[0]), AtomicU64::new(words[1])],
            masks: [AtomicU64::new(masks[0]), AtomicU64::new(masks[1])],
            len: AtomicU8::new(prefix.len),
        }
    }

    fn store(&self, prefix: Prefix) {
        let words = prefix.to_words();
        let masks = masks(prefix.len);
        for i in 0..2 {
            self.words[i].store(words[i], Ordering::Relaxed);
            self.masks[i].store(masks[i], Ordering::Relaxed);
        }
        self.len.store(prefix.len, Ordering::Relaxed);
    }
}

/// A store's prefixes as the request path reads them: the current one, in
/// which every new token is made, and those it had before, whose tokens
/// still work. A token of any other prefix is not this store's: in
/// optional mode the gate lets it pass to another auth layer.
///
/// Reading takes no lock: slots are written once before they are published
/// and never changed. [`remember`](Prefixes::remember) (the backends call it
/// after storing a new prefix, or when another replica did) takes a lock
/// only against another writer.
pub struct Prefixes {
    slots: [Slot; MAX_PREFIXES],
    /// How many slots are published.
    count: AtomicUsize,
    /// The slot of the current prefix.
    current: AtomicUsize,
    writer: Mutex<()>,
    fixed: bool,
}

static STANDARD: Prefixes = Prefixes::with(Prefix::DEFAULT, true);

impl Prefixes {
    const fn with(current: Prefix, fixed: bool) -> Prefixes {
        let mut slots = [const { Slot::empty() }; MAX_PREFIXES];
        slots[0] = Slot::of(current);
        Prefixes {
            slots,
            count: AtomicUsize::new(1),
            current: AtomicUsize::new(0),
            writer: Mutex::new(()),
            fixed,
        }
    }

    /// A set of one prefix, `current`.
    pub const fn new(current: Prefix) -> Prefixes {
        Prefixes::with(current, false)
    }

    /// The set a store holds, as
    /// [`Admin::token_prefixes`](crate::Admin::token_prefixes) lists it
    /// (the current one first); `pat` alone for an empty list.
    pub fn from_stored(all: &[Prefix]) -> Result<Prefixes, PrefixError> {
        let set = Prefixes::new(all.first().copied().unwrap_or_default());
        set.remember_all(all)?;
        Ok(set)
    }

    /// The set of a backend that keeps no prefix of its own: `pat` alone,
    /// unchangeable. [`Verifier::prefixes`](crate::Verifier::prefixes)
    /// answers it by default.
    pub fn standard() -> &'static Prefixes {
        &STANDARD
    }

    /// The prefix new tokens are made with.
    #[inline]
    pub fn current(&self) -> Prefix {
        self.slots[self.current.load(Ordering::Acquire)].load()
    }

    /// Every prefix: the current one first, then the others in the order
    /// the store took them.
    pub fn all(&self) -> Vec<Prefix> {
        let current = self.current.load(Ordering::Acquire);
        let count = self.count.load(Ordering::Acquire);
        let mut all = Vec::with_capacity(count);
        all.push(self.slots[current].load());
        for (i, slot) in self.slots[..count].iter().enumerate() {
            if i != current {
                all.push(slot.load());
            }
        }
        all
    }

    /// Whether `prefix` is one of the set's.
    pub fn contains(&self, prefix: Prefix) -> bool {
        let count = self.count.load(Ordering::Acquire);
        self.slots[..count].iter().any(|s| s.load() == prefix)
    }

    /// Remembers each of `all` (a store's prefixes as
    /// [`Admin::token_prefixes`](crate::Admin::token_prefixes) lists them,
    /// the current one first) and makes the first current: what a backend
    /// does when it opens a store or hears that another replica changed it.
    /// The current prefix changes once, to the first: never, meanwhile, to
    /// another of the list (a token made then would carry it).
    pub fn remember_all(&self, all: &[Prefix]) -> Result<(), PrefixError> {
        let order = all.iter().skip(1).chain(all.first()).copied();
        self.take(order, all.first().copied())
    }

    /// Makes `prefix` the current one, adding it to the set if it is new.
    /// For backends: call it once the prefix is stored (or another replica
    /// stored it), so that the request path accepts its tokens before any
    /// is made.
    pub fn remember(&self, prefix: Prefix) -> Result<(), PrefixError> {
        self.take(std::iter::once(prefix), Some(prefix))
    }

    /// Adds each of `prefixes` the set lacks, then makes `current` the
    /// current one, under the writer lock. Past [`MAX_PREFIXES`] nothing
    /// more is added and the current one stays (`TooMany`).
    fn take(
        &self,
        prefixes: impl Iterator<Item = Prefix>,
        current: Option<Prefix>,
    ) -> Result<(), PrefixError> {
        if self.fixed {
            return Err(PrefixError::Fixed);
        }
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut count = self.count.load(Ordering::Acquire);
        let find = |count: usize, p: Prefix| self.slots[..count].iter().position(|s| s.load() == p);
        for prefix in prefixes {
            if find(count, prefix).is_some() {
                continue;
            }
            if count == MAX_PREFIXES {
                return Err(PrefixError::TooMany);
            }
            self.slots[count].store(prefix);
            count += 1;
            self.count.store(count, Ordering::Release);
        }
        if let Some(slot) = current.and_then(|p| find(count, p)) {
            self.current.store(slot, Ordering::Release);
        }
        Ok(())
    }

    /// A new token in the current prefix.
    pub fn generate(&self) -> TokenSecret {
        TokenSecret::generate_with(self.current())
    }

    /// Checks `presented` (one of these prefixes, then the length,
    /// alphabet and checksum) and returns its digest. A value of no prefix
    /// of the set is [`ParseTokenError::Foreign`]: not this store's.
    pub fn digest(&self, presented: &str) -> Result<TokenDigest, ParseTokenError> {
        let presented = self.presented(presented.as_bytes())?;
        presented.check_rest()?;
        Ok(*presented.digest())
    }

    /// The request path's first check: one of these prefixes and the
    /// length, then the digest. The current prefix is tried first; the
    /// others only for a value it does not start.
    #[inline]
    pub(crate) fn presented<'a>(&self, token: &'a [u8]) -> Result<Presented<'a>, ParseTokenError> {
        let current = &self.slots[self.current.load(Ordering::Acquire)];
        match current.head_of(token) {
            Some(head) => Presented::parse(token, head),
            None => self.presented_former(token),
        }
    }

    /// A value the current prefix does not start (or too short to read
    /// as two words): the former prefixes, compared byte by byte.
    #[cold]
    fn presented_former<'a>(&self, token: &'a [u8]) -> Result<Presented<'a>, ParseTokenError> {
        let count = self.count.load(Ordering::Acquire);
        let former = self.slots[..count].iter().map(Slot::load);
        match former.into_iter().find(|p| p.heads(token)) {
            Some(prefix) => Presented::parse(token, prefix.head_len()),
            None => Err(ParseTokenError::Foreign),
        }
    }
}

/// Whether making `prefix` current changes a store whose prefixes are
/// `stored` (current first, as [`Prefixes::all`] lists them): `false` when
/// it is current already; refused when it is new and the store has had
/// [`MAX_PREFIXES`]. Every backend asks this, inside the transaction that
/// stores the change.
pub(crate) fn change(stored: &[Prefix], prefix: Prefix) -> Result<bool, PrefixError> {
    match stored.iter().position(|&p| p == prefix) {
        Some(0) => Ok(false),
        Some(_) => Ok(true),
        None if stored.len() >= MAX_PREFIXES => Err(PrefixError::TooMany),
        None => Ok(true),
    }
}

impl Default for Prefixes {
    /// `pat` alone, as a new store has it.
    fn default() -> Prefixes {
        Prefixes::new(Prefix::DEFAULT)
    }
}

impl fmt::Debug for Prefixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prefixes")
            .field("current", &self.current())
            .field("all", &self.all())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn a_prefix_is_two_to_sixteen_letters_and_digits() {
        for good in ["ab", "acme", "Acme2", "abcdefghijklmnop"] {
            assert_eq!(Prefix::new(good).unwrap().as_str(), good);
        }
        for (bad, problem) in [
            ("", "shorter"),
            ("a", "shorter"),
            ("abcdefghijklmnopq", "longer"),
            ("ac_me", "letter or digit"),
            ("acmé", "letter or digit"),
            ("a\x1b[2J", "letter or digit"),
        ] {
            let e = Prefix::new(bad).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains(problem), "{bad:?}: {shown}");
            assert!(
                shown.contains("2 to 16 ASCII letters and digits"),
                "{shown}"
            );
            assert!(!shown.contains('\x1b'), "{shown}");
        }
        assert_eq!(Prefix::DEFAULT, p("pat"));
        assert_eq!(format!("{:?}", p("acme")), "Prefix(\"acme\")");
    }

    #[test]
    fn the_current_prefix_makes_tokens_and_every_remembered_one_is_taken() {
        let set = Prefixes::new(p("acme"));
        let first = set.generate();
        assert!(first.expose_secret().starts_with("acme_"));
        assert_eq!(first.prefix(), p("acme"));
        assert_eq!(format!("{first:?}"), "TokenSecret(\"acme_…\")");
        set.remember(p("beta")).unwrap();
        let second = set.generate();
        assert!(second.expose_secret().starts_with("beta_"));
        assert_eq!(set.all(), [p("beta"), p("acme")]);
        for t in [&first, &second] {
            assert_eq!(set.digest(t.expose_secret()), Ok(t.digest()));
        }
        // Another store's token, a truncated one of ours, a damaged one.
        let other = TokenSecret::generate_with(p("other"));
        assert_eq!(
            set.digest(other.expose_secret()),
            Err(ParseTokenError::Foreign)
        );
        assert_eq!(
            set.digest(&first.expose_secret()[..30]),
            Err(ParseTokenError::Length {
                found: 25,
                expected: 38
            })
        );
        let mut typo = second.expose_secret().to_owned();
        let last = typo.pop().unwrap();
        typo.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(set.digest(&typo), Err(ParseTokenError::Checksum));
        // A prefix that another one starts is not mistaken for it.
        let long = Prefixes::new(p("acmex"));
        assert_eq!(
            long.digest(first.expose_secret()),
            Err(ParseTokenError::Foreign)
        );
        // Back to a former one: no new slot.
        set.remember(p("acme")).unwrap();
        assert_eq!(set.all(), [p("acme"), p("beta")]);
    }

    #[test]
    fn a_set_holds_at_most_max_prefixes_and_the_standard_one_is_fixed() {
        let set = Prefixes::default();
        for i in 1..MAX_PREFIXES {
            set.remember(p(&format!("p{i}"))).unwrap();
        }
        assert_eq!(set.remember(p("more")), Err(PrefixError::TooMany));
        set.remember(Prefix::DEFAULT).unwrap();
        assert_eq!(set.current(), Prefix::DEFAULT);
        assert_eq!(set.all().len(), MAX_PREFIXES);
        assert_eq!(
            Prefixes::standard().remember(p("acme")),
            Err(PrefixError::Fixed)
        );
        assert_eq!(Prefixes::standard().all(), [Prefix::DEFAULT]);
        let stored = [p("beta"), p("pat"), p("acme")];
        assert_eq!(Prefixes::from_stored(&stored).unwrap().all(), stored);
        assert_eq!(change(&stored, p("beta")), Ok(false));
        assert_eq!(change(&stored, p("acme")), Ok(true));
        assert_eq!(change(&stored, p("new")), Ok(true));
        let full: Vec<Prefix> = (0..MAX_PREFIXES).map(|i| p(&format!("p{i}"))).collect();
        assert_eq!(change(&full, p("new")), Err(PrefixError::TooMany));
        assert_eq!(change(&full, p("p3")), Ok(true));
    }

    #[test]
    fn readers_see_a_remembered_prefix_whole() {
        let set = std::sync::Arc::new(Prefixes::new(p("aaaaaaaaaaaaaaaa")));
        let writer = {
            let set = set.clone();
            std::thread::spawn(move || {
                for i in 0..MAX_PREFIXES - 1 {
                    let c = char::from(b'b' + i as u8);
                    set.remember(p(&c.to_string().repeat(16))).unwrap();
                }
            })
        };
        while !writer.is_finished() {
            let current = set.current();
            let s = current.as_str();
            assert_eq!(s.len(), 16, "{s:?}");
            assert!(s.bytes().all(|b| b == s.as_bytes()[0]), "torn: {s:?}");
        }
        writer.join().unwrap();
        assert_eq!(set.all().len(), MAX_PREFIXES);
    }

    proptest::proptest! {
        /// The request path's two-word compare agrees with comparing the
        /// prefix byte by byte, for any prefix and any bytes: a token of
        /// the prefix, one changed at any place, cut anywhere, or noise.
        #[test]
        fn the_word_compare_is_the_byte_compare(
            prefix in "[A-Za-z0-9]{2,16}",
            other in "[A-Za-z0-9]{2,16}",
            cut in 0usize..60,
            at in 0usize..20,
            byte in proptest::prelude::any::<u8>(),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60),
        ) {
            let set = Prefixes::new(p(&prefix));
            set.remember(p(&other)).unwrap();
            set.remember(p(&prefix)).unwrap();
            let token = TokenSecret::generate_with(p(&prefix)).expose_secret().as_bytes().to_vec();
            let mut changed = token.clone();
            if at < changed.len() {
                changed[at] = byte;
            }
            let cut = token[..cut.min(token.len())].to_vec();
            for bytes in [token, changed, cut, noise] {
                let reference = match set.all().into_iter().find(|q| q.heads(&bytes)) {
                    Some(q) => Presented::parse(&bytes, q.head_len()).map(|p| *p.digest()),
                    None => Err(ParseTokenError::Foreign),
                };
                let fast = set.presented(&bytes).map(|p| *p.digest());
                proptest::prop_assert_eq!(fast, reference, "{:?}", bytes);
            }
        }
    }

    /// Hearing a store's list again (a replica's notification) never
    /// makes a former prefix current, not even for a moment: a token made
    /// then would carry it.
    #[test]
    fn remembering_a_list_moves_the_current_prefix_once() {
        let set = std::sync::Arc::new(Prefixes::new(p("old")));
        set.remember(p("acme")).unwrap();
        let list = [p("acme"), p("old"), p("beta")];
        let hearing = {
            let set = set.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    set.remember_all(&list).unwrap();
                }
            })
        };
        while !hearing.is_finished() {
            assert_eq!(set.current(), p("acme"));
        }
        hearing.join().unwrap();
        assert_eq!(set.all(), [p("acme"), p("old"), p("beta")]);
    }

    #[test]
    fn masks_cover_the_prefix_bytes() {
        assert_eq!(masks(2), [0xffff, 0]);
        assert_eq!(masks(8), [u64::MAX, 0]);
        assert_eq!(masks(9), [u64::MAX, 0xff]);
        assert_eq!(masks(16), [u64::MAX, u64::MAX]);
    }
}
