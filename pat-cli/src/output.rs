//! Human and JSON renderings, and error reporting.

use std::error::Error;
use std::fmt::Write as _;
use std::io::{self, Write};

use pat_core::{
    AuditEntry, CreatedToken, Expiry, Policy, Timestamp, TokenInfo, format_duration, printable,
    redacted,
};
use serde_json::{Value, json};

/// Prints an error and its causes on one line of stderr, with control and
/// invisible characters escaped and anything shaped like a token cut.
pub(crate) fn report(e: &dyn Error) {
    eprintln!("error: {}", redacted(&chain(e)));
}

/// An error and its causes, joined with `: `.
pub(crate) fn chain(e: &dyn Error) -> String {
    pat_core::error_chain(e)
}

/// The JSON object of a token, without its secret.
pub(crate) fn info_json(info: &TokenInfo) -> Value {
    let mut v = base_json(info);
    v["last_used_at"] = json!(info.last_used_at.map(|t| t.to_string()));
    v
}

fn base_json(info: &TokenInfo) -> Value {
    json!({
        "id": info.id.to_string(),
        "user": info.user,
        "label": info.label,
        "expires_at": info.expiry.expires_at().to_string(),
        "auto_refresh_seconds": info.expiry.window().map(|d| d.as_secs()),
        "max_lifetime_seconds": info.expiry.max_lifetime().map(|d| d.as_secs()),
        "scopes": info.scopes.entries().map(|s| s.to_string()).collect::<Vec<_>>(),
        "created_at": info.created_at.to_string(),
        "created_by": info.created_by,
        "rotated_at": info.rotated_at.map(|t| t.to_string()),
        "latest_expires_at": info.latest_possible().map(|t| t.to_string()),
        "parent": info.parent.map(|p| p.to_string()),
        "previous_secret_until": info
            .previous_secret_until(Timestamp::now())
            .map(|t| t.to_string()),
        "disabled": info.is_disabled(),
        "disabled_by": info.disabled_by.map(|t| t.to_string()),
        "meta": info.meta.to_json(),
        "allow_from": info.allow_from.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "rate": info.rate.map(|r| r.to_string()),
        "max_uses": info.max_uses,
        "uses": info.uses,
        "last_addresses": info.last_addresses.to_json(),
    })
}

pub(crate) fn created_json(created: &CreatedToken) -> Value {
    let mut v = base_json(&created.info);
    v["token"] = json!(created.secret.expose_secret());
    v
}

/// Prints JSON `v` and a line end, with what a terminal could act on
/// escaped ([`pat_core::json_safe`]): every `--json` output goes through
/// this or [`SafeJson`].
pub(crate) fn print_json(v: &impl std::fmt::Display) {
    println!("{}", pat_core::json_safe(&v.to_string()));
}

/// A writer of JSON text that escapes, on the way, what a terminal could
/// act on ([`pat_core::json_safe`]), whatever the writes' boundaries.
pub(crate) struct SafeJson<W: Write> {
    inner: W,
    /// The first bytes of a character the last write cut.
    partial: Vec<u8>,
}

impl<W: Write> SafeJson<W> {
    pub(crate) fn new(inner: W) -> SafeJson<W> {
        SafeJson {
            inner,
            partial: Vec::new(),
        }
    }
}

impl<W: Write> Write for SafeJson<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let whole = match std::str::from_utf8(&self.partial) {
            Ok(s) => s.len(),
            // Cut inside a character: the rest comes with the next write.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let text = std::str::from_utf8(&self.partial[..whole])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.inner.write_all(pat_core::json_safe(text).as_bytes())?;
        self.partial.drain(..whole);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the JSON array of `tokens` (the same bytes as serialising the
/// whole array at once) one object at a time, so that listing a million
/// tokens holds one object in memory rather than a tree of all of them.
pub(crate) fn write_list_json(
    out: &mut impl Write,
    tokens: &[TokenInfo],
    policy: &Policy,
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, info) in tokens.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let mut v = info_json(info);
        v["within_policy"] = json!(policy.allows(info));
        serde_json::to_writer(&mut *out, &v)?;
    }
    out.write_all(b"]\n")
}

