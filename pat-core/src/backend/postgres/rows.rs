//! Rows as records: the columns pat reads, and their conversions.

use std::time::Duration;

use tokio_postgres::Row;

use super::PgError;
use crate::model::expiry::Expiry;
use crate::model::metadata::Metadata;
use crate::model::network::Cidr;
use crate::model::record::{LastAddresses, SeenFrom, TokenInfo};
use crate::model::scope::{Scopes, TokenScope};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId};

pub(super) const COLUMNS: &str = "id, username, label, created_at, created_by, sliding, expires_at, \
                       window_secs, max_lifetime_secs, last_used_at, scopes, rotated_at, \
                       parent_id, lifetime_from, not_after, previous_until, disabled_by, meta, allow_from, \
                       rate, max_uses, uses, last_addresses";

/// Where statements put the digest after [`COLUMNS`] (`SELECT {COLUMNS}, digest`).
pub(super) const DIGEST: usize = 23;

pub(super) fn secs(t: Timestamp) -> i64 {
    t.as_unix_secs() as i64
}

pub(super) fn timestamp(v: i64, what: &str) -> Result<Timestamp, PgError> {
    u64::try_from(v)
        .ok()
        .and_then(Timestamp::from_unix_secs)
        .ok_or_else(|| PgError::Data(format!("{what} out of range")))
}

pub(super) fn duration(v: Option<i64>, what: &str) -> Result<Option<Duration>, PgError> {
    v.map(|s| {
        u64::try_from(s)
            .map(Duration::from_secs)
            .map_err(|_| PgError::Data(format!("{what} is negative")))
    })
    .transpose()
}

/// A record's metadata as its column holds it: a JSON object, NULL for none.
pub(super) fn meta_column(info: &TokenInfo) -> Option<String> {
    (!info.meta.is_empty()).then(|| info.meta.to_json().to_string())
}

/// A record's address rule as its column holds it: NULL for none.
pub(super) fn allow_from_column(info: &TokenInfo) -> Option<Vec<String>> {
    (!info.allow_from.is_empty()).then(|| info.allow_from.iter().map(ToString::to_string).collect())
}

/// A record's rate limit as its column holds it (`100/m`): NULL for none.
pub(super) fn rate_column(info: &TokenInfo) -> Option<String> {
    info.rate.map(|r| r.to_string())
}

/// A record's use quota as its column holds it: NULL for none.
pub(super) fn max_uses_column(info: &TokenInfo) -> Option<i32> {
    // At most `MAX_USES`, which an `integer` holds.
    info.max_uses.map(|m| m as i32)
}

/// A count of spent uses as its column holds it.
pub(super) fn uses_column(uses: u32) -> i32 {
    uses.min(i32::MAX as u32) as i32
}

/// A token's last client addresses as their column holds them, each
/// `ADDR@SECONDS`, newest first: NULL for none.
pub(super) fn last_addresses_column(all: &LastAddresses) -> Option<Vec<String>> {
    (!all.is_empty()).then(|| {
        all.iter()
            .map(|s| format!("{}@{}", s.addr, s.at.as_unix_secs()))
            .collect()
    })
}

/// What [`last_addresses_column`] wrote.
pub(super) fn last_addresses(column: &[String]) -> Result<LastAddresses, PgError> {
    let bad = |s: &str| PgError::Data(format!("stored last address `{s}`"));
    let all = column
        .iter()
        .map(|s| {
            let (addr, at) = s.rsplit_once('@').ok_or_else(|| bad(s))?;
            let addr = addr.parse().map_err(|_| bad(s))?;
            let at = at
                .parse::<u64>()
                .ok()
                .and_then(Timestamp::from_unix_secs)
                .ok_or_else(|| bad(s))?;
            Ok(SeenFrom::new(addr, at))
        })
        .collect::<Result<Vec<_>, PgError>>()?;
    Ok(LastAddresses::from_unordered(all))
}

/// A row (in [`COLUMNS`] order) as a record.
pub(super) fn record(row: &Row) -> Result<TokenInfo, PgError> {
    let expires_at = timestamp(row.get(6), "expires_at")?;
    let expiry = if row.get::<_, bool>(5) {
        Expiry::Sliding {
            window: duration(row.get(7), "window")?
                .ok_or_else(|| PgError::Data("sliding token without a window".into()))?,
            max_lifetime: duration(row.get(8), "max lifetime")?,
            expires_at,
        }
    } else {
        Expiry::Hard { expires_at }
    };
    let mut info = TokenInfo::new(
        TokenId::from_u64(row.get::<_, i64>(0) as u64),
        row.get::<_, String>(1),
        timestamp(row.get(3), "created_at")?,
        expiry,
    );
    info.label = row.get(2);
    info.created_by = row.get(4);
    info.last_used_at = row
        .get::<_, Option<i64>>(9)
        .map(|v| timestamp(v, "last_used_at"))
        .transpose()?;
    info.rotated_at = row
        .get::<_, Option<i64>>(11)
        .map(|v| timestamp(v, "rotated_at"))
        .transpose()?;
    let scopes: Vec<String> = row.get(10);
    info.scopes = scopes
        .iter()
        .map(|s| s.parse::<TokenScope>())
        .collect::<Result<Scopes, _>>()
        .map_err(|e| PgError::Data(e.to_string()))?;
    let opt_time = |i: usize, what: &str| {
        row.get::<_, Option<i64>>(i)
            .map(|v| timestamp(v, what))
            .transpose()
    };
    info.parent = row
        .get::<_, Option<i64>>(12)
        .map(|v| TokenId::from_u64(v as u64));
    info.lifetime_from = timestamp(row.get(13), "lifetime_from")?;
    info.not_after = opt_time(14, "not_after")?;
    info.previous_until = opt_time(15, "previous_until")?;
    info.disabled_by = row
        .get::<_, Option<i64>>(16)
        .map(|v| TokenId::from_u64(v as u64));
    if let Some(text) = row.get::<_, Option<String>>(17) {
        let bad = |e: &dyn std::fmt::Display| PgError::Data(format!("stored metadata: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e))?;
        info.meta = Metadata::from_json(&v).map_err(|e| bad(&e))?;
    }
    if let Some(networks) = row.get::<_, Option<Vec<String>>>(18) {
        info.allow_from = networks
            .iter()
            .map(|n| n.parse::<Cidr>())
            .collect::<Result<_, _>>()
            .map_err(|e| PgError::Data(format!("stored address rule: {e}")))?;
    }
    if let Some(rate) = row.get::<_, Option<String>>(19) {
        info.rate = Some(
            rate.parse()
                .map_err(|e| PgError::Data(format!("stored rate limit: {e}")))?,
        );
    }
    if let Some(max) = row.get::<_, Option<i32>>(20) {
        info.max_uses = Some(
            u32::try_from(max)
                .ok()
                .filter(|m| (1..=crate::MAX_USES).contains(m))
                .ok_or_else(|| PgError::Data(format!("stored use quota {max}")))?,
        );
    }
    let uses: i32 = row.get(21);
    info.uses =
        u32::try_from(uses).map_err(|_| PgError::Data(format!("stored use count {uses}")))?;
    if let Some(column) = row.get::<_, Option<Vec<String>>>(22) {
        info.last_addresses = last_addresses(&column)?;
    }
    Ok(info)
}

pub(super) fn digest_of(row: &Row, column: usize) -> Result<TokenDigest, PgError> {
    let bytes: Vec<u8> = row.get(column);
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| PgError::Data("a digest is not 32 bytes".into()))?;
    Ok(TokenDigest::from_bytes(array))
}
