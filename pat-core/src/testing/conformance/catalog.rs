//! The contract cases of named permissions: the catalog kept and checked,
//! what tokens hold (implications and wildcards, resolved again when the
//! catalog changes), removal, and the authority rule over names.

use crate::{
    AuditAction, AuthError, CatalogError, Identity, NodeId, Perm, Permission, PermissionDef,
    PermissionRemoval, Scopes, StoreError, Timestamp, TokenScope,
};

use super::Backend;
use super::harness::{MIN, auth, create, hard};

fn name(s: &str) -> Permission {
    s.parse().expect("a permission")
}

fn def(n: &str, implies: &[&str]) -> PermissionDef {
    implies
        .iter()
        .fold(PermissionDef::new(name(n)), |d, i| d.implies(name(i)))
}

/// Scopes of these names (`node:` ones as node scopes).
fn scopes(list: &[&str]) -> Scopes {
    list.iter()
        .map(|s| s.parse::<TokenScope>().expect("a scope"))
        .collect()
}

fn audited(b: &dyn Backend, action: AuditAction) -> Vec<String> {
    b.audit(Timestamp::UNIX_EPOCH, None)
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == action)
        .map(|e| e.outcome)
        .collect()
}

fn catalog_error(r: Result<impl std::fmt::Debug, StoreError>) -> CatalogError {
    match r {
        Err(StoreError::Catalog(e)) => e,
        other => panic!("expected a catalog error, got {other:?}"),
    }
}

const NODE: NodeId = NodeId::from_bytes([7; 16]);

/// The catalog every case starts from; `false` when the backend keeps
/// none (it says so, [`CatalogError::Fixed`], and the case has nothing
/// more to check).
fn defined(b: &dyn Backend) -> bool {
    let defs = [
        def("read_api", &[]),
        def("api", &["read_api"]),
        def("repo:read", &[]),
        def("repo:write", &["repo:read"]),
    ];
    match b.define_permissions(&defs) {
        Err(StoreError::Catalog(CatalogError::Fixed)) => {
            assert!(b.permissions().expect("permissions").is_empty());
            false
        }
        r => {
            assert!(r.expect("define"), "a change");
            true
        }
    }
}

/// Definitions are kept, checked as a whole and audited; a token carries
/// catalog names only, and holds what they imply and what its wildcards
/// stand for, and no node.
pub(super) fn catalog_and_holdings(b: &dyn Backend) {
    if !defined(b) {
        return;
    }
    let catalog = b.permissions().expect("permissions");
    assert_eq!(catalog.len(), 4);
    assert_eq!(catalog.get("api").expect("api").implies, [name("read_api")]);
    assert_eq!(audited(b, AuditAction::DefinePermission).len(), 4);
    assert!(
        !b.define_permissions(&[def("api", &["read_api"])])
            .expect("again"),
        "the same definition changes nothing"
    );
    assert_eq!(audited(b, AuditAction::DefinePermission).len(), 4);
    let cycle = catalog_error(b.define_permissions(&[def("read_api", &["api"])]));
    assert!(matches!(cycle, CatalogError::Cycle { .. }), "{cycle}");
    assert_eq!(b.permissions().expect("permissions"), catalog, "unchanged");

    let t = create(b, &hard("alice", MIN).scopes(scopes(&["api", "repo:*"])), 0);
    let who = auth(b, &t.secret, 1).expect("alice");
    for held in ["api", "read_api", "repo:read", "repo:write"] {
        assert!(who.has_scope(held), "{held}");
    }
    assert!(!who.has_scope("admin") && !who.has_scope("repo:*"));
    assert!(!who.permits([&NODE], Perm::READ), "no node scope, no node");
    let listed = b.get(t.info.id).expect("get");
    assert_eq!(
        listed.scopes.named(),
        [name("api"), name("repo:*")],
        "as written"
    );
    // A rotation keeps them.
    let rotated = b
        .rotate(t.info.id, &crate::Rotation::new(), super::harness::at(2))
        .expect("rotate");
    let who = auth(b, &rotated.secret, 3).expect("the new secret");
    assert!(who.has_scope("read_api") && who.has_scope("repo:write"));
    assert_eq!(rotated.info.scopes, listed.scopes);

    let typo = catalog_error(b.create(&hard("alice", MIN).scopes(scopes(&["repo:raed"])), t0()));
    assert!(
        matches!(&typo, CatalogError::Unknown { name, close } if name == "repo:raed" && close.contains(&"repo:read".to_owned())),
        "{typo}"
    );
    let none = catalog_error(b.create(&hard("alice", MIN).scopes(scopes(&["org:*"])), t0()));
    assert!(matches!(none, CatalogError::NoMatch { .. }), "{none}");
    // Both kinds in one token.
    let node = format!("node:{NODE}:r");
    let both = create(
        b,
        &hard("alice", MIN).scopes(scopes(&["repo:read", &node])),
        0,
    );
    let who = auth(b, &both.secret, 1).expect("both kinds");
    assert!(who.has_scope("repo:read") && !who.has_scope("repo:write"));
    assert!(who.permits([&NODE], Perm::READ) && !who.permits([&NODE], Perm::WRITE));
    // No scope at all: every permission, every node.
    let plain = create(b, &hard("alice", MIN), 0);
    let who = auth(b, &plain.secret, 1).expect("plain");
    assert!(who.has_scope("anything") && who.permits([&NODE], Perm::READ_WRITE));
}