/// "expires ..." in words, for create and show.
fn expiry_sentence(info: &TokenInfo) -> String {
    match info.expiry {
        Expiry::Hard { expires_at } => format!("Expires at {expires_at} (hard limit)."),
        Expiry::Sliding {
            window, expires_at, ..
        } => {
            let mut s = format!(
                "Expires at {expires_at} unless it is used before: each use extends it to {} after the use",
                format_duration(window)
            );
            if let Some(end) = info.latest_possible() {
                let _ = write!(s, ", never past {end}");
            }
            s.push('.');
            s
        }
        _ => format!("Expires at {}.", info.expiry.expires_at()),
    }
}

fn scopes_sentence(info: &TokenInfo) -> String {
    if info.scopes.is_unrestricted() {
        format!(
            "Scopes: none; the token grants what {}'s login grants.",
            printable(&info.user)
        )
    } else {
        format!("Scopes: {}.", info.scopes)
    }
}

pub(crate) fn created_human(created: &CreatedToken) -> String {
    let info = &created.info;
    format!(
        "{token}\n\n\
         Token {id} for user {user}, label \"{label}\".\n\
         {expiry}\n\
         {scopes}\n\
         This token is shown only once: copy it now, it cannot be displayed again.\n",
        token = created.secret.expose_secret(),
        id = info.id,
        user = printable(&info.user),
        label = printable(&info.label),
        expiry = expiry_sentence(info),
        scopes = scopes_sentence(info),
    )
}

/// A rotation's answer: like creation's, and when the old secret stops.
pub(crate) fn rotated_human(
    created: &CreatedToken,
    retires_at: Timestamp,
    now: Timestamp,
) -> String {
    let mut out = created_human(created);
    if retires_at <= now {
        out.push_str("The previous secret no longer works.\n");
    } else {
        let _ = writeln!(out, "The previous secret keeps working until {retires_at}.");
    }
    out
}

pub(crate) fn show_human(info: &TokenInfo, now: Timestamp) -> String {
    let status = match info.disabled_by {
        _ if info.is_expired(now) => "expired".to_owned(),
        Some(by) if by == info.id => "disabled".to_owned(),
        Some(by) => format!("disabled with token {by}"),
        None => "valid".to_owned(),
    };
    let mut rotated = info
        .rotated_at
        .map_or_else(String::new, |t| format!("rotated:    {t}\n"));
    if let Some(until) = info.previous_secret_until(now) {
        let _ = writeln!(rotated, "old secret: still works until {until} (its grace)");
    }
    if let Some(parent) = info.parent {
        let _ = writeln!(rotated, "made with:  token {parent}");
    }
    if !info.meta.is_empty() {
        let _ = writeln!(rotated, "metadata:   {}", info.meta);
    }
    if !info.allow_from.is_empty() {
        let _ = writeln!(rotated, "from:       {}", networks(&info.allow_from));
    }
    if let Some(rate) = info.rate {
        let _ = writeln!(rotated, "rate:       at most {rate}");
    }
    if let Some(max) = info.max_uses {
        let _ = writeln!(rotated, "uses:       {} of {max}", info.uses);
    }
    let mut used_from = String::new();
    for (i, seen) in info.last_addresses.iter().enumerate() {
        let head = if i == 0 {
            "last from:  "
        } else {
            "            "
        };
        let _ = writeln!(used_from, "{head}{seen}");
    }
    format!(
        "id:         {}\nuser:       {}\nlabel:      {}\nstatus:     {status}\n\
         expiry:     {}\ncreated:    {} by {}\n{rotated}last used:  {}\n{used_from}{}\n",
        info.id,
        printable(&info.user),
        printable(&info.label),
        expiry_sentence(info),
        info.created_at,
        printable(&info.created_by),
        info.last_used_at
            .map_or_else(|| "never".to_owned(), |t| t.to_string()),
        scopes_sentence(info),
    )
}

