//! Wall-clock instants and durations with the bounds the store can represent.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ParseDurationError;

/// The last instant the store can represent: `9999-12-31T23:59:59Z`.
///
/// RFC 3339 has no room for five-digit years, so every expiry must fall on or
/// before this second.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// An instant, in whole seconds since the Unix epoch, between 1970 and the end
/// of year 9999.
///
/// Token lifetimes are counted in seconds: a finer clock would add nothing but
/// encoding size. `Display` prints RFC 3339 (`2026-11-23T05:47:09Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The earliest instant, `1970-01-01T00:00:00Z`.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);
    /// The latest instant, `9999-12-31T23:59:59Z`.
    pub const MAX: Timestamp = Timestamp(MAX_UNIX_SECS);

    /// The current system time, truncated to the second.
    ///
    /// A clock set before 1970 reads as the epoch; one set after 9999 as
    /// [`Timestamp::MAX`]. On Linux it is the kernel's coarse real-time
    /// clock (`CLOCK_REALTIME_COARSE`: the time of the last timer tick, a
    /// few milliseconds behind at most, read without the TSC and its
    /// conversion), since every request reads it and its answer is
    /// truncated to the second anyway: a token is accepted at most one tick
    /// past its expiry second. Elsewhere it is [`SystemTime::now`].
    #[inline]
    pub fn now() -> Timestamp {
        Timestamp(unix_secs_now().min(MAX_UNIX_SECS))
    }

    /// The instant `secs` seconds after the epoch, or `None` past year 9999.
    pub const fn from_unix_secs(secs: u64) -> Option<Timestamp> {
        if secs > MAX_UNIX_SECS {
            None
        } else {
            Some(Timestamp(secs))
        }
    }

    /// Seconds since the Unix epoch.
    pub const fn as_unix_secs(self) -> u64 {
        self.0
    }

    /// `self + d`, or `None` when the sum lies past year 9999.
    ///
    /// Sub-second parts of `d` are dropped.
    pub fn checked_add(self, d: Duration) -> Option<Timestamp> {
        self.0
            .checked_add(d.as_secs())
            .and_then(Timestamp::from_unix_secs)
    }

    /// `self + d`, clamped to [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        self.checked_add(d).unwrap_or(Timestamp::MAX)
    }

    /// This instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // In range by construction, so humantime never sees a year past 9999.
        fmt::Display::fmt(&humantime::format_rfc3339_seconds(self.to_system_time()), f)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// Parses a token lifetime: one or more `<digits><unit>` with unit `s`, `m`,
/// `h` or `d` (lowercase), each unit at most once and largest first, with
/// nothing else: `20s`, `10m`, `24h`, `7d`, `1h30m`, `1d12h`.
///
/// Nothing more is read into a value than the grammar says: `10M` (months,
/// to some parsers), `1w`, `2hours`, `1h 30m` and `1h1h` are errors. The
/// result must be positive and fit before the end of year 9999. Every error
/// names the value and says what is accepted.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(pat_core::parse_duration("24h")?, Duration::from_secs(86_400));
/// assert_eq!(pat_core::parse_duration("1h30m")?, Duration::from_secs(5_400));
/// assert!(pat_core::parse_duration("0s").is_err());
/// assert!(pat_core::parse_duration("20").is_err());
/// assert!(pat_core::parse_duration("10M").is_err());
/// # Ok::<(), pat_core::ParseDurationError>(())
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason| ParseDurationError {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(err("it is empty"));
    }
    if input.starts_with('-') {
        return Err(err("it is negative"));
    }
    if input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("it has no unit"));
    }
    let mut rest = input.as_bytes();
    let mut total: u64 = 0;
    // Units seen so far must come largest first, each once.
    let mut smallest_so_far = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(err(match rest[0] {
                b' ' | b'\t' => "it contains a space",
                b'.' | b',' => "it is not a whole number",
                _ => "a number must come before each unit",
            }));
        }
        let mut n: u64 = 0;
        for &d in &rest[..digits] {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d - b'0')))
                .ok_or_else(|| err("it is too long"))?;
        }
        rest = &rest[digits..];
        let Some(&unit) = rest.first() else {
            return Err(err("its last number has no unit"));
        };
        let secs = match unit {
            b's' => 1,
            b'm' => 60,
            b'h' => 3_600,
            b'd' => 86_400,
            b'S' | b'M' | b'H' | b'D' => return Err(err("units are lowercase")),
            b'.' | b',' => return Err(err("it is not a whole number")),
            b' ' | b'\t' => return Err(err("it contains a space")),
            _ => return Err(err("its unit is unknown")),
        };
        rest = &rest[1..];
        if rest.first().is_some_and(u8::is_ascii_alphabetic) {
            return Err(err("its unit is unknown"));
        }
        if secs >= smallest_so_far {
            return Err(err("each unit may appear once, largest first"));
        }
        smallest_so_far = secs;
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| err("it is too long"))?;
    }
    if total == 0 {
        return Err(err("it is zero"));
    }
    if total > MAX_UNIX_SECS {
        return Err(err("it reaches past year 9999"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way [`parse_duration`] reads it: `10m`, `1h30m`,
/// `7d`, `1d2h3m4s`; `0s` for zero. Sub-second parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        let n = secs / size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push(unit);
            secs %= size;
        }
    }
    out
}