fn t0() -> Timestamp {
    super::harness::at(0)
}

/// A change of the catalog changes what tokens hold at once, cached ones
/// included: a new name under a wildcard, a new implication.
pub(super) fn catalog_changes_reach_tokens(b: &dyn Backend) {
    if !defined(b) {
        return;
    }
    let t = create(
        b,
        &hard("alice", MIN).scopes(scopes(&["repo:*", "read_api"])),
        0,
    );
    let before = auth(b, &t.secret, 1).expect("alice");
    assert!(!before.has_scope("repo:admin") && !before.has_scope("read_repository"));
    b.define_permissions(&[
        def("repo:admin", &[]),
        def("read_repository", &[]),
        def("read_api", &["read_repository"]),
    ])
    .expect("define");
    let after = auth(b, &t.secret, 2).expect("alice");
    assert!(
        after.has_scope("repo:admin"),
        "the wildcard stands for the new name"
    );
    assert!(
        after.has_scope("read_repository"),
        "the new implication counts"
    );
    // And an implication taken away is taken away.
    b.define_permissions(&[def("read_api", &[])])
        .expect("define");
    let again = auth(b, &t.secret, 3).expect("alice");
    assert!(!again.has_scope("read_repository") && again.has_scope("read_api"));
}

/// Removing a name: refused while another implies it or live tokens carry
/// it (expired ones do not count, but lose it too); by force, the tokens
/// lose it, and one left with no scope is revoked with the tokens made
/// with it, never widened to unrestricted.
pub(super) fn removal(b: &dyn Backend) {
    if !defined(b) {
        return;
    }
    // Live by the clock a removal counts with (created in 1970).
    let long = std::time::Duration::from_secs(200 * 365 * 86_400);
    let node = format!("node:{NODE}:r");
    let kept = create(
        b,
        &hard("alice", long).scopes(scopes(&["repo:read", &node])),
        0,
    );
    let only = create(b, &hard("bob", long).scopes(scopes(&["repo:read"])), 0);
    let as_presented = |t: &crate::CreatedToken| {
        Identity::new(&t.info, t.info.expiry.expires_at()).presented_as(t.secret.digest())
    };
    let child = create(
        b,
        &hard("bob", long - MIN)
            .scopes(scopes(&["repo:read"]))
            .child_of(&as_presented(&only)),
        1,
    );
    let expired = create(b, &hard("carol", MIN).scopes(scopes(&["repo:write"])), 0);

    let implied = catalog_error(b.remove_permission(&name("read_api"), false));
    assert!(
        matches!(&implied, CatalogError::Implied { by, .. } if by == &["api".to_owned()]),
        "{implied}"
    );
    let implied = catalog_error(b.remove_permission(&name("repo:read"), false));
    assert!(matches!(implied, CatalogError::Implied { .. }), "{implied}");

    // Carried by an expired token alone: no refusal, and that token,
    // left with no scope, goes.
    let removal = b
        .remove_permission(&name("repo:write"), false)
        .expect("only an expired token carries it");
    assert_eq!(removal, PermissionRemoval::new(0, 1));
    assert!(b.get(expired.info.id).is_err());

    let in_use = catalog_error(b.remove_permission(&name("repo:read"), false));
    assert!(
        matches!(in_use, CatalogError::InUse { tokens: 3, .. }),
        "{in_use}"
    );
    assert!(b.permissions().expect("permissions").contains("repo:read"));
    auth(b, &only.secret, 2).expect("nothing changed");

    let removal = b
        .remove_permission(&name("repo:read"), true)
        .expect("by force");
    assert_eq!(removal, PermissionRemoval::new(1, 2));
    assert!(!b.permissions().expect("permissions").contains("repo:read"));
    assert_eq!(
        audited(b, AuditAction::RemovePermission),
        ["repo:write", "repo:read"]
    );
    assert_eq!(audited(b, AuditAction::LosePermission), ["repo:read"]);
    let who = auth(b, &kept.secret, 3).expect("kept, narrower");
    assert!(!who.has_scope("repo:read") && who.permits([&NODE], Perm::READ));
    assert!(!who.has_scope("anything"), "still scoped");
    assert!(b.get(kept.info.id).expect("get").scopes.named().is_empty());
    for gone in [&only, &child] {
        assert!(
            matches!(auth(b, &gone.secret, 3), Err(AuthError::Unknown)),
            "a token left with no scope is revoked, and its children with it"
        );
    }
    assert!(matches!(
        catalog_error(b.remove_permission(&name("repo:read"), true)),
        CatalogError::Unknown { .. }
    ));
}

