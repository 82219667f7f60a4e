//! The explicit, versioned encoding of a stored [`TokenInfo`].
//!
//! Version 1, little-endian:
//! ```text
//! u8   record version (1)
//! u64  token id
//! str  user            (str = u32 byte length + UTF-8 bytes)
//! str  label
//! u64  created_at      (Unix seconds)
//! str  created_by
//! u8   expiry kind     (0 hard, 1 sliding)
//! u64  expires_at
//!      sliding only: u64 window secs, u8 has_cap, [u64 cap secs]
//! u8   has_last_used, [u64 last_used_at]
//! u32  scope count, then per scope: 16 bytes node UUID, u8 perm bits
//! ```
//! Version 2 is version 1 followed by `u64 rotated_at`; its lifetime began
//! at that rotation (as rotations then restarted it).
//! Version 3 is version 1 followed by `opt u64 rotated_at`, `opt u64
//! parent`, `u64 lifetime_from`, `opt u64 not_after`, `opt u64
//! previous_until` (the authority rule's fields).
//! Version 4 is version 3 followed by the named permissions: `u32` count,
//! then each as a `str`. Version 5 is version 4 followed by `u8` count and
//! that many tagged fields, each `u8 tag, u32 length, bytes`, in increasing
//! tag order, each at most once; an unknown tag is an error (a field this build cannot enforce is
//! never dropped silently):
//! ```text
//! 1  disabled_by   u64 token id
//! 2  meta          u8 count, then per entry str key, str value
//! 3  allow_from    u8 count, then per network u8 family (4 or 6), the
//!                  address (4 or 16 bytes), u8 prefix length
//! 4  rate          u32 uses, u8 per (1 second, 2 minute, 3 hour)
//! 5  quota         u32 max_uses, u32 uses spent
//! 6  last addresses u8 count (1 to 5), then per address u8 family (4 or
//!                  6), the address, u64 its last use; distinct, newest
//!                  first
//! ```
//! Each record is written in the oldest version that holds it.
//! Decoding checks every length and value and never panics: a damaged record
//! is an error naming what is wrong.

use std::time::Duration;

use crate::model::audit::{AuditAction, AuditEntry};
use crate::model::expiry::Expiry;
use crate::model::metadata::Metadata;
use crate::model::network::Cidr;
use crate::model::permission::{Permission, PermissionDef};
use crate::model::rate::RateLimit;
use crate::model::record::{LastAddresses, TokenInfo};
use crate::model::scope::{NodeId, Perm, Scope, Scopes};
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

const RECORD_V1: u8 = 1;
/// Version 1 plus the time of the last rotation.
const RECORD_V2: u8 = 2;
/// Version 1 plus lineage, the lifetime's start, its limit and the grace
/// of the replaced secret.
const RECORD_V3: u8 = 3;
/// Version 3 plus named permissions.
const RECORD_V4: u8 = 4;
/// Version 4 plus tagged fields: a token's limits and state.
const RECORD_V5: u8 = 5;

/// Tag of the token whose disabling reached this one.
const TAG_DISABLED_BY: u8 = 1;
/// Tag of the token's metadata.
const TAG_META: u8 = 2;
/// Tag of the token's address rule.
const TAG_ALLOW_FROM: u8 = 3;
/// Tag of the token's rate limit.
const TAG_RATE: u8 = 4;
/// Tag of the token's use quota.
const TAG_QUOTA: u8 = 5;
/// Tag of the client addresses the token was last used from.
const TAG_LAST_ADDRESSES: u8 = 6;

/// The oldest version that holds `info`.
fn version_of(info: &TokenInfo) -> u8 {
    let lineage =
        info.parent.is_some() || info.not_after.is_some() || info.previous_until.is_some();
    match info.rotated_at {
        _ if info.disabled_by.is_some()
            || !info.meta.is_empty()
            || !info.allow_from.is_empty()
            || info.rate.is_some()
            || info.max_uses.is_some()
            || !info.last_addresses.is_empty() =>
        {
            RECORD_V5
        }
        _ if !info.scopes.named().is_empty() => RECORD_V4,
        _ if lineage => RECORD_V3,
        None if info.lifetime_from == info.created_at => RECORD_V1,
        Some(at) if info.lifetime_from == at => RECORD_V2,
        _ => RECORD_V3,
    }
}