fn model(expiry: &Expiry) -> String {
    match (expiry.window(), expiry.max_lifetime()) {
        (None, _) => "hard".to_owned(),
        (Some(w), None) => format!("auto {}", format_duration(w)),
        (Some(w), Some(cap)) => {
            format!("auto {} (max {})", format_duration(w), format_duration(cap))
        }
    }
}

const LIST_HEADER: [&str; 8] = [
    "ID",
    "USER",
    "LABEL",
    "EXPIRY",
    "EXPIRES",
    "LAST USED",
    "SCOPES",
    "PARENT",
];

/// `pat-cli audit --json`: one array, an object per entry.
pub(crate) fn write_audit_json(out: &mut impl Write, entries: &[AuditEntry]) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let v = json!({
            "at": e.at.to_string(),
            "action": e.action.as_str(),
            "token_id": e.token_id.map(|id| id.to_string()),
            "user": e.user,
            "actor": e.actor,
            "outcome": e.outcome,
        });
        serde_json::to_writer(&mut *out, &v)?;
    }
    out.write_all(b"]\n")
}

/// `pat-cli audit`: a table, names escaped for the terminal.
pub(crate) fn write_audit_human(out: &mut impl Write, entries: &[AuditEntry]) -> io::Result<()> {
    if entries.is_empty() {
        return out.write_all(b"no entries\n");
    }
    let header = ["AT", "ACTION", "TOKEN", "USER", "ACTOR", "OUTCOME"];
    write_table(out, header, entries, |e| {
        [
            e.at.to_string(),
            e.action.as_str().to_owned(),
            e.token_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            if e.user.is_empty() {
                "-".to_owned()
            } else {
                printable(&e.user).into_owned()
            },
            printable(&e.actor).into_owned(),
            printable(&e.outcome).into_owned(),
        ]
    })
}

/// `pat-cli events --json`: one array of the bodies webhooks get.
pub(crate) fn write_events_json(
    out: &mut impl Write,
    events: &[pat_core::Event],
) -> io::Result<()> {
    out.write_all(b"[")?;
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(e.to_json().as_bytes())?;
    }
    out.write_all(b"]\n")
}

/// `pat-cli events`: a table, names escaped for the terminal.
pub(crate) fn write_events_human(
    out: &mut impl Write,
    events: &[pat_core::Event],
) -> io::Result<()> {
    if events.is_empty() {
        return out.write_all(b"no events\n");
    }
    let header = ["EVENT", "AT", "TYPE", "TOKEN", "USER", "ACTOR", "CAUSE"];
    write_table(out, header, events, |e| {
        [
            e.id(),
            e.at.to_string(),
            e.kind.as_str().to_owned(),
            e.token_id.to_string(),
            printable(&e.user).into_owned(),
            printable(&e.actor).into_owned(),
            e.cause.map_or("-", |c| c.as_str()).to_owned(),
        ]
    })
}

/// The failed events of every webhook, as (webhook, event) rows.
fn failed_rows(all: &[(String, pat_core::Delivery)]) -> Vec<(&str, &pat_core::FailedEvent)> {
    all.iter()
        .flat_map(|(name, d)| d.failed.iter().map(move |f| (name.as_str(), f)))
        .collect()
}

/// `pat-cli events --failed --json`.
pub(crate) fn write_failed_json(
    out: &mut impl Write,
    all: &[(String, pat_core::Delivery)],
) -> io::Result<()> {
    let rows: Vec<Value> = failed_rows(all)
        .into_iter()
        .map(|(name, f)| {
            let event: Value = serde_json::from_str(&f.body).unwrap_or(Value::Null);
            json!({
                "webhook": name,
                "event": event,
                "attempts": f.attempts,
                "failed_at": f.failed_at.to_string(),
                "error": f.error,
                "resend": f.resend,
            })
        })
        .collect();
    serde_json::to_writer(&mut *out, &rows)?;
    out.write_all(b"\n")
}