/// The authority rule over names: a child holds at most what its parent
/// holds, implications counted, and a wildcard only under a parent's
/// wildcard that covers it.
pub(super) fn children_hold_no_more(b: &dyn Backend) {
    if !defined(b) {
        return;
    }
    let parent_of = |list: &[&str]| {
        let t = create(b, &hard("dave", MIN).scopes(scopes(list)), 0);
        Identity::new(&t.info, t.info.expiry.expires_at()).presented_as(t.secret.digest())
    };
    let child = |parent: &Identity, list: &[&str]| {
        b.create(
            &hard("dave", MIN).scopes(scopes(list)).child_of(parent),
            t0(),
        )
    };
    let api = parent_of(&["api"]);
    let via_api = child(&api, &["read_api"]).expect("implied by the parent's");
    child(&api, &["api"]).expect("the parent's own");
    for wider in [&["repo:read"][..], &["repo:*"], &[]] {
        assert!(
            matches!(child(&api, wider), Err(StoreError::Authority(_))),
            "{wider:?} from a parent holding api"
        );
    }
    let repo = parent_of(&["repo:*"]);
    child(&repo, &["repo:write", "repo:read"]).expect("under the wildcard");
    child(&repo, &["repo:*"]).expect("the same wildcard");
    assert!(matches!(
        child(&repo, &["api"]),
        Err(StoreError::Authority(_))
    ));
    let reader = parent_of(&["repo:read", "repo:write"]);
    assert!(
        matches!(child(&reader, &["repo:*"]), Err(StoreError::Authority(_))),
        "a wildcard stands for names the catalog may gain: not from names"
    );
    // An implication its parent held the child's name through cannot be
    // taken away while the child carries it, here or further down a chain.
    let refused = catalog_error(b.define_permissions(&[def("api", &[])]));
    assert!(
        matches!(&refused, CatalogError::Outgrown { name, token }
            if name == "read_api" && *token == via_api.info.id),
        "{refused}"
    );
    let catalog = b.permissions().expect("catalog");
    assert_eq!(catalog.get("api").expect("api").implies, [name("read_api")]);
    b.define_permissions(&[def("repo:admin", &["read_api"])])
        .expect("repo:admin");
    b.define_permissions(&[def("api", &["read_api", "repo:admin"])])
        .expect("two ways to read_api");
    b.define_permissions(&[def("api", &["repo:admin"])])
        .expect("read_api still held through repo:admin");
    let refused = catalog_error(b.define_permissions(&[def("repo:admin", &[])]));
    assert!(
        matches!(refused, CatalogError::Outgrown { .. }),
        "down a chain: {refused}"
    );
    b.revoke(via_api.info.id).expect("revoke the child");
    b.define_permissions(&[def("repo:admin", &[])])
        .expect("no child carries it any more");
    let node = parent_of(&[&format!("node:{NODE}:rw")]);
    assert!(matches!(
        child(&node, &["read_api"]),
        Err(StoreError::Authority(_))
    ));
}