pub(crate) fn encode(info: &TokenInfo) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + info.user.len()
            + info.label.len()
            + info.created_by.len()
            + 17 * info.scopes.as_slice().len(),
    );
    let version = version_of(info);
    out.push(version);
    out.extend_from_slice(&info.id.as_u64().to_le_bytes());
    put_str(&mut out, &info.user);
    put_str(&mut out, &info.label);
    out.extend_from_slice(&info.created_at.as_unix_secs().to_le_bytes());
    put_str(&mut out, &info.created_by);
    match info.expiry {
        Expiry::Hard { expires_at } => {
            out.push(0);
            out.extend_from_slice(&expires_at.as_unix_secs().to_le_bytes());
        }
        Expiry::Sliding {
            window,
            max_lifetime,
            expires_at,
        } => {
            out.push(1);
            out.extend_from_slice(&expires_at.as_unix_secs().to_le_bytes());
            out.extend_from_slice(&window.as_secs().to_le_bytes());
            put_opt_u64(&mut out, max_lifetime.map(|d| d.as_secs()));
        }
    }
    put_opt_u64(&mut out, info.last_used_at.map(Timestamp::as_unix_secs));
    put_scopes(&mut out, &info.scopes);
    match version {
        RECORD_V1 => {}
        RECORD_V2 => {
            let at = info.rotated_at.unwrap_or(info.created_at);
            out.extend_from_slice(&at.as_unix_secs().to_le_bytes());
        }
        _ => {
            put_opt_u64(&mut out, info.rotated_at.map(Timestamp::as_unix_secs));
            put_opt_u64(&mut out, info.parent.map(TokenId::as_u64));
            out.extend_from_slice(&info.lifetime_from.as_unix_secs().to_le_bytes());
            put_opt_u64(&mut out, info.not_after.map(Timestamp::as_unix_secs));
            put_opt_u64(&mut out, info.previous_until.map(Timestamp::as_unix_secs));
            if version >= RECORD_V4 {
                put_named(&mut out, &info.scopes);
            }
            if version >= RECORD_V5 {
                put_tagged(&mut out, info);
            }
        }
    }
    out
}

