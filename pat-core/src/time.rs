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
    /// [`Timestamp::MAX`].
    pub fn now() -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Timestamp(secs.min(MAX_UNIX_SECS))
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

/// Parses a token lifetime such as `20s`, `10m`, `24h`, `7d` or `1h30m`.
///
/// The Cells form `<number><unit>` with units `s`, `m`, `h`, `d` is accepted,
/// and so is everything [`humantime::parse_duration`] reads (`1h 30m`,
/// `2weeks`). The result must be a positive whole number of seconds that fits
/// before the end of year 9999; anything else is an error that names the value.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(pat_core::parse_duration("24h")?, Duration::from_secs(86_400));
/// assert_eq!(pat_core::parse_duration("1h30m")?, Duration::from_secs(5_400));
/// assert!(pat_core::parse_duration("0s").is_err());
/// assert!(pat_core::parse_duration("20").is_err());
/// # Ok::<(), pat_core::ParseDurationError>(())
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason| ParseDurationError {
        input: input.to_owned(),
        reason,
    };
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(err("it is empty"));
    }
    if trimmed.starts_with('-') && trimmed[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(err("it is negative"));
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("it has no unit"));
    }
    let d = humantime::parse_duration(trimmed).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => err("it is too long"),
        humantime::DurationError::UnknownUnit { .. } => err("its unit is unknown"),
        _ => err("it is not a duration"),
    })?;
    if d.is_zero() {
        return Err(err("it is zero"));
    }
    if d.subsec_nanos() != 0 {
        return Err(err("it is not a whole number of seconds"));
    }
    if d.as_secs() > MAX_UNIX_SECS {
        return Err(err("it reaches past year 9999"));
    }
    Ok(d)
}

/// Formats a duration the way the CLI accepts it, e.g. `1h 30m`, `10m`, `2days`.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_units() {
        for (s, secs) in [("20s", 20), ("10m", 600), ("24h", 86_400), ("2d", 172_800)] {
            assert_eq!(parse_duration(s).unwrap().as_secs(), secs, "{s}");
        }
    }

    #[test]
    fn humantime_forms() {
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5_400);
        assert_eq!(parse_duration("1h 30m").unwrap().as_secs(), 5_400);
        assert_eq!(parse_duration("1w").unwrap().as_secs(), 604_800);
    }

    #[test]
    fn errors_name_the_value_and_the_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("   ", "empty"),
            ("0s", "zero"),
            ("0d", "zero"),
            ("-5m", "negative"),
            ("20", "no unit"),
            ("20x", "unit is unknown"),
            ("abc", "not a duration"),
            ("1500ms", "whole number of seconds"),
            ("99999999999999999999999s", "too long"),
            ("10000000y", "past year 9999"),
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
    }
}
