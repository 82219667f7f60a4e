//! A user's token expiry dates as an iCalendar feed (RFC 5545), as GitLab
//! offers `personal_access_tokens.ics`: one all-day event per live token on
//! the day it will expire at the latest, so that a calendar reminds its
//! owner before it does. The management API serves it
//! ([`Management::calendar_blocking`](crate::management::Management::calendar_blocking)).
//!
//! The day is the last one the token works on: that of the last second
//! before its latest possible deadline ([`TokenInfo::latest_possible`]: a
//! hard token's deadline, a sliding token's cap), so a token that dies at
//! midnight is on the day before. A sliding token with no cap, which its
//! uses can keep alive forever, has no event; nor have tokens that are
//! expired, disabled or used up (nothing to renew: they do not work now).
//! Days are UTC, as all-day events (`DTSTART;VALUE=DATE`, one day long, no
//! `DTEND`); the description gives the exact time. Each event's `UID` is the token's id, so that a calendar
//! that subscribed updates an event rather than adding one when a token is
//! rotated or its cap moves.
//!
//! The label is the token's owner's text: it is made printable (control
//! and invisible characters escaped, as every pat output does) and escaped
//! as RFC 5545 `TEXT`, and lines are folded at 75 octets, so that no label
//! can add a property or an event.

use crate::model::record::TokenInfo;
use crate::model::text::printable;
use crate::model::time::Timestamp;

/// The feed's `Content-Type`.
pub(crate) const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

/// The calendar of `user`'s `tokens` (the management API's listing) at
/// `now`.
pub(crate) fn calendar(user: &str, tokens: &[TokenInfo], now: Timestamp) -> String {
    let mut out = String::with_capacity(256 + 256 * tokens.len());
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//pat//personal access tokens//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(
        &mut out,
        &format!(
            "X-WR-CALNAME:{}",
            text(&format!("Token expiry dates of {user}"))
        ),
    );
    let stamp = date_time(now);
    let working =
        |t: &&TokenInfo| !t.is_expired(now) && t.disabled_by.is_none() && t.uses_left() != Some(0);
    for token in tokens.iter().filter(working) {
        let Some(ends) = token.latest_possible() else {
            continue;
        };
        let name = match token.label.is_empty() {
            true => format!("token {}", token.id),
            false => format!("token \u{201c}{}\u{201d}", token.label),
        };
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:pat-token-{}", token.id));
        line(&mut out, &format!("DTSTAMP:{stamp}"));
        // The last second it works: a deadline at midnight is the day
        // before's.
        let last = Timestamp::from_unix_secs(ends.as_unix_secs().saturating_sub(1)).unwrap_or(ends);
        line(&mut out, &format!("DTSTART;VALUE=DATE:{}", date(last)));
        line(
            &mut out,
            &format!("SUMMARY:{}", text(&format!("Your {name} expires"))),
        );
        line(
            &mut out,
            &format!(
                "DESCRIPTION:{}",
                text(&format!(
                    "The personal access token {} of {} expires at {ends}. Make a new one \
                     before then, or it stops working.",
                    token.id, token.user
                ))
            ),
        );
        line(&mut out, "TRANSP:TRANSPARENT");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

/// `2026-12-31T23:59:59Z` as `20261231T235959Z`.
fn date_time(at: Timestamp) -> String {
    at.to_string().replace(['-', ':'], "")
}

/// `2026-12-31T23:59:59Z` as `20261231`.
fn date(at: Timestamp) -> String {
    let mut all = date_time(at);
    all.truncate(8);
    all
}

/// `s` as an RFC 5545 `TEXT` value: printable, then `\`, `;`, `,` and
/// newlines escaped (`printable` leaves no newline, but escaping is the
/// rule whatever comes in).
fn text(s: &str) -> String {
    let shown = printable(s);
    let mut out = String::with_capacity(shown.len() + 8);
    for c in shown.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Appends `content` as one content line, folded at 75 octets (never
/// inside a character), ending in CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::expiry::Expiry;
    use crate::model::token::TokenId;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs).unwrap()
    }

    fn token(label: &str, expiry: Expiry) -> TokenInfo {
        let mut info = TokenInfo::new(TokenId::generate(), "alice", at(0), expiry);
        info.label = label.to_owned();
        info
    }

    #[test]
    fn one_all_day_event_per_token_that_will_expire() {
        let day = 86_400;
        let hard = token(
            "ci",
            Expiry::Hard {
                expires_at: at(20_000 * day + 3_600),
            },
        );
        // Dead at midnight: its last day is the one before.
        let midnight = token(
            "nightly",
            Expiry::Hard {
                expires_at: at(20_001 * day),
            },
        );
        let mut disabled = token(
            "paused",
            Expiry::Hard {
                expires_at: at(30_000 * day),
            },
        );
        disabled.disabled_by = Some(disabled.id);
        let mut used = token(
            "once",
            Expiry::Hard {
                expires_at: at(30_000 * day),
            },
        );
        used.max_uses = Some(1);
        used.uses = 1;
        let forever = token(
            "",
            Expiry::Sliding {
                expires_at: at(20_000 * day),
                window: std::time::Duration::from_secs(600),
                max_lifetime: None,
            },
        );
        let gone = token("old", Expiry::Hard { expires_at: at(10) });
        let all = [
            hard.clone(),
            forever,
            gone,
            midnight.clone(),
            disabled,
            used,
        ];
        let feed = calendar("alice", &all, at(100));
        assert!(
            feed.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
            "{feed}"
        );
        assert!(feed.ends_with("END:VCALENDAR\r\n"), "{feed}");
        assert_eq!(feed.matches("BEGIN:VEVENT").count(), 2, "{feed}");
        for shown in [&hard, &midnight] {
            assert!(
                feed.contains(&format!("UID:pat-token-{}\r\n", shown.id)),
                "{feed}"
            );
        }
        // Day 20,000 after the epoch is 2024-10-04: both end on it.
        assert_eq!(
            feed.matches("DTSTART;VALUE=DATE:20241004\r\n").count(),
            2,
            "{feed}"
        );
        assert!(!feed.contains("DTEND"), "{feed}");
        assert!(
            feed.contains("SUMMARY:Your token “ci” expires\r\n"),
            "{feed}"
        );
    }

    #[test]
    fn a_label_can_add_no_property_and_lines_stay_short() {
        let label = "x\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nSUMMARY:owned;a,b\\ \u{202e}".repeat(3);
        let info = token(
            &label,
            Expiry::Hard {
                expires_at: at(1_000_000),
            },
        );
        let feed = calendar("alice", &[info], at(0));
        // Content lines as a calendar reads them: unfolded, then split.
        let unfolded = feed.replace("\r\n ", "");
        let lines: Vec<&str> = unfolded.split("\r\n").collect();
        for bare in ["BEGIN:VEVENT", "END:VEVENT"] {
            assert_eq!(lines.iter().filter(|l| **l == bare).count(), 1, "{feed}");
        }
        assert!(
            !lines.iter().any(|l| l.starts_with("SUMMARY:owned")),
            "{feed}"
        );
        for line in feed.split("\r\n") {
            assert!(line.len() <= 75, "{line:?}");
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            assert!(!line.contains('\u{202e}'), "{line:?}");
        }
        assert!(unfolded.contains("owned\\;a\\,b"), "{unfolded}");
    }
}