/// `pat-cli events --failed`: a table, names escaped for the terminal.
pub(crate) fn write_failed_human(
    out: &mut impl Write,
    all: &[(String, pat_core::Delivery)],
) -> io::Result<()> {
    let rows = failed_rows(all);
    if rows.is_empty() {
        return out.write_all(b"no failed events\n");
    }
    let header = ["WEBHOOK", "EVENT", "TYPE", "ATTEMPTS", "FAILED", "ERROR"];
    write_table(out, header, &rows, |(name, f)| {
        let event: Value = serde_json::from_str(&f.body).unwrap_or(Value::Null);
        let field =
            |k: &str| printable(event.get(k).and_then(Value::as_str).unwrap_or("?")).into_owned();
        [
            printable(name).into_owned(),
            field("id"),
            field("type"),
            f.attempts.to_string(),
            f.failed_at.to_string(),
            if f.resend {
                format!("{} (to be sent again)", printable(&f.error))
            } else {
                printable(&f.error).into_owned()
            },
        ]
    })
}

/// Writes an aligned table: the column widths from a first pass over
/// `items`, then the header and each row, built again and dropped in turn,
/// so a table of a million rows is never held in memory.
fn write_table<const N: usize, T>(
    out: &mut impl Write,
    header: [&str; N],
    items: &[T],
    row: impl Fn(&T) -> [String; N],
) -> io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for item in items {
        for (w, cell) in widths.iter_mut().zip(row(item)) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    let mut write_line = |out: &mut dyn Write, cells: [&str; N]| {
        line.clear();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.write_all(line.trim_end().as_bytes())?;
        out.write_all(b"\n")
    };
    write_line(out, header)?;
    for item in items {
        write_line(out, row(item).each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// `pat-cli policy --json`.
pub(crate) fn policy_json(policy: &Policy) -> Value {
    json!({
        "max_lifetime_seconds": policy.max_lifetime.map(|d| d.as_secs()),
        "max_tokens_per_user": policy.max_tokens_per_user,
        "max_grace_seconds": policy
            .max_grace
            .unwrap_or(pat_core::authority::DEFAULT_MAX_GRACE)
            .as_secs(),
        "on_reuse": policy.on_reuse.as_str(),
    })
}

/// `pat-cli prefix --json`: the current prefix and the former ones.
pub(crate) fn prefixes_json(all: &[pat_core::Prefix]) -> Value {
    json!({
        "current": all.first().map(|p| p.as_str()),
        "former": all.iter().skip(1).map(|p| p.as_str()).collect::<Vec<_>>(),
    })
}

/// `scopes list`: a table of the catalog, descriptions made printable.
pub(crate) fn catalog_human(catalog: &pat_core::Catalog) -> String {
    if catalog.is_empty() {
        return "no permissions defined (add one with `pat-cli scopes define NAME`)\n".to_owned();
    }
    let defs: Vec<&pat_core::PermissionDef> = catalog.iter().collect();
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_table(
        &mut out,
        ["PERMISSION", "IMPLIES", "DESCRIPTION"],
        &defs,
        |d| {
            let implies: Vec<&str> = d.implies.iter().map(|n| n.as_str()).collect();
            [
                d.name.to_string(),
                if implies.is_empty() {
                    "-".to_owned()
                } else {
                    implies.join(",")
                },
                printable(&d.description).into_owned(),
            ]
        },
    );
    String::from_utf8_lossy(&out).into_owned()
}

/// What `scopes remove` did.
pub(crate) fn removal_human(
    name: &pat_core::Permission,
    removal: &pat_core::PermissionRemoval,
) -> String {
    let tokens = |n: usize| format!("{n} token{}", if n == 1 { "" } else { "s" });
    let mut out = format!("removed `{name}`");
    if removal.narrowed > 0 {
        out.push_str(&format!("; {} lost it", tokens(removal.narrowed)));
    }
    if removal.revoked > 0 {
        out.push_str(&format!(
            "; {} revoked (no scope left, or made with one that had none)",
            tokens(removal.revoked)
        ));
    }
    out
}

/// A token's networks, separated by commas.
fn networks(all: &[pat_core::Cidr]) -> String {
    let mut out = String::new();
    for (i, n) in all.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{n}");
    }
    out
}

/// The cells of one row of `token list`.
fn list_row(t: &TokenInfo, now: Timestamp, policy: &Policy) -> [String; 8] {
    let mut model = model(&t.expiry);
    if !policy.allows(t) {
        model.push_str(", over policy");
    }
    if let Some(until) = t.previous_secret_until(now) {
        let _ = write!(model, ", old secret until {until}");
    }
    if t.is_disabled() {
        model.push_str(", disabled");
    }
    if !t.allow_from.is_empty() {
        let _ = write!(model, ", from {}", networks(&t.allow_from));
    }
    if let Some(rate) = t.rate {
        let _ = write!(model, ", at most {rate}");
    }
    if let Some(max) = t.max_uses {
        let _ = write!(model, ", {} of {max} uses", t.uses);
    }
    let mut expires = t.expiry.expires_at().to_string();
    if t.is_expired(now) {
        expires.push_str(" (expired)");
    }
    [
        t.id.to_string(),
        printable(&t.user).into_owned(),
        printable(&t.label).into_owned(),
        model,
        expires,
        t.last_used_at
            .map_or_else(|| "never".to_owned(), |t| t.to_string()),
        if t.scopes.is_unrestricted() {
            "-".to_owned()
        } else {
            t.scopes.to_string()
        },
        t.parent.map_or_else(|| "-".to_owned(), |p| p.to_string()),
    ]
}

/// Writes the `token list` table (see [`write_table`]).
pub(crate) fn write_list_human(
    out: &mut impl Write,
    tokens: &[TokenInfo],
    now: Timestamp,
    policy: &Policy,
) -> io::Result<()> {
    if tokens.is_empty() {
        return out.write_all(b"no tokens\n");
    }
    write_table(out, LIST_HEADER, tokens, |t| list_row(t, now, policy))
}

/// [`write_list_human`] into a string.
#[cfg(test)]
pub(crate) fn list_human(tokens: &[TokenInfo], now: Timestamp) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_list_human(&mut out, tokens, now, &Policy::NONE);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pat_core::{Expiry, Timestamp, TokenId, TokenInfo};

    use super::*;

    /// A record as a store written by another tool could hold it: built
    /// with the public constructor, which does not validate names.
    fn hostile() -> TokenInfo {
        let now = Timestamp::from_unix_secs(1_000).unwrap();
        let mut info = TokenInfo::new(
            TokenId::from_u64(7),
            "ali\u{200b}ce\x1b[2J",
            now,
            Expiry::Sliding {
                window: Duration::from_secs(60),
                max_lifetime: None,
                expires_at: now,
            },
        );
        info.label = "\u{202e}lebal\x07".into();
        info.created_by = "root\x1b]0;x\x07".into();
        info
    }

    #[test]
    fn human_output_escapes_whatever_a_record_holds() {
        let info = hostile();
        let now = Timestamp::from_unix_secs(0).unwrap();
        for shown in [
            list_human(std::slice::from_ref(&info), now),
            show_human(&info, now),
        ] {
            assert!(
                !shown
                    .chars()
                    .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{200b}' | '\u{202e}')),
                "{shown:?}"
            );
            assert!(shown.contains("ali\\u{200b}ce\\u{1b}[2J"), "{shown}");
        }
    }
}