/// Version 5's tagged fields, those `info` has.
fn put_tagged(out: &mut Vec<u8>, info: &TokenInfo) {
    let count_at = out.len();
    out.push(0);
    let mut field = |tag: u8, bytes: &[u8]| {
        out[count_at] += 1;
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    if let Some(by) = info.disabled_by {
        field(TAG_DISABLED_BY, &by.as_u64().to_le_bytes());
    }
    if !info.meta.is_empty() {
        let mut bytes = Vec::new();
        put_meta(&mut bytes, &info.meta);
        field(TAG_META, &bytes);
    }
    if !info.allow_from.is_empty() {
        let mut bytes = Vec::new();
        put_networks(&mut bytes, &info.allow_from);
        field(TAG_ALLOW_FROM, &bytes);
    }
    if let Some(rate) = info.rate {
        let mut bytes = Vec::new();
        put_rate(&mut bytes, rate);
        field(TAG_RATE, &bytes);
    }
    if let Some(max) = info.max_uses {
        let mut bytes = Vec::with_capacity(8);
        bytes.extend_from_slice(&max.to_le_bytes());
        bytes.extend_from_slice(&info.uses.to_le_bytes());
        field(TAG_QUOTA, &bytes);
    }
    if !info.last_addresses.is_empty() {
        let mut bytes = Vec::new();
        put_last_addresses(&mut bytes, &info.last_addresses);
        field(TAG_LAST_ADDRESSES, &bytes);
    }
}

/// `u8` count, then each address as [`put_addr`] writes it and `u64` the
/// seconds of its last use.
fn put_last_addresses(out: &mut Vec<u8>, all: &LastAddresses) {
    out.push(all.len() as u8);
    for seen in all.iter() {
        put_addr(out, seen.addr);
        out.extend_from_slice(&seen.at.as_unix_secs().to_le_bytes());
    }
}

/// `u8` family (4 or 6), then the address's bytes.
fn put_addr(out: &mut Vec<u8>, addr: std::net::IpAddr) {
    match addr {
        std::net::IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        std::net::IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// `u32` uses, then `u8` per (see [`Per::code`](crate::Per)).
pub(crate) fn put_rate(out: &mut Vec<u8>, rate: RateLimit) {
    out.extend_from_slice(&rate.uses().to_le_bytes());
    out.push(rate.per().code());
}

/// `u8` count, then each network as `u8` family (4 or 6), its address and
/// `u8` prefix length.
pub(crate) fn put_networks(out: &mut Vec<u8>, networks: &[Cidr]) {
    out.push(networks.len() as u8);
    for n in networks {
        put_addr(out, n.network());
        out.push(n.prefix_len());
    }
}

/// `u8` count, then each entry of `meta` as `str` key and `str` value.
pub(crate) fn put_meta(out: &mut Vec<u8>, meta: &Metadata) {
    out.push(meta.len() as u8);
    for (k, v) in meta.iter() {
        put_str(out, k);
        put_str(out, v);
    }
}

/// `u32` count, then each named permission as a `str`.
pub(crate) fn put_named(out: &mut Vec<u8>, scopes: &Scopes) {
    out.extend_from_slice(&(scopes.named().len() as u32).to_le_bytes());
    for name in scopes.named() {
        put_str(out, name.as_str());
    }
}

/// `u32` count, then per scope 16 bytes of node UUID and the perm bits.
pub(crate) fn put_scopes(out: &mut Vec<u8>, scopes: &Scopes) {
    out.extend_from_slice(&(scopes.as_slice().len() as u32).to_le_bytes());
    for s in scopes {
        out.extend_from_slice(s.node.as_bytes());
        out.push(s.perm.bits());
    }
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub(crate) fn decode(bytes: &[u8]) -> Result<TokenInfo, String> {
    let mut r = Reader(bytes);
    let version = r.u8("record version")?;
    if !matches!(
        version,
        RECORD_V1 | RECORD_V2 | RECORD_V3 | RECORD_V4 | RECORD_V5
    ) {
        return Err(format!("unknown record version {version}"));
    }
    let id = TokenId::from_u64(r.u64("id")?);
    let user = r.string("user")?;
    let label = r.string("label")?;
    let created_at = r.timestamp("created_at")?;
    let created_by = r.string("created_by")?;
    let kind = r.u8("expiry kind")?;
    let expires_at = r.timestamp("expires_at")?;
    let expiry = match kind {
        0 => Expiry::Hard { expires_at },
        1 => Expiry::Sliding {
            expires_at,
            window: Duration::from_secs(r.u64("window")?),
            max_lifetime: r.opt_u64("max_lifetime")?.map(Duration::from_secs),
        },
        k => return Err(format!("unknown expiry kind {k}")),
    };
    let last_used_at = match r.opt_u64("last_used_at")? {
        None => None,
        Some(s) => Some(Timestamp::from_unix_secs(s).ok_or("last_used_at out of range")?),
    };
    let mut scopes = r.scopes()?;
    let opt_time = |r: &mut Reader<'_>, what: &str| -> Result<Option<Timestamp>, String> {
        r.opt_u64(what)?
            .map(|s| Timestamp::from_unix_secs(s).ok_or_else(|| format!("{what} out of range")))
            .transpose()
    };
    let (rotated_at, parent, lifetime_from, not_after, previous_until) = match version {
        RECORD_V1 => (None, None, created_at, None, None),
        RECORD_V2 => {
            let at = r.timestamp("rotated_at")?;
            (Some(at), None, at, None, None)
        }
        _ => (
            opt_time(&mut r, "rotated_at")?,
            r.opt_u64("parent")?.map(TokenId::from_u64),
            r.timestamp("lifetime_from")?,
            opt_time(&mut r, "not_after")?,
            opt_time(&mut r, "previous_until")?,
        ),
    };
    if version >= RECORD_V4 {
        scopes = r.named(scopes)?;
    }
    let mut disabled_by = None;
    let mut meta = Metadata::empty();
    let mut allow_from = Vec::new();
    let mut rate = None;
    let mut quota = None;
    let mut last_addresses = LastAddresses::EMPTY;
    let mut last_tag = 0;
    let fields = if version >= RECORD_V5 {
        r.u8("field count")?
    } else {
        0
    };
    for _ in 0..fields {
        let tag = r.u8("field tag")?;
        if tag <= last_tag {
            return Err(format!("field tag {tag} out of order"));
        }
        last_tag = tag;
        let len = r.u32("field length")? as usize;
        let mut field = Reader(r.take(len, "a tagged field")?);
        match tag {
            TAG_DISABLED_BY => {
                disabled_by = Some(TokenId::from_u64(field.u64("disabled_by")?));
            }
            TAG_META => {
                meta = field.meta()?;
                if meta.is_empty() {
                    return Err("empty metadata written".into());
                }
            }
            TAG_ALLOW_FROM => {
                allow_from = field.networks()?;
                if allow_from.is_empty() {
                    return Err("an empty address rule written".into());
                }
            }
            TAG_RATE => rate = Some(field.rate()?),
            TAG_QUOTA => {
                let max = field.u32("use quota")?;
                let uses = field.u32("uses spent")?;
                if !(1..=crate::MAX_USES).contains(&max) || uses > max {
                    return Err(format!("a quota of {uses} of {max} uses written"));
                }
                quota = Some((max, uses));
            }
            TAG_LAST_ADDRESSES => {
                last_addresses = field.last_addresses()?;
                if last_addresses.is_empty() {
                    return Err("an empty list of last addresses written".into());
                }
            }
            _ => return Err(format!("unknown field tag {tag}")),
        }
        field.finish()?;
    }
    r.finish()?;
    let mut info = TokenInfo::new(id, user, created_at, expiry);
    info.label = label;
    info.created_by = created_by;
    info.last_used_at = last_used_at;
    info.scopes = scopes;
    info.rotated_at = rotated_at;
    info.parent = parent;
    info.lifetime_from = lifetime_from;
    info.not_after = not_after;
    info.previous_until = previous_until;
    info.disabled_by = disabled_by;
    info.meta = meta;
    info.allow_from = allow_from;
    info.rate = rate;
    if let Some((max, uses)) = quota {
        info.max_uses = Some(max);
        info.uses = uses;
    }
    info.last_addresses = last_addresses;
    Ok(info)
}

/// A catalog definition, keyed by its name, version 1: `u8 version (1),
/// str description, u32 count, then each implied name as a str`.
const PERMISSION_V1: u8 = 1;

pub(crate) fn encode_permission(def: &PermissionDef) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + def.description.len() + 16 * def.implies.len());
    out.push(PERMISSION_V1);
    put_str(&mut out, &def.description);
    out.extend_from_slice(&(def.implies.len() as u32).to_le_bytes());
    for name in &def.implies {
        put_str(&mut out, name.as_str());
    }
    out
}

pub(crate) fn decode_permission(name: &str, bytes: &[u8]) -> Result<PermissionDef, String> {
    let mut r = Reader(bytes);
    let version = r.u8("permission version")?;
    if version != PERMISSION_V1 {
        return Err(format!("unknown permission version {version}"));
    }
    let name = Permission::new(name).map_err(|e| e.to_string())?;
    let description = r.string("description")?;
    let n = r.u32("implication count")? as usize;
    let mut def = PermissionDef::new(name).description(description);
    for _ in 0..n.min(bytes.len()) {
        let implied = r.string("implied permission")?;
        def = def.implies(Permission::new(&implied).map_err(|e| e.to_string())?);
    }
    r.finish()?;
    Ok(def)
}

/// Audit entries, version 1: `u8 version (1), u64 at, u8 action,
/// opt u64 token id, str user, str actor, str outcome`.
const AUDIT_V1: u8 = 1;

pub(crate) fn encode_audit(e: &AuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + e.user.len() + e.actor.len() + e.outcome.len());
    out.push(AUDIT_V1);
    out.extend_from_slice(&e.at.as_unix_secs().to_le_bytes());
    out.push(e.action.code());
    put_opt_u64(&mut out, e.token_id.map(TokenId::as_u64));
    put_str(&mut out, &e.user);
    put_str(&mut out, &e.actor);
    put_str(&mut out, &e.outcome);
    out
}

