//! The decisions of the reference servers' HTTP contract, shared by both
//! servers and by the in-process tests (all include this file with
//! `#[path]`). Each server only turns these into its framework's responses.

use pat_core::{Identity, NodeId, Perm};

/// The answer to `GET` (read) or `PUT` (write) on `/nodes/{id}`.
pub(crate) enum NodeAnswer {
    /// 200 `ok` (read allowed).
    Ok,
    /// 204, no body (write allowed).
    NoContent,
    /// 403 `forbidden`.
    Forbidden,
    /// 400 `invalid node id`.
    BadRequest,
}

/// Decides `/nodes/{id}`: the chain is just the node itself.
pub(crate) fn node_answer(identity: &Identity, id: &str, perm: Perm) -> NodeAnswer {
    match NodeId::parse(id) {
        None => NodeAnswer::BadRequest,
        Some(node) if !identity.permits([&node], perm) => NodeAnswer::Forbidden,
        Some(_) if perm == Perm::WRITE => NodeAnswer::NoContent,
        Some(_) => NodeAnswer::Ok,
    }
}

/// The `/whoami` body: the identity as it serializes (pat-core's `serde`
/// feature), so the contract pins that shape.
pub(crate) fn whoami_json(identity: &Identity) -> serde_json::Value {
    serde_json::json!(identity)
}