/// A removal may not leave a child holding, by name, what its parent held
/// only through the removed name: refused, or by force taken from the
/// child too (and from its own children). Two ways in: a parent carrying
/// the removed name, and a parent holding it through a wildcard.
pub(super) fn removal_keeps_families_within(b: &dyn Backend) {
    if !defined(b) {
        return;
    }
    let long = std::time::Duration::from_secs(200 * 365 * 86_400);
    let presented = |t: &crate::CreatedToken| {
        Identity::new(&t.info, t.info.expiry.expires_at()).presented_as(t.secret.digest())
    };
    let node = format!("node:{NODE}:r");
    // A parent of `api` (which implies read_api) and a node; its child
    // reads the API, and a grandchild too.
    let parent = create(b, &hard("erin", long).scopes(scopes(&["api", &node])), 0);
    let child = create(
        b,
        &hard("erin", long - MIN)
            .scopes(scopes(&["read_api"]))
            .child_of(&presented(&parent)),
        1,
    );
    let grandchild = create(
        b,
        &hard("erin", long - 2 * MIN)
            .scopes(scopes(&["read_api"]))
            .child_of(&presented(&child)),
        2,
    );
    let refused = catalog_error(b.remove_permission(&name("api"), false));
    assert!(matches!(refused, CatalogError::InUse { .. }), "{refused}");
    let removal = b.remove_permission(&name("api"), true).expect("by force");
    assert_eq!(
        removal,
        PermissionRemoval::new(1, 2),
        "the parent narrowed, the child and grandchild left with nothing"
    );
    let who = auth(b, &parent.secret, 3).expect("the parent, narrower");
    assert!(!who.has_scope("read_api") && who.permits([&NODE], Perm::READ));
    for gone in [&child, &grandchild] {
        assert!(matches!(auth(b, &gone.secret, 3), Err(AuthError::Unknown)));
    }

    // A parent holding `repo:write` only through `repo:*`; its child
    // carries `repo:read`, which repo:write implies but the wildcard also
    // covers: unaffected. One carrying only what `repo:write` led to is not.
    b.define_permissions(&[
        def("audit", &[]),
        def("repo:write", &["repo:read", "audit"]),
    ])
    .expect("define");
    let wild = create(b, &hard("finn", long).scopes(scopes(&["repo:*"])), 0);
    let reads = create(
        b,
        &hard("finn", long - MIN)
            .scopes(scopes(&["repo:read"]))
            .child_of(&presented(&wild)),
        1,
    );
    let audits = create(
        b,
        &hard("finn", long - MIN)
            .scopes(scopes(&["audit", "repo:read"]))
            .child_of(&presented(&wild)),
        1,
    );
    let refused = catalog_error(b.remove_permission(&name("repo:write"), false));
    assert!(
        matches!(&refused, CatalogError::Outgrown { name, token }
            if name == "audit" && *token == audits.info.id),
        "nobody carries repo:write, yet the child would outgrow its parent: {refused}"
    );
    let removal = b
        .remove_permission(&name("repo:write"), true)
        .expect("by force");
    assert_eq!(removal, PermissionRemoval::new(1, 0));
    let who = auth(b, &audits.secret, 3).expect("narrower");
    assert!(!who.has_scope("audit") && who.has_scope("repo:read"));
    auth(b, &reads.secret, 3).expect("unaffected");
}