pub(crate) fn decode_audit(bytes: &[u8]) -> Result<AuditEntry, String> {
    let mut r = Reader(bytes);
    let version = r.u8("audit entry version")?;
    if version != AUDIT_V1 {
        return Err(format!("unknown audit entry version {version}"));
    }
    let at = r.timestamp("audit time")?;
    let code = r.u8("audit action")?;
    let action =
        AuditAction::from_code(code).ok_or_else(|| format!("unknown audit action {code}"))?;
    let token_id = r.opt_u64("audit token id")?.map(TokenId::from_u64);
    let user = r.string("audit user")?;
    let actor = r.string("audit actor")?;
    let outcome = r.string("audit outcome")?;
    r.finish()?;
    Ok(AuditEntry::new(at, action, token_id, user, actor, outcome))
}

/// Reads the fields written by the `put_*` helpers, checking every length.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    /// Errors unless everything was read.
    pub(crate) fn finish(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.0.len()))
        }
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err(format!("record truncated in {what}"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn opt_u64(&mut self, what: &str) -> Result<Option<u64>, String> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(self.u64(what)?)),
            f => Err(format!("bad presence flag {f} for {what}")),
        }
    }

    pub(crate) fn timestamp(&mut self, what: &str) -> Result<Timestamp, String> {
        Timestamp::from_unix_secs(self.u64(what)?).ok_or_else(|| format!("{what} out of range"))
    }

    /// Reads what [`put_rate`] wrote.
    pub(crate) fn rate(&mut self) -> Result<RateLimit, String> {
        let uses = self.u32("rate uses")?;
        let per = self.u8("rate unit")?;
        let per = crate::model::rate::Per::from_code(per)
            .ok_or_else(|| format!("unknown rate unit {per}"))?;
        RateLimit::new(uses, per).ok_or_else(|| format!("a rate of {uses} uses written"))
    }

    /// Reads what [`put_addr`] wrote.
    fn addr(&mut self) -> Result<std::net::IpAddr, String> {
        Ok(match self.u8("address family")? {
            4 => std::net::IpAddr::from(self.array::<4>("an IPv4 address")?),
            6 => std::net::IpAddr::from(self.array::<16>("an IPv6 address")?),
            f => return Err(format!("unknown address family {f}")),
        })
    }

    /// Reads what [`put_last_addresses`] wrote: at most
    /// [`LAST_ADDRESSES`](crate::LAST_ADDRESSES), distinct, newest first.
    fn last_addresses(&mut self) -> Result<LastAddresses, String> {
        let n = self.u8("address count")?;
        let mut all = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let addr = self.addr()?;
            let secs = self.u64("last use from an address")?;
            let at = Timestamp::from_unix_secs(secs)
                .ok_or_else(|| format!("a last use at {secs} s written"))?;
            all.push(crate::SeenFrom::new(addr, at));
        }
        let list = LastAddresses::from_unordered(all.iter().copied());
        if list.iter().ne(all.iter().copied()) {
            return Err("last addresses written out of order, repeated or too many".into());
        }
        Ok(list)
    }

    /// Reads what [`put_networks`] wrote.
    pub(crate) fn networks(&mut self) -> Result<Vec<Cidr>, String> {
        let n = self.u8("network count")?;
        let mut all = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let addr = self.addr()?;
            let prefix = self.u8("prefix length")?;
            all.push(
                Cidr::new(addr, prefix)
                    .ok_or_else(|| format!("prefix length {prefix} too long for {addr}"))?,
            );
        }
        if all.len() > crate::MAX_NETWORKS {
            return Err(format!(
                "{} networks, more than a token may have",
                all.len()
            ));
        }
        Ok(all)
    }

    /// Reads what [`put_meta`] wrote, checked as [`Metadata::new`] checks.
    pub(crate) fn meta(&mut self) -> Result<Metadata, String> {
        let n = self.u8("metadata count")?;
        let mut entries = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            entries.push((self.string("metadata key")?, self.string("metadata value")?));
        }
        Metadata::new(entries).map_err(|e| e.to_string())
    }

    /// Reads what [`put_named`] wrote, beside the node scopes `nodes`.
    pub(crate) fn named(&mut self, nodes: Scopes) -> Result<Scopes, String> {
        let n = self.u32("permission count")? as usize;
        let mut named = Vec::with_capacity(n.min(self.0.len() / 5));
        for _ in 0..n {
            let name = self.string("permission")?;
            named.push(Permission::new(&name).map_err(|e| e.to_string())?);
        }
        Ok(Scopes::new(nodes.iter().copied(), named))
    }

    /// Reads what [`put_scopes`] wrote.
    pub(crate) fn scopes(&mut self) -> Result<Scopes, String> {
        let n = self.u32("scope count")? as usize;
        let mut scopes = Vec::with_capacity(n.min(self.0.len() / 17));
        for _ in 0..n {
            let node = NodeId::from_bytes(self.array("scope node")?);
            let perm = Perm::from_bits(self.u8("scope perm")?).ok_or("bad scope permission")?;
            scopes.push(Scope { node, perm });
        }
        Ok(scopes.into_iter().collect())
    }

    pub(crate) fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.u32(what)? as usize;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_info() -> impl Strategy<Value = TokenInfo> {
        (
            any::<u64>(),
            ".{0,20}",
            ".{0,20}",
            0u64..=Timestamp::MAX.as_unix_secs(),
            proptest::option::of(proptest::option::of(1u64..100_000)),
            proptest::option::of(0u64..=Timestamp::MAX.as_unix_secs()),
            proptest::collection::vec((any::<[u8; 16]>(), 1u8..=3), 0..5),
            proptest::option::of(0u64..=Timestamp::MAX.as_unix_secs()),
            proptest::option::of((
                proptest::option::of(any::<u64>()),
                0u64..=Timestamp::MAX.as_unix_secs(),
                proptest::option::of(0u64..=Timestamp::MAX.as_unix_secs()),
                proptest::option::of(0u64..=Timestamp::MAX.as_unix_secs()),
            )),
            proptest::collection::vec("[a-z]{1,8}(:[a-z_]{1,5})?(:\\*)?", 0..3),
            proptest::option::of(any::<u64>()),
            (
                proptest::collection::btree_map("[a-z]{1,6}", ".{0,12}", 0..3),
                proptest::collection::vec((any::<[u8; 16]>(), 0u8..=128, any::<bool>()), 0..3),
                proptest::option::of((1u32..=crate::MAX_RATE_USES, 1u8..=3)),
                proptest::option::of((1u32..=crate::MAX_USES, any::<u32>())),
                proptest::collection::vec(
                    (
                        any::<[u8; 16]>(),
                        any::<bool>(),
                        0u64..=Timestamp::MAX.as_unix_secs(),
                    ),
                    0..8,
                ),
            ),
        )
            .prop_map(
                |(
                    id,
                    user,
                    label,
                    t,
                    sliding,
                    last,
                    scopes,
                    rotated,
                    lineage,
                    named,
                    disabled,
                    (meta, networks, rate, quota, seen),
                )| {
                    let mut info = TokenInfo::new(
                        TokenId::from_u64(id),
                        user,
                        Timestamp::from_unix_secs(t).unwrap(),
                        Expiry::Hard {
                            expires_at: Timestamp::from_unix_secs(t).unwrap(),
                        },
                    );
                    info.label = label.clone();
                    info.created_by = label;
                    info.expiry = match sliding {
                        None => Expiry::Hard {
                            expires_at: Timestamp::from_unix_secs(t).unwrap(),
                        },
                        Some(cap) => Expiry::Sliding {
                            window: Duration::from_secs(30),
                            max_lifetime: cap.map(Duration::from_secs),
                            expires_at: Timestamp::from_unix_secs(t).unwrap(),
                        },
                    };
                    info.last_used_at = last.map(|s| Timestamp::from_unix_secs(s).unwrap());
                    info.scopes = Scopes::new(
                        scopes.into_iter().map(|(n, p)| Scope {
                            node: NodeId::from_bytes(n),
                            perm: Perm::from_bits(p).unwrap(),
                        }),
                        named.iter().map(|n| n.parse::<Permission>().unwrap()),
                    );
                    info.rotated_at = rotated.map(|s| Timestamp::from_unix_secs(s).unwrap());
                    if let Some(at) = info.rotated_at {
                        info.lifetime_from = at;
                    }
                    if let Some((parent, from, not_after, previous)) = lineage {
                        info.parent = parent.map(TokenId::from_u64);
                        info.lifetime_from = Timestamp::from_unix_secs(from).unwrap();
                        info.not_after = not_after.map(|s| Timestamp::from_unix_secs(s).unwrap());
                        info.previous_until =
                            previous.map(|s| Timestamp::from_unix_secs(s).unwrap());
                    }
                    info.disabled_by = disabled.map(TokenId::from_u64);
                    info.meta = Metadata::new(meta).unwrap_or_default();
                    info.allow_from = networks
                        .into_iter()
                        .filter_map(|(bytes, prefix, v4)| {
                            let addr = if v4 {
                                std::net::IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
                            } else {
                                std::net::IpAddr::from(bytes)
                            };
                            Cidr::new(addr, prefix)
                        })
                        .collect();
                    info.rate = rate.and_then(|(uses, per)| {
                        RateLimit::new(uses, crate::model::rate::Per::from_code(per)?)
                    });
                    if let Some((max, spent)) = quota {
                        info.max_uses = Some(max);
                        info.uses = spent % (max + 1);
                    }
                    info.last_addresses =
                        LastAddresses::from_unordered(seen.into_iter().map(|(bytes, v4, at)| {
                            let addr = if v4 {
                                std::net::IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
                            } else {
                                std::net::IpAddr::from(bytes)
                            };
                            crate::SeenFrom::new(addr, Timestamp::from_unix_secs(at).unwrap())
                        }));
                    info
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(info in arb_info()) {
            prop_assert_eq!(decode(&encode(&info)).unwrap(), info);
        }

        #[test]
        fn every_truncation_is_an_error(info in arb_info()) {
            let bytes = encode(&info);
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(decode(&longer).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn audit_entries_round_trip_and_refuse_damage() {
        let e = AuditEntry::new(
            Timestamp::from_unix_secs(1_700_000_000).unwrap(),
            AuditAction::RevokeUser,
            Some(TokenId::from_u64(7)),
            "alice",
            "uid 0",
            "3 tokens",
        );
        let bytes = encode_audit(&e);
        assert_eq!(decode_audit(&bytes).unwrap(), e);
        for cut in 0..bytes.len() {
            assert!(decode_audit(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[9] = 99;
        assert!(decode_audit(&bad).unwrap_err().contains("action"));
    }

    #[test]
    fn records_never_rotated_keep_version_1() {
        let mut info = TokenInfo::new(
            TokenId::from_u64(1),
            "alice",
            Timestamp::UNIX_EPOCH,
            Expiry::Hard {
                expires_at: Timestamp::UNIX_EPOCH,
            },
        );
        assert_eq!(encode(&info)[0], RECORD_V1);
        info.rotated_at = Some(Timestamp::UNIX_EPOCH);
        assert_eq!(encode(&info)[0], RECORD_V2);
    }

    #[test]
    fn records_are_written_in_the_oldest_version_that_holds_them() {
        let mut info = TokenInfo::new(
            TokenId::from_u64(1),
            "alice",
            Timestamp::UNIX_EPOCH,
            Expiry::Hard {
                expires_at: Timestamp::UNIX_EPOCH,
            },
        );
        let at = |s| Timestamp::from_unix_secs(s).unwrap();
        info.rotated_at = Some(at(5));
        info.lifetime_from = at(5);
        assert_eq!(
            encode(&info)[0],
            RECORD_V2,
            "a rotation that restarted the lifetime"
        );
        info.lifetime_from = at(0);
        assert_eq!(encode(&info)[0], RECORD_V3, "one within the lifetime");
        assert_eq!(decode(&encode(&info)).unwrap(), info);
        info.rotated_at = None;
        info.parent = Some(TokenId::from_u64(9));
        assert_eq!(encode(&info)[0], RECORD_V3, "a child");
        assert_eq!(decode(&encode(&info)).unwrap(), info);
    }

    #[test]
    fn tagged_fields_unknown_or_repeated_are_refused() {
        let mut info = TokenInfo::new(
            TokenId::from_u64(1),
            "alice",
            Timestamp::UNIX_EPOCH,
            Expiry::Hard {
                expires_at: Timestamp::UNIX_EPOCH,
            },
        );
        info.disabled_by = Some(TokenId::from_u64(1));
        let bytes = encode(&info);
        assert_eq!(bytes[0], RECORD_V5);
        assert_eq!(decode(&bytes).unwrap(), info);
        // The field: count 1, tag, u32 length 8, the id.
        let field = bytes.len() - 14;
        assert_eq!(bytes[field..field + 2], [1, TAG_DISABLED_BY]);
        let mut unknown = bytes.clone();
        unknown[field + 1] = 200;
        assert_eq!(decode(&unknown).unwrap_err(), "unknown field tag 200");
        let mut twice = bytes.clone();
        twice[field] = 2;
        twice.extend_from_slice(&bytes[field + 1..]);
        assert_eq!(
            decode(&twice).unwrap_err(),
            format!("field tag {TAG_DISABLED_BY} out of order")
        );
    }

    #[test]
    fn newer_record_versions_are_refused() {
        assert_eq!(decode(&[6]).unwrap_err(), "unknown record version 6");
    }
}
