//! What travels to and from the endpoint: a form-encoded request, and the
//! RFC 7662 answer read as pat's endpoint gives it.

use crate::model::expiry::Expiry;
use crate::model::network::Cidr;
use crate::model::prefix::Prefix;
use crate::model::record::{Identity, TokenInfo};
use crate::model::scope::{Scopes, TokenScope};
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

use super::Said;

/// An RFC 7662 answer as pat's endpoint gives it to a digest request.
/// Also the store's prefixes and the token's address rule (networks it may
/// be used from; empty: anywhere), which the verifier applies to a cached
/// answer.
pub(super) fn parse_answer(body: &[u8]) -> Result<(Said, Vec<Prefix>, Vec<Cidr>), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("a body that is not JSON ({e})"))?;
    let field = |k: &str| v.get(k).ok_or_else(|| format!("an answer without `{k}`"));
    let time = |k: &str| -> Result<Timestamp, String> {
        field(k)?
            .as_u64()
            .and_then(Timestamp::from_unix_secs)
            .ok_or_else(|| format!("an `{k}` that is not a time"))
    };
    match v.get("active") {
        Some(serde_json::Value::Bool(false)) => {
            return Ok((
                match v.get("pat_reason").and_then(serde_json::Value::as_str) {
                    Some("expired") => Said::Expired(time("exp")?),
                    Some("wrong_user") => Said::WrongUser,
                    Some("disabled") => Said::Disabled,
                    Some("address") => Said::AddressNotAllowed,
                    Some("used_up") => Said::UsedUp,
                    _ => Said::Unknown,
                },
                Vec::new(),
                Vec::new(),
            ));
        }
        Some(serde_json::Value::Bool(true)) => {}
        _ => return Err("no boolean `active`".into()),
    }
    let user = field("username")?
        .as_str()
        .filter(|u| !u.is_empty())
        .ok_or("a `username` that is not a name")?;
    let id: TokenId = field("jti")?
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or("a `jti` that is not a pat token id")?;
    let (exp, iat) = (time("exp")?, time("iat")?);
    let scopes = match v.get("scope") {
        None => Scopes::unrestricted(),
        Some(s) => {
            let s = s.as_str().ok_or("a `scope` that is not a string")?;
            let scopes = s
                .split(' ')
                .filter(|part| !part.is_empty())
                .map(str::parse::<TokenScope>)
                .collect::<Result<Scopes, _>>()
                .map_err(|e| format!("a `scope` pat does not read ({e})"))?;
            // A `scope` with nothing in it restricts to nothing: never
            // read as no restriction at all.
            if scopes.is_unrestricted() {
                Scopes::none()
            } else {
                scopes
            }
        }
    };
    let mut info = TokenInfo::new(id, user, iat, Expiry::Hard { expires_at: exp });
    info.scopes = scopes;
    if let Some(meta) = v.get("pat_meta") {
        info.meta = crate::model::metadata::Metadata::from_json(meta)
            .map_err(|e| format!("a `pat_meta` pat does not read ({e})"))?;
    }
    // A limit that cannot be read is an answer that cannot be trusted.
    info.rate = match v.get("pat_rate") {
        None => None,
        Some(rate) => Some(
            rate.as_str()
                .and_then(|r| r.parse().ok())
                .ok_or("a `pat_rate` pat does not read")?,
        ),
    };
    // The uses left (after this one, if the endpoint spent it): the mark
    // of an answer never to cache.
    if let Some(left) = v.get("pat_uses_left") {
        let left = left
            .as_u64()
            .and_then(|l| u32::try_from(l).ok())
            .filter(|l| *l <= crate::MAX_USES)
            .ok_or("a `pat_uses_left` that is not a count")?;
        info.max_uses = Some(left);
    }
    let mut identity = Identity::new(&info, exp);
    // Whether the endpoint spent the use as it answered: it did, unless
    // it says it did not (it was asked `pat_spend=no`); an endpoint of an
    // older build always does, and says nothing.
    if info.max_uses.is_some() {
        match v.get("pat_spent") {
            Some(serde_json::Value::Bool(false)) => {}
            None | Some(serde_json::Value::Bool(true)) => identity = identity.with_quota_spent(),
            Some(_) => return Err("a `pat_spent` that is not a boolean".into()),
        }
    }
    // The store's prefixes (an endpoint of an older build sends none);
    // one that is not a prefix is skipped, not trusted.
    let prefixes = v
        .get("pat_prefixes")
        .and_then(serde_json::Value::as_array)
        .map(|all| {
            all.iter()
                .filter_map(|p| p.as_str().and_then(|p| Prefix::new(p).ok()))
                .collect()
        })
        .unwrap_or_default();
    let said = Said::Active(match v.get("pat_previous_secret") {
        Some(serde_json::Value::Bool(true)) => identity.by_previous_secret(),
        None | Some(serde_json::Value::Bool(false)) => identity,
        Some(_) => return Err("a `pat_previous_secret` that is not a boolean".into()),
    });
    // A rule that cannot be read is an answer that cannot be trusted:
    // never read as no rule.
    let allow_from = match v.get("pat_allow_from") {
        None => Vec::new(),
        Some(serde_json::Value::Array(all)) => all
            .iter()
            .map(|n| n.as_str().and_then(|n| n.parse::<Cidr>().ok()))
            .collect::<Option<Vec<_>>>()
            .filter(|all| !all.is_empty())
            .ok_or("a `pat_allow_from` pat does not read")?,
        Some(_) => return Err("a `pat_allow_from` that is not a list".into()),
    };
    Ok((said, prefixes, allow_from))
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, the
/// rest as `%XX`.
pub(super) fn form_encode(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}
