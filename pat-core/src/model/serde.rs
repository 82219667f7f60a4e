//! The JSON (or any serde format) shape of what a handler hands on, with
//! the `serde` feature: each value as the string the CLI and the reference
//! servers print, so the shape is stable and needs no schema.
//!
//! | type | serialized as |
//! |---|---|
//! | [`Identity`] | `{"user": "alice", "token_id": "505bcfcab54de539", "scopes": ["node:…:r"], "expires_at": "2026-12-01T16:03:59Z", "meta": {"team": "payments"}}`, what the reference servers' `/whoami` answers |
//! | [`Metadata`] | an object of strings, `{}` when empty |
//! | [`Scopes`] | an array of scopes, node scopes then named permissions as carried (`["node:…:r", "repo:*"]`), `[]` when unrestricted |
//! | [`Scope`] | `"node:0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a:rw"` |
//! | [`NodeId`] | `"0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a"` |
//! | [`Perm`] | `"r"`, `"w"` or `"rw"` |
//! | [`TokenId`] | `"505bcfcab54de539"` (16 hex digits) |
//! | [`Timestamp`] | `"2026-12-01T16:03:59Z"` (RFC 3339, UTC, seconds) |
//!
//! Serialization only: an identity is made by the gate, never read from a
//! client.

use serde::ser::{Serialize, SerializeSeq as _, SerializeStruct as _, Serializer};

use crate::model::metadata::Metadata;
use crate::model::permission::Permission;
use crate::model::record::Identity;
use crate::model::scope::{NodeId, Perm, Scope, Scopes, TokenScope};
use crate::model::time::Timestamp;
use crate::model::token::TokenId;

/// Serializes as its `Display` string.
macro_rules! as_display {
    ($($ty:ty),*) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    )*};
}

as_display!(
    TokenId, Timestamp, Scope, NodeId, Perm, Permission, TokenScope
);

impl Serialize for Scopes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.iter().len() + self.named().len()))?;
        for scope in self.entries() {
            seq.serialize_element(&scope)?;
        }
        seq.end()
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Identity", 5)?;
        s.serialize_field("user", self.user())?;
        s.serialize_field("token_id", &self.token_id())?;
        s.serialize_field("scopes", self.scopes())?;
        s.serialize_field("expires_at", &self.expires_at())?;
        s.serialize_field("meta", self.meta())?;
        s.end()
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use crate::{Identity, NodeId, Perm, Scope, Scopes, Timestamp, TokenInfo};

    #[test]
    fn the_shape_is_the_printed_strings() {
        let node = NodeId::parse("0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a").unwrap();
        let scopes: Scopes = [Scope {
            node,
            perm: Perm::READ_WRITE,
        }]
        .into_iter()
        .collect();
        let at = Timestamp::from_unix_secs(1_796_140_800).unwrap();
        let id: crate::TokenId = "505bcfcab54de539".parse().unwrap();
        let expiry = crate::ExpiryPolicy::hard(std::time::Duration::from_secs(60))
            .start(at)
            .unwrap();
        let mut info = TokenInfo::new(id, "alice", at, expiry);
        info.scopes = scopes;
        info.meta = crate::Metadata::new([("team", "payments")]).unwrap();
        let identity = Identity::new(&info, at);
        let json = serde_json::to_value(&identity).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "user": "alice",
                "token_id": "505bcfcab54de539",
                "scopes": ["node:0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a:rw"],
                "expires_at": "2026-12-01T16:00:00Z",
                "meta": {"team": "payments"},
            })
        );
        assert_eq!(
            serde_json::to_value(Scopes::unrestricted()).unwrap(),
            serde_json::json!([])
        );
        assert_eq!(serde_json::to_value(Perm::READ).unwrap(), "r");
    }
}
