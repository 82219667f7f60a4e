//! The admin socket's wire format.
//!
//! Every message is a frame: a `u32` big-endian length, then that many
//! bytes. A request body is `u8 protocol version, u8 operation, payload`; a
//! reply body is `u8 protocol version, u8 status (0 ok, 1 error), payload`.
//! Fields use the record codec's encoding (little-endian integers, `u32`
//! length-prefixed strings), and token records travel in the store's own
//! versioned record format. Requests are at most 64 KiB; a frame over its
//! limit, a truncated one or trailing bytes are errors, never a panic.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::model::audit::AuditEntry;
use crate::model::expiry::ExpiryPolicy;
use crate::model::permission::{Permission, PermissionDef, PermissionRemoval};
use crate::model::policy::Policy;
use crate::model::prefix::Prefix;
use crate::model::record::{CreatedToken, NewToken, Rotation, TokenInfo};

use crate::backend::redb::codec::{
    self, Reader, put_meta, put_named, put_networks, put_opt_u64, put_rate, put_scopes, put_str,
};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

/// The protocol version this build speaks (2: lineage, lifetime-setting
/// rotations, the grace and reuse policy, descendants; 3: named
/// permissions in a creation and the catalog's operations; 4: disabling
/// and enabling tokens, metadata in a creation, records of version 5; 5:
/// each audit entry's place in the log, webhook deliveries).
pub(crate) const PROTOCOL_VERSION: u8 = 5;
/// Largest request frame a server reads.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;
/// Largest reply frame a client reads: a listing of about 12 million
/// tokens (a record is about 80 bytes). The peer was checked to be this
/// user or root before anything was sent, so the bound guards against a
/// confused service, not an attacker; at 64 MiB it refused the listing of
/// a million tokens.
pub(crate) const MAX_REPLY: usize = 1 << 30;

/// One admin operation, as sent by a client.
#[derive(Debug)]
pub(crate) enum Request {
    Hello,
    Create {
        new: NewToken,
        now: Timestamp,
    },
    List {
        user: Option<String>,
        include_expired: bool,
        now: Timestamp,
    },
    Get(TokenId),
    Revoke(TokenId),
    RevokeUser(String),
    Prune(Timestamp),
    Rotate {
        id: TokenId,
        rotation: Rotation,
        now: Timestamp,
    },
    GetPolicy,
    SetPolicy(Policy),
    Audit {
        since: Timestamp,
        user: Option<String>,
    },
    Find {
        digest: TokenDigest,
        now: Timestamp,
    },
    Descendants(TokenId),
    GetPrefixes,
    SetPrefix(Prefix),
    GetPermissions,
    DefinePermissions(Vec<PermissionDef>),
    RemovePermission {
        name: Permission,
        force: bool,
    },
    Disable(TokenId),
    Enable(TokenId),
    Deliveries,
    Resend {
        sink: String,
        seq: u64,
    },
}

/// A successful answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Hello { pid: u32 },
    Created(CreatedToken),
    Tokens(Vec<TokenInfo>),
    Token(TokenInfo),
    Count(u64),
    Policy(Policy),
    Audit(Vec<AuditEntry>),
    Found(Option<TokenInfo>),
    Prefixes(Vec<Prefix>),
    Permissions(Vec<PermissionDef>),
    Removal(PermissionRemoval),
    Deliveries(Vec<(String, crate::Delivery)>),
}

/// A failed operation, as the client will report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    NotFound(TokenId),
    /// Any other error; the message is what the local store would print.
    Message(String),
}