/// Whole seconds since the epoch, from the coarse clock (see
/// [`Timestamp::now`]); 0 for a clock set before 1970.
// 64-bit only: a 32-bit `time_t` would wrap in 2038, where std uses the
// 64-bit call.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64"
))]
#[inline]
fn unix_secs_now() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_REALTIME_COARSE) {
        // Negative: a clock set before 1970; the portable path says what
        // that reads as.
        Ok(t) => u64::try_from(t.tv_sec()).unwrap_or_else(|_| system_secs_now()),
        // Only a kernel without the clock (before Linux 2.6.32) fails.
        Err(_) => system_secs_now(),
    }
}

#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    target_pointer_width = "64"
)))]
#[inline]
fn unix_secs_now() -> u64 {
    system_secs_now()
}

/// Whole seconds since the epoch from [`SystemTime::now`]; 0 before 1970.
#[cfg_attr(
    all(
        any(target_os = "linux", target_os = "android"),
        target_pointer_width = "64"
    ),
    cold
)]
fn system_secs_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_the_system_time_at_most_a_tick_behind() {
        for _ in 0..1_000 {
            let before = system_secs_now();
            let now = Timestamp::now().as_unix_secs();
            let after = system_secs_now();
            // The coarse clock lags by a tick (milliseconds): it may still
            // read the second before one the system clock just entered.
            assert!(
                before.saturating_sub(1) <= now && now <= after,
                "{before} {now} {after}"
            );
        }
    }

    #[test]
    fn cells_units() {
        for (s, secs) in [("20s", 20), ("10m", 600), ("24h", 86_400), ("2d", 172_800)] {
            assert_eq!(parse_duration(s).unwrap().as_secs(), secs, "{s}");
        }
    }

    #[test]
    fn several_units_largest_first() {
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(parse_duration("1d12h").unwrap().as_secs(), 129_600);
        assert_eq!(parse_duration("1d2h3m4s").unwrap().as_secs(), 93_784);
        assert_eq!(parse_duration("90m").unwrap().as_secs(), 5_400);
    }

    #[test]
    fn nothing_beyond_the_documented_grammar() {
        // Regression: humantime read `10M` as ten months and accepted `1w`,
        // `10min`, `2hours`, `1h 30m` and `1h1h`.
        for (input, reason) in [
            ("10M", "lowercase"),
            ("1H", "lowercase"),
            ("1w", "unit is unknown"),
            ("1y", "unit is unknown"),
            ("10min", "unit is unknown"),
            ("2hours", "unit is unknown"),
            ("1h 30m", "space"),
            (" 24h", "space"),
            ("24h ", "space"),
            ("1h1h", "once, largest first"),
            ("30m1h", "once, largest first"),
            ("1.5h", "whole number"),
            ("h", "number must come before"),
            ("1h30", "no unit"),
            ("+5m", "number must come before"),
        ] {
            let msg = parse_duration(input).unwrap_err().to_string();
            assert!(msg.contains(&format!("`{input}`")), "{msg}");
            assert!(msg.contains(reason), "{input:?}: {msg}");
        }
    }

    #[test]
    fn errors_name_the_value_and_the_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("   ", "space"),
            ("0s", "zero"),
            ("0d", "zero"),
            ("-5m", "negative"),
            ("20", "no unit"),
            ("20x", "unit is unknown"),
            ("abc", "number must come before"),
            ("1500ms", "unit is unknown"),
            ("99999999999999999999999s", "too long"),
            ("300000000000000d", "too long"),
            ("3000000d", "past year 9999"),
        ] {
            let e = parse_duration(input).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("`{input}`")), "{msg}");
            assert!(msg.contains(reason), "{input}: {msg}");
        }
    }

    #[test]
    fn timestamp_bounds() {
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::UNIX_EPOCH.to_string(), "1970-01-01T00:00:00Z");
        assert!(Timestamp::from_unix_secs(MAX_UNIX_SECS + 1).is_none());
        assert!(Timestamp::MAX.checked_add(Duration::from_secs(1)).is_none());
        assert_eq!(
            Timestamp::MAX.saturating_add(Duration::from_secs(u64::MAX)),
            Timestamp::MAX
        );
    }

    #[test]
    fn format_round_trips_through_parse() {
        for secs in [1, 59, 600, 5_400, 86_400, 90_061] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(604_800)), "7d");
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_errs_naming_it(s in "\\PC{0,12}|[0-9smhdSMHD .]{0,12}") {
            match parse_duration(&s) {
                Ok(d) => proptest::prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d),
                Err(e) => {
                    let quoted = format!("`{}`", crate::redacted(&s));
                    proptest::prop_assert!(e.to_string().contains(&quoted), "{}", e);
                }
            }
        }

        #[test]
        fn every_duration_round_trips(secs in 1u64..=MAX_UNIX_SECS) {
            let d = Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}
