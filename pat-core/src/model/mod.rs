//! The token model: the format, scopes, expiry, records, the store policy,
//! audit entries, time and the text rules every output follows. No I/O.

pub(crate) mod audit;
pub(crate) mod delivery;
pub(crate) mod event;
pub(crate) mod expiry;
pub(crate) mod metadata;
pub(crate) mod network;
pub(crate) mod notice;
pub(crate) mod permission;
pub(crate) mod policy;
pub(crate) mod prefix;
pub(crate) mod rate;
pub(crate) mod record;
pub mod scanning;
pub(crate) mod scope;
#[cfg(feature = "serde")]
mod serde;
pub(crate) mod text;
pub(crate) mod time;
pub(crate) mod token;
