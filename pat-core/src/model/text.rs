//! Text that reaches an operator's terminal: which characters would make one
//! name print as another, and how to show any string safely.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is invisible formatting: Unicode's format characters (general
/// category Cf: zero-width spaces and joiners, bidirectional marks, embeddings,
/// overrides and isolates, the byte-order mark, tag characters...), the line
/// and paragraph separators, and the blank "filler" letters. Such characters
/// let `ali\u{200b}ce` print as `alice`, or U+202E print a name backwards.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// `s` as it may be shown on a terminal: control characters (escape
/// sequences included) and invisible formatting characters are replaced by
/// `\u{…}` escapes, and a backslash by `\\` so an escape cannot be forged.
/// Borrowed when there is nothing to escape.
///
/// User names and labels are validated on creation, but a store written by
/// another tool, a damaged record or an error message quoting input can still
/// carry anything; every human output of `pat-cli` goes through this.
///
/// ```
/// assert_eq!(pat_core::printable("alice"), "alice");
/// assert_eq!(pat_core::printable("ali\u{200b}ce"), "ali\\u{200b}ce");
/// assert_eq!(pat_core::printable("\x1b[31mred"), "\\u{1b}[31mred");
/// ```
pub fn printable(s: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || is_invisible(c) || c == '\\';
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text `json` with every character a terminal may act on or hide
/// that JSON leaves raw (DEL, the C1 controls, bidirectional and
/// zero-width formatting characters: [`printable`] escapes the same ones)
/// written as `\uXXXX` escapes: the same JSON value, safe to print. Such
/// characters occur only inside strings, where the escape means the same
/// character; serde_json escapes the C0 controls itself. For `--json`
/// output, which people read on a terminal too. Borrowed when there is
/// nothing to escape.
///
/// ```
/// let json = serde_json::json!({"user": "a\u{9b}2Jb\u{202e}"}).to_string();
/// assert_eq!(pat_core::json_safe(&json), r#"{"user":"a\u009b2Jb\u202e"}"#);
/// ```
pub fn json_safe(json: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && c >= '\u{7f}') || is_invisible(c);
    if !json.chars().any(unsafe_char) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_char(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with anything shaped like a token cut to its prefix and `_` (`pat_…`,
/// `acme_…`), then [`printable`]: for messages that repeat what someone
/// typed, which may be a real token pasted in the wrong place. Shaped like a
/// token: `pat_` and 8 or more letters or digits (a `pat_` token cut short
/// still shows little), or any prefix of 2 to 16 letters and digits, `_`
/// and 20 or more (a token of another store's prefix, even cut short,
/// without cutting the names people give things, `backup_server_2024`).
///
/// ```
/// let pasted = "pat_0123456789abcdefghijklmnopqrstuvwxyz01";
/// assert_eq!(pat_core::redacted(&format!("id `{pasted}`")), "id `pat_…`");
/// assert_eq!(pat_core::redacted("pat_smith"), "pat_smith");
/// let acme = "acme_0123456789abcdefghijklmnopqrstuvwxyz01";
/// assert_eq!(pat_core::redacted(acme), "acme_…");
/// ```
pub fn redacted(s: &str) -> Cow<'_, str> {
    let spans = token_spans(s);
    if spans.is_empty() {
        return printable(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for tail in spans {
        out.push_str(&s[at..tail]);
        out.push('…');
        at = tail
            + s[tail..]
                .bytes()
                .take_while(u8::is_ascii_alphanumeric)
                .count();
    }
    out.push_str(&s[at..]);
    Cow::Owned(printable(&out).into_owned())
}

/// Whether `s` holds something shaped like a token (see [`redacted`]).
pub(crate) fn holds_token(s: &str) -> bool {
    !token_spans(s).is_empty()
}

/// Where the secret part (after the `_`) of each token in `s` starts, in
/// order.
fn token_spans(s: &str) -> Vec<usize> {
    const SHORTEST_PAT: usize = 8;
    const SHORTEST_OTHER: usize = 20;
    let bytes = s.as_bytes();
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(offset) = bytes[from..].iter().position(|&b| b == b'_') {
        let underscore = from + offset;
        let before = bytes[..underscore]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let tail = underscore + 1;
        let after = bytes[tail..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        // Any run before it that ends in a prefix counts (hiding too much
        // beats showing a secret): `pat` after other letters too.
        let shortest = match bytes[..underscore].ends_with(b"pat") {
            true => SHORTEST_PAT,
            false => SHORTEST_OTHER,
        };
        if before >= super::prefix::MIN_PREFIX_LEN && after >= shortest {
            spans.push(tail);
            from = tail + after;
        } else {
            from = tail;
        }
    }
    spans
}

/// A string someone typed, as an error message may repeat it: [`redacted`].
pub(crate) struct Echo<'a>(pub(crate) &'a str);

impl std::fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redacted(self.0))
    }
}

/// A path as it may be shown on a terminal: [`printable`] of its lossy
/// UTF-8 form.
pub(crate) struct Shown<'a>(pub(crate) &'a std::path::Path);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&printable(&self.0.to_string_lossy()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn look_alikes_and_escapes_are_shown_escaped() {
        for (raw, shown) in [
            ("ali\u{200b}ce", "ali\\u{200b}ce"),
            ("\u{202e}ecila", "\\u{202e}ecila"),
            ("a\u{2066}b", "a\\u{2066}b"),
            ("\x1b]0;pwned\x07", "\\u{1b}]0;pwned\\u{7}"),
            ("tab\there", "tab\\u{9}here"),
            ("back\\slash", "back\\\\slash"),
            ("\u{feff}bom", "\\u{feff}bom"),
            ("Zoë 東京", "Zoë 東京"),
        ] {
            assert_eq!(printable(raw), shown, "{raw:?}");
        }
    }

    #[test]
    fn tokens_are_cut_wherever_they_appear() {
        let t = "pat_AbCdEfGh0123456789abcdefghijklmnopqrst";
        assert_eq!(redacted(t), "pat_…");
        assert_eq!(redacted(&format!("a {t} b {t}")), "a pat_… b pat_…");
        assert_eq!(redacted(&format!("é{t}\x1b")), "épat_…\\u{1b}");
        assert_eq!(redacted("pat_"), "pat_");
        assert_eq!(redacted("pat_1234567"), "pat_1234567");
        // Another store's prefix.
        let acme = "acme_AbCdEfGh0123456789abcdefghijklmnopqrst";
        assert_eq!(redacted(&format!("«{acme}» and {t}")), "«acme_…» and pat_…");
        assert_eq!(redacted("backup_server_2024"), "backup_server_2024");
        assert_eq!(redacted("_"), "_");
        assert_eq!(redacted("a_"), "a_");
        assert!(holds_token(acme) && !holds_token("pat_smith"));
    }

    proptest! {
        #[test]
        fn redaction_never_panics_and_never_keeps_a_token(s in "\\PC{0,20}", body in "[A-Za-z0-9]{8,40}") {
            let with_token = format!("{s}pat_{body}{s}");
            let shown = redacted(&with_token);
            prop_assert!(!shown.contains(&body[..8]) || s.contains(&body[..8]));
        }

        #[test]
        fn a_token_of_any_prefix_is_cut(
            s in "\\PC{0,20}",
            prefix in "[A-Za-z0-9]{2,16}",
            body in "[A-Za-z0-9]{38}",
        ) {
            let text = format!("{s} {prefix}_{body} {s}");
            let shown = redacted(&text);
            prop_assert!(!shown.contains(&body[..20]) || s.contains(&body[..20]), "{}", shown);
        }

        #[test]
        fn output_has_no_control_or_invisible_character(s in "\\PC*|.*") {
            let shown = printable(&s);
            prop_assert!(!shown.chars().any(|c| c.is_control() || is_invisible(c)));
        }

        #[test]
        fn clean_text_is_borrowed(s in "[a-zA-Z0-9 ._@-]{0,40}") {
            prop_assert!(matches!(printable(&s), Cow::Borrowed(_)));
        }
    }
}
