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

/// The permissions the reference servers declare in their store's catalog
/// when they start: `demo:read`, `demo:write` (which implies `demo:read`),
/// `demo:admin` (which implies `demo:write`) and `demo:export`.
pub(crate) fn permissions() -> Vec<pat_core::PermissionDef> {
    let name = |s: &str| {
        s.parse::<pat_core::Permission>()
            .expect("a permission name")
    };
    vec![
        pat_core::PermissionDef::new(name("demo:read")).description("Read the demo's records"),
        pat_core::PermissionDef::new(name("demo:write"))
            .description("Change the demo's records")
            .implies(name("demo:read")),
        pat_core::PermissionDef::new(name("demo:admin"))
            .description("Administer the demo")
            .implies(name("demo:write")),
        pat_core::PermissionDef::new(name("demo:export")).description("Export the demo's records"),
    ]
}

/// The routes that need a named permission: `GET /demo/read` needs
/// `demo:read`, `GET /demo/write` needs `demo:write`; each answers 200 `ok`
/// to a token that holds it (an unscoped one holds every permission), 403
/// `insufficient_scope` to one that does not.
pub(crate) const GUARDED: [(&str, &str); 2] =
    [("/demo/read", "demo:read"), ("/demo/write", "demo:write")];

/// The `/whoami` body: the identity as it serializes (pat-core's `serde`
/// feature), so the contract pins that shape.
pub(crate) fn whoami_json(identity: &Identity) -> serde_json::Value {
    serde_json::json!(identity)
}