pub(crate) fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before it.
pub(crate) fn read_frame(r: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// `u32` count, then each definition: its name, then as the store keeps
/// it (`codec::encode_permission`), length first.
fn put_permissions(out: &mut Vec<u8>, defs: &[PermissionDef]) {
    out.extend_from_slice(&(defs.len() as u32).to_le_bytes());
    for def in defs {
        put_str(out, def.name.as_str());
        let bytes = codec::encode_permission(def);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
}

fn read_permissions(r: &mut Reader<'_>) -> Result<Vec<PermissionDef>, String> {
    let n = r.u32("permission count")? as usize;
    let mut defs = Vec::with_capacity(n.min(crate::MAX_CATALOG_LEN));
    for _ in 0..n {
        let name = r.string("permission")?;
        let len = r.u32("definition length")? as usize;
        defs.push(codec::decode_permission(&name, r.take(len, "definition")?)?);
    }
    Ok(defs)
}

fn read_prefix(r: &mut Reader<'_>) -> Result<Prefix, String> {
    Prefix::new(&r.string("prefix")?).map_err(|e| e.to_string())
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// An optional digest: a flag byte, then the 32 bytes.
fn put_opt_digest(out: &mut Vec<u8>, digest: Option<&TokenDigest>) {
    match digest {
        None => out.push(0),
        Some(d) => {
            out.push(1);
            out.extend_from_slice(d.as_bytes());
        }
    }
}

fn read_opt_digest(r: &mut Reader<'_>, what: &str) -> Result<Option<TokenDigest>, String> {
    match r.u8(what)? {
        0 => Ok(None),
        1 => Ok(Some(TokenDigest::from_bytes(r.array(what)?))),
        f => Err(format!("bad {what} flag {f}")),
    }
}

fn put_secs(out: &mut Vec<u8>, d: Duration) {
    put_u64(out, d.as_secs());
}

impl Request {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![PROTOCOL_VERSION];
        match self {
            Request::Hello => out.push(0),
            Request::Create { new, now } => {
                out.push(1);
                put_str(&mut out, &new.user);
                put_str(&mut out, &new.label);
                put_str(&mut out, &new.created_by);
                put_policy(&mut out, &new.expiry);
                put_scopes(&mut out, &new.scopes);
                put_named(&mut out, &new.scopes);
                put_opt_u64(&mut out, new.parent.map(TokenId::as_u64));
                put_opt_digest(&mut out, new.parent_secret.as_ref());
                put_u64(&mut out, now.as_unix_secs());
                // Protocol 4: the metadata, the address rule, the rate, the
                // use quota.
                put_meta(&mut out, &new.meta);
                put_networks(&mut out, &new.allow_from);
                match new.rate {
                    None => out.push(0),
                    Some(rate) => {
                        out.push(1);
                        put_rate(&mut out, rate);
                    }
                }
                match new.max_uses {
                    None => out.push(0),
                    Some(max) => {
                        out.push(1);
                        out.extend_from_slice(&max.to_le_bytes());
                    }
                }
            }
            Request::List {
                user,
                include_expired,
                now,
            } => {
                out.push(2);
                match user {
                    None => out.push(0),
                    Some(u) => {
                        out.push(1);
                        put_str(&mut out, u);
                    }
                }
                out.push(u8::from(*include_expired));
                put_u64(&mut out, now.as_unix_secs());
            }
            Request::Get(id) => {
                out.push(3);
                put_u64(&mut out, id.as_u64());
            }
            Request::Revoke(id) => {
                out.push(4);
                put_u64(&mut out, id.as_u64());
            }
            Request::RevokeUser(user) => {
                out.push(5);
                put_str(&mut out, user);
            }
            Request::Prune(now) => {
                out.push(6);
                put_u64(&mut out, now.as_unix_secs());
            }
            Request::Rotate { id, rotation, now } => {
                out.push(7);
                put_u64(&mut out, id.as_u64());
                match &rotation.expiry {
                    None => out.push(0),
                    Some(policy) => {
                        out.push(1);
                        put_policy(&mut out, policy);
                    }
                }
                put_secs(&mut out, rotation.grace);
                out.push(u8::from(rotation.resets_lifetime));
                put_opt_digest(&mut out, rotation.presented.as_ref());
                put_u64(&mut out, now.as_unix_secs());
            }
            Request::GetPolicy => out.push(8),
            Request::SetPolicy(policy) => {
                out.push(9);
                put_policy_limits(&mut out, policy);
            }
            Request::Find { digest, now } => {
                out.push(11);
                out.extend_from_slice(digest.as_bytes());
                put_u64(&mut out, now.as_unix_secs());
            }
            Request::Descendants(id) => {
                out.push(12);
                put_u64(&mut out, id.as_u64());
            }
            Request::GetPrefixes => out.push(13),
            Request::GetPermissions => out.push(15),
            Request::DefinePermissions(defs) => {
                out.push(16);
                put_permissions(&mut out, defs);
            }
            Request::RemovePermission { name, force } => {
                out.push(17);
                put_str(&mut out, name.as_str());
                out.push(u8::from(*force));
            }
            Request::Disable(id) => {
                out.push(18);
                put_u64(&mut out, id.as_u64());
            }
            Request::Enable(id) => {
                out.push(19);
                put_u64(&mut out, id.as_u64());
            }
            Request::Deliveries => out.push(20),
            Request::Resend { sink, seq } => {
                out.push(21);
                put_str(&mut out, sink);
                put_u64(&mut out, *seq);
            }
            Request::SetPrefix(prefix) => {
                out.push(14);
                put_str(&mut out, prefix.as_str());
            }
            Request::Audit { since, user } => {
                out.push(10);
                put_u64(&mut out, since.as_unix_secs());
                match user {
                    None => out.push(0),
                    Some(u) => {
                        out.push(1);
                        put_str(&mut out, u);
                    }
                }
            }
        }
        out
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Request, String> {
        let mut r = Reader(body);
        let version = r.u8("protocol version")?;
        if version != PROTOCOL_VERSION {
            return Err(format!(
                "unsupported protocol version {version} (this service speaks {PROTOCOL_VERSION})"
            ));
        }
        let req = match r.u8("operation")? {
            0 => Request::Hello,
            1 => {
                let user = r.string("user")?;
                let label = r.string("label")?;
                let created_by = r.string("created_by")?;
                let expiry = read_policy(&mut r)?;
                let scopes = r.scopes()?;
                let scopes = r.named(scopes)?;
                let mut new = NewToken::new(user, expiry)
                    .label(label)
                    .created_by(created_by)
                    .scopes(scopes);
                new.parent = r.opt_u64("parent")?.map(TokenId::from_u64);
                new.parent_secret = read_opt_digest(&mut r, "parent secret")?;
                let now = r.timestamp("now")?;
                new.meta = r.meta()?;
                new.allow_from = r.networks()?;
                new.rate = match r.u8("rate flag")? {
                    0 => None,
                    1 => Some(r.rate()?),
                    f => return Err(format!("bad rate flag {f}")),
                };
                new.max_uses = match r.u8("quota flag")? {
                    0 => None,
                    1 => Some(r.u32("use quota")?),
                    f => return Err(format!("bad quota flag {f}")),
                };
                Request::Create { new, now }
            }
            2 => {
                let user = match r.u8("user flag")? {
                    0 => None,
                    1 => Some(r.string("user")?),
                    f => return Err(format!("bad user flag {f}")),
                };
                let include_expired = match r.u8("include_expired")? {
                    0 => false,
                    1 => true,
                    f => return Err(format!("bad include_expired flag {f}")),
                };
                Request::List {
                    user,
                    include_expired,
                    now: r.timestamp("now")?,
                }
            }
            3 => Request::Get(TokenId::from_u64(r.u64("id")?)),
            4 => Request::Revoke(TokenId::from_u64(r.u64("id")?)),
            5 => Request::RevokeUser(r.string("user")?),
            6 => Request::Prune(r.timestamp("now")?),
            7 => {
                let id = TokenId::from_u64(r.u64("id")?);
                let mut rotation = Rotation::new();
                let expiry = match r.u8("expiry flag")? {
                    0 => None,
                    1 => Some(read_policy(&mut r)?),
                    f => return Err(format!("bad expiry flag {f}")),
                };
                rotation = rotation.grace(Duration::from_secs(r.u64("grace")?));
                rotation = match (expiry, r.u8("new lifetime flag")?) {
                    (None, 0) => rotation,
                    (Some(policy), 0) => rotation.expiry(policy),
                    (Some(policy), 1) => rotation.new_lifetime(policy),
                    (_, f) => return Err(format!("bad new lifetime flag {f}")),
                };
                rotation.presented = read_opt_digest(&mut r, "presented secret")?;
                Request::Rotate {
                    id,
                    rotation,
                    now: r.timestamp("now")?,
                }
            }
            8 => Request::GetPolicy,
            9 => Request::SetPolicy(read_policy_limits(&mut r)?),
            11 => Request::Find {
                digest: TokenDigest::from_bytes(r.array("digest")?),
                now: r.timestamp("now")?,
            },
            12 => Request::Descendants(TokenId::from_u64(r.u64("id")?)),
            13 => Request::GetPrefixes,
            14 => Request::SetPrefix(read_prefix(&mut r)?),
            15 => Request::GetPermissions,
            16 => Request::DefinePermissions(read_permissions(&mut r)?),
            17 => Request::RemovePermission {
                name: Permission::new(&r.string("permission")?).map_err(|e| e.to_string())?,
                force: match r.u8("force flag")? {
                    0 => false,
                    1 => true,
                    f => return Err(format!("bad force flag {f}")),
                },
            },
            18 => Request::Disable(TokenId::from_u64(r.u64("id")?)),
            19 => Request::Enable(TokenId::from_u64(r.u64("id")?)),
            20 => Request::Deliveries,
            21 => Request::Resend {
                sink: r.string("webhook")?,
                seq: r.u64("event")?,
            },
            10 => {
                let since = r.timestamp("since")?;
                let user = match r.u8("user flag")? {
                    0 => None,
                    1 => Some(r.string("user")?),
                    f => return Err(format!("bad user flag {f}")),
                };
                Request::Audit { since, user }
            }
            op => return Err(format!("unknown operation {op}")),
        };
        r.finish()?;
        Ok(req)
    }
}

/// `u8` kind (0 hard, 1 sliding), then the lifetime, or the window and an
/// optional cap, in seconds.
fn put_policy(out: &mut Vec<u8>, policy: &ExpiryPolicy) {
    match *policy {
        ExpiryPolicy::Hard { lifetime } => {
            out.push(0);
            put_secs(out, lifetime);
        }
        ExpiryPolicy::Sliding {
            window,
            max_lifetime,
        } => {
            out.push(1);
            put_secs(out, window);
            put_opt_u64(out, max_lifetime.map(|d| d.as_secs()));
        }
    }
}

fn read_policy(r: &mut Reader<'_>) -> Result<ExpiryPolicy, String> {
    Ok(match r.u8("expiry kind")? {
        0 => ExpiryPolicy::hard(Duration::from_secs(r.u64("lifetime")?)),
        1 => ExpiryPolicy::sliding(
            Duration::from_secs(r.u64("window")?),
            r.opt_u64("max_lifetime")?.map(Duration::from_secs),
        ),
        k => return Err(format!("unknown expiry kind {k}")),
    })
}

/// Each limit as an optional `u64` (seconds, or a count).
fn put_policy_limits(out: &mut Vec<u8>, policy: &Policy) {
    for (_, value) in policy.to_pairs() {
        put_opt_u64(out, value);
    }
}

fn read_policy_limits(r: &mut Reader<'_>) -> Result<Policy, String> {
    let mut values = std::collections::HashMap::new();
    for key in crate::model::policy::KEYS {
        if let Some(v) = r.opt_u64(key)? {
            values.insert(key, v);
        }
    }
    Ok(Policy::from_pairs(|key| values.get(key).copied()))
}

fn put_record(out: &mut Vec<u8>, info: &TokenInfo) {
    let record = codec::encode(info);
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    out.extend_from_slice(&record);
}

fn record(r: &mut Reader<'_>) -> Result<TokenInfo, String> {
    let n = r.u32("record length")? as usize;
    codec::decode(r.take(n, "record")?)
}

/// Encodes a reply body.
pub(crate) fn encode_reply(reply: &Result<Reply, Failure>) -> Vec<u8> {
    let mut out = vec![PROTOCOL_VERSION];
    match reply {
        Ok(reply) => {
            out.push(0);
            match reply {
                Reply::Hello { pid } => {
                    out.push(0);
                    out.extend_from_slice(&pid.to_le_bytes());
                }
                Reply::Created(created) => {
                    out.push(1);
                    put_str(&mut out, created.secret.expose_secret());
                    put_record(&mut out, &created.info);
                }
                Reply::Tokens(list) => {
                    out.push(2);
                    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
                    for info in list {
                        put_record(&mut out, info);
                    }
                }
                Reply::Token(info) => {
                    out.push(3);
                    put_record(&mut out, info);
                }
                Reply::Count(n) => {
                    out.push(4);
                    put_u64(&mut out, *n);
                }
                Reply::Policy(policy) => {
                    out.push(5);
                    put_policy_limits(&mut out, policy);
                }
                Reply::Found(found) => {
                    out.push(7);
                    match found {
                        None => out.push(0),
                        Some(info) => {
                            out.push(1);
                            put_record(&mut out, info);
                        }
                    }
                }
                Reply::Prefixes(prefixes) => {
                    out.push(8);
                    out.extend_from_slice(&(prefixes.len() as u32).to_le_bytes());
                    for prefix in prefixes {
                        put_str(&mut out, prefix.as_str());
                    }
                }
                Reply::Permissions(defs) => {
                    out.push(9);
                    put_permissions(&mut out, defs);
                }
                Reply::Deliveries(all) => {
                    out.push(11);
                    out.extend_from_slice(&(all.len() as u32).to_le_bytes());
                    for (name, d) in all {
                        put_str(&mut out, name);
                        let state = d.encode();
                        out.extend_from_slice(&(state.len() as u32).to_le_bytes());
                        out.extend_from_slice(&state);
                    }
                }
                Reply::Removal(removal) => {
                    out.push(10);
                    put_u64(&mut out, removal.narrowed as u64);
                    put_u64(&mut out, removal.revoked as u64);
                }
                Reply::Audit(entries) => {
                    out.push(6);
                    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
                    for e in entries {
                        let bytes = codec::encode_audit(e);
                        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        out.extend_from_slice(&bytes);
                        put_u64(&mut out, e.seq);
                    }
                }
            }
        }
        Err(failure) => {
            out.push(1);
            match failure {
                Failure::NotFound(id) => {
                    out.push(1);
                    put_u64(&mut out, id.as_u64());
                }
                Failure::Message(m) => {
                    out.push(2);
                    put_str(&mut out, m);
                }
            }
        }
    }
    out
}

/// Decodes a reply body.
pub(crate) fn decode_reply(body: &[u8]) -> Result<Result<Reply, Failure>, String> {
    let mut r = Reader(body);
    let version = r.u8("protocol version")?;
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "the service speaks protocol version {version}, this build {PROTOCOL_VERSION}"
        ));
    }
    let out = match (r.u8("status")?, r.u8("kind")?) {
        (0, 0) => Ok(Reply::Hello { pid: r.u32("pid")? }),
        (0, 1) => {
            let secret = r.string("token")?;
            let secret = TokenSecret::parse(&secret).map_err(|e| e.to_string())?;
            Ok(Reply::Created(CreatedToken {
                secret,
                info: record(&mut r)?,
            }))
        }
        (0, 2) => {
            let n = r.u32("count")? as usize;
            let mut list = Vec::with_capacity(n.min(r.0.len() / 4));
            for _ in 0..n {
                list.push(record(&mut r)?);
            }
            Ok(Reply::Tokens(list))
        }
        (0, 3) => Ok(Reply::Token(record(&mut r)?)),
        (0, 4) => Ok(Reply::Count(r.u64("count")?)),
        (0, 5) => Ok(Reply::Policy(read_policy_limits(&mut r)?)),
        (0, 7) => Ok(Reply::Found(match r.u8("found flag")? {
            0 => None,
            1 => Some(record(&mut r)?),
            f => return Err(format!("bad found flag {f}")),
        })),
        (0, 6) => {
            let n = r.u32("count")? as usize;
            let mut entries = Vec::with_capacity(n.min(r.0.len() / 4));
            for _ in 0..n {
                let len = r.u32("entry length")? as usize;
                let entry = codec::decode_audit(r.take(len, "audit entry")?)?;
                entries.push(entry.at_seq(r.u64("audit place")?));
            }
            Ok(Reply::Audit(entries))
        }
        (0, 8) => {
            let n = r.u32("count")? as usize;
            let mut prefixes = Vec::with_capacity(n.min(crate::MAX_PREFIXES));
            for _ in 0..n {
                prefixes.push(read_prefix(&mut r)?);
            }
            Ok(Reply::Prefixes(prefixes))
        }
        (0, 9) => Ok(Reply::Permissions(read_permissions(&mut r)?)),
        (0, 11) => {
            let n = r.u32("count")? as usize;
            let mut all = Vec::with_capacity(n.min(r.0.len() / 8));
            for _ in 0..n {
                let name = r.string("webhook")?;
                let len = r.u32("state length")? as usize;
                let state = crate::Delivery::decode(r.take(len, "delivery state")?)?;
                all.push((name, state));
            }
            Ok(Reply::Deliveries(all))
        }
        (0, 10) => Ok(Reply::Removal(PermissionRemoval::new(
            r.u64("narrowed")? as usize,
            r.u64("revoked")? as usize,
        ))),
        (1, 1) => Err(Failure::NotFound(TokenId::from_u64(r.u64("id")?))),
        (1, 2) => Err(Failure::Message(r.string("message")?)),
        (s, k) => return Err(format!("unknown reply {s}/{k}")),
    };
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::scope::{NodeId, Perm, Scope, Scopes};
    use proptest::prelude::*;

    #[test]
    fn requests_round_trip() {
        let now = Timestamp::from_unix_secs(1_000).unwrap();
        let scopes: Scopes = [Scope {
            node: NodeId::from_bytes([3; 16]),
            perm: Perm::READ_WRITE,
        }]
        .into_iter()
        .collect();
        let new = NewToken::new(
            "alice",
            ExpiryPolicy::sliding(Duration::from_secs(60), Some(Duration::from_secs(600))),
        )
        .label("l")
        .created_by("root")
        .scopes(scopes)
        .meta(crate::Metadata::new([("team", "payments"), ("ticket", "OPS-1")]).unwrap())
        .allow_from([
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ])
        .rate("100/m".parse().unwrap())
        .max_uses(3);
        let reqs = [
            Request::Hello,
            Request::Create {
                new: new.clone(),
                now,
            },
            Request::Create {
                new: NewToken::new("bob", ExpiryPolicy::hard(Duration::from_secs(5))),
                now,
            },
            Request::Create {
                new: NewToken::new("bob", ExpiryPolicy::hard(Duration::from_secs(5))).child_of(
                    &crate::Identity::new(&new.to_info(TokenId::from_u64(3), now).unwrap(), now)
                        .presented_as(TokenSecret::generate().digest()),
                ),
                now,
            },
            Request::List {
                user: Some("alice".into()),
                include_expired: true,
                now,
            },
            Request::List {
                user: None,
                include_expired: false,
                now,
            },
            Request::Get(TokenId::from_u64(7)),
            Request::Revoke(TokenId::from_u64(8)),
            Request::RevokeUser("carol".into()),
            Request::Prune(now),
            Request::Rotate {
                id: TokenId::from_u64(9),
                rotation: Rotation::new(),
                now,
            },
            Request::Rotate {
                id: TokenId::from_u64(10),
                rotation: Rotation::new()
                    .grace(Duration::from_secs(60))
                    .expiry(ExpiryPolicy::sliding(Duration::from_secs(5), None)),
                now,
            },
            Request::Rotate {
                id: TokenId::from_u64(11),
                rotation: Rotation::new().presented(
                    &crate::Identity::new(&new.to_info(TokenId::from_u64(11), now).unwrap(), now)
                        .presented_as(TokenSecret::generate().digest()),
                ),
                now,
            },
            Request::GetPolicy,
            Request::Find {
                digest: TokenSecret::generate().digest(),
                now,
            },
            Request::Audit {
                since: now,
                user: Some("dave".into()),
            },
            Request::Audit {
                since: now,
                user: None,
            },
            Request::GetPrefixes,
            Request::Disable(TokenId::from_u64(12)),
            Request::Enable(TokenId::from_u64(13)),
            Request::Deliveries,
            Request::Resend {
                sink: "https://hooks.example/pat".into(),
                seq: 42,
            },
            Request::SetPrefix("acme".parse().unwrap()),
            Request::SetPolicy(Policy::NONE),
            Request::SetPolicy(
                Policy::NONE
                    .max_lifetime(Some(Duration::from_secs(86_400)))
                    .max_tokens_per_user(Some(3)),
            ),
        ];
        for req in reqs {
            let back = Request::decode(&req.encode()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{req:?}"));
        }
    }

    /// The listing of a million typical tokens fits in one reply (at the
    /// old 64 MiB limit, `token list` through the socket failed at about
    /// 800,000).
    #[test]
    fn a_million_tokens_fit_in_one_reply() {
        let now = Timestamp::from_unix_secs(1_700_000_000).unwrap();
        let info = NewToken::new(
            "user591769",
            ExpiryPolicy::hard(Duration::from_secs(86_400)),
        )
        .created_by("root")
        .to_info(TokenId::from_u64(u64::MAX), now)
        .unwrap();
        let one = encode_reply(&Ok(Reply::Tokens(vec![info.clone()]))).len();
        let two = encode_reply(&Ok(Reply::Tokens(vec![info.clone(), info]))).len();
        let per_token = two - one;
        assert!(
            one + 1_000_000 * per_token < MAX_REPLY / 4,
            "{per_token} bytes per token"
        );
    }

    #[test]
    fn audit_places_and_deliveries_cross_the_socket() {
        let at = Timestamp::from_unix_secs(1_800_000_000).unwrap();
        let entry = AuditEntry::new(
            at,
            crate::AuditAction::Create,
            Some(TokenId::from_u64(3)),
            "alice",
            "root",
            "ok",
        )
        .at_seq(77);
        let Ok(Reply::Audit(back)) =
            decode_reply(&encode_reply(&Ok(Reply::Audit(vec![entry.clone()])))).unwrap()
        else {
            panic!("not an audit reply")
        };
        assert_eq!(back, std::slice::from_ref(&entry));
        let event = crate::Event::from_audit(&entry).unwrap();
        let (state, _) = crate::Delivery::default().failed_attempt(
            &event,
            "503",
            Some(503),
            at,
            &crate::RetryPolicy::default(),
        );
        let all = vec![("https://hooks.example/a".to_owned(), state)];
        let Ok(Reply::Deliveries(back)) =
            decode_reply(&encode_reply(&Ok(Reply::Deliveries(all.clone())))).unwrap()
        else {
            panic!("not a deliveries reply")
        };
        assert_eq!(back, all);
    }

    #[test]
    fn frames_over_the_limit_are_refused_before_reading_them() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let e = read_frame(&mut input, MAX_REQUEST).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, MAX_REQUEST).unwrap().is_none());
        let mut short: &[u8] = &[0, 0, 0, 9, 1];
        assert!(read_frame(&mut short, MAX_REQUEST).is_err());
    }

    #[test]
    fn other_versions_are_refused_with_a_reason() {
        let e = Request::decode(&[PROTOCOL_VERSION + 1, 0]).unwrap_err();
        let said = format!("unsupported protocol version {}", PROTOCOL_VERSION + 1);
        assert!(e.contains(&said), "{e}");
        assert!(
            Request::decode(&[PROTOCOL_VERSION - 1, 0]).is_err(),
            "nor older"
        );
        assert!(decode_reply(&[9, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_requests_and_replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Request::decode(&bytes);
            let _ = decode_reply(&bytes);
            let mut with_version = vec![PROTOCOL_VERSION];
            with_version.extend_from_slice(&bytes);
            let _ = Request::decode(&with_version);
            let _ = decode_reply(&with_version);
        }
    }
}
