//! Scopes: the `node:<uuid>:<perm>` restrictions and the named
//! permissions a token carries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::str::FromStr;
use std::sync::Arc;

use crate::error::ParseScopeError;
use crate::model::permission::Permission;

/// A node's UUID, kept as 16 bytes and printed in canonical lowercase
/// hyphenated form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 16]);

impl NodeId {
    /// The UUID's bytes, big-endian as printed.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A node id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> NodeId {
        NodeId(bytes)
    }

    /// A new random (version 4) UUID, for an application giving its files
    /// and folders ids.
    pub fn generate() -> NodeId {
        let mut b: [u8; 16] = rand::Rng::random(&mut crate::model::token::os_rng());
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        NodeId(b)
    }

    /// Parses a hyphenated UUID (`8-4-4-4-12` hex digits, any case).
    pub fn parse(s: &str) -> Option<NodeId> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let v = (c as char).to_digit(16)? as u8;
            out[nibbles / 2] |= if nibbles.is_multiple_of(2) { v << 4 } else { v };
            nibbles += 1;
        }
        Some(NodeId(out))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = ParseScopeError;

    fn from_str(s: &str) -> Result<NodeId, ParseScopeError> {
        NodeId::parse(s).ok_or_else(|| ParseScopeError::Uuid {
            scope: s.to_owned(),
            uuid: s.to_owned(),
        })
    }
}

/// A permission: read, write, or both.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Perm(u8);

impl Perm {
    /// Read (`r`).
    pub const READ: Perm = Perm(0b01);
    /// Write (`w`).
    pub const WRITE: Perm = Perm(0b10);
    /// Read and write (`rw`).
    pub const READ_WRITE: Perm = Perm(0b11);

    /// Whether `self` grants everything `other` asks for.
    pub const fn contains(self, other: Perm) -> bool {
        self.0 & other.0 == other.0
    }

    /// The stored bit pattern (`1` read, `2` write, `3` both).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// A permission from its stored bits; `None` for anything but 1, 2, 3.
    pub const fn from_bits(bits: u8) -> Option<Perm> {
        match bits {
            1..=3 => Some(Perm(bits)),
            _ => None,
        }
    }

    fn parse(s: &str) -> Option<Perm> {
        match s {
            "r" => Some(Perm::READ),
            "w" => Some(Perm::WRITE),
            "rw" | "wr" => Some(Perm::READ_WRITE),
            _ => None,
        }
    }
}

impl BitOr for Perm {
    type Output = Perm;
    fn bitor(self, rhs: Perm) -> Perm {
        Perm(self.0 | rhs.0)
    }
}

impl BitOrAssign for Perm {
    fn bitor_assign(&mut self, rhs: Perm) {
        self.0 |= rhs.0;
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            0b01 => "r",
            0b10 => "w",
            _ => "rw",
        })
    }
}

impl fmt::Debug for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Perm({self})")
    }
}

/// One `node:<uuid>:<perm>` scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The node the token is restricted to (with everything below it).
    pub node: NodeId,
    /// What the token may do there.
    pub perm: Perm,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node:{}:{}", self.node, self.perm)
    }
}

impl FromStr for Scope {
    type Err = ParseScopeError;

    /// Parses `node:<uuid>:<perm>`: the literal `node`, a hyphenated UUID in
    /// any case, and `r`, `w`, `rw` or `wr`.
    fn from_str(s: &str) -> Result<Scope, ParseScopeError> {
        let scope = || s.to_owned();
        let mut parts = s.splitn(3, ':');
        let (kind, uuid, perm) = match (parts.next(), parts.next(), parts.next()) {
            (Some(k), Some(u), Some(p)) => (k, u, p),
            _ => return Err(ParseScopeError::Shape { scope: scope() }),
        };
        if kind != "node" {
            return Err(ParseScopeError::Kind {
                scope: scope(),
                kind: kind.to_owned(),
            });
        }
        let node = NodeId::parse(uuid).ok_or_else(|| ParseScopeError::Uuid {
            scope: scope(),
            uuid: uuid.to_owned(),
        })?;
        let perm = Perm::parse(perm).ok_or_else(|| ParseScopeError::Perm {
            scope: scope(),
            perm: perm.to_owned(),
        })?;
        Ok(Scope { node, perm })
    }
}

/// One scope as `-s` takes it: a node scope or a named permission.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TokenScope {
    /// `node:<uuid>:<perm>`.
    Node(Scope),
    /// A catalog permission (`repo:read`) or a wildcard (`repo:*`).
    Named(Permission),
}

impl From<Scope> for TokenScope {
    fn from(scope: Scope) -> TokenScope {
        TokenScope::Node(scope)
    }
}

impl From<Permission> for TokenScope {
    fn from(name: Permission) -> TokenScope {
        TokenScope::Named(name)
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenScope::Node(s) => s.fmt(f),
            TokenScope::Named(p) => p.fmt(f),
        }
    }
}

impl FromStr for TokenScope {
    type Err = ParseScopeError;

    /// `node:<uuid>:<perm>` (see [`Scope`]'s parser), else a
    /// [`Permission`].
    fn from_str(s: &str) -> Result<TokenScope, ParseScopeError> {
        if s == "node" || s.starts_with("node:") {
            return s.parse().map(TokenScope::Node);
        }
        Permission::new(s)
            .map(TokenScope::Named)
            .map_err(ParseScopeError::Permission)
    }
}

/// The scopes of a token: node scopes, one per node and sorted by node,
/// and named permissions, sorted.
///
/// Empty means unrestricted: the token grants what a login grants, every
/// node and every permission. A token with any scope reaches only the
/// nodes its node scopes name and holds only the permissions its named
/// scopes name (with what the catalog makes of them, [`granted`]): a token
/// of named permissions reaches no node, and one of node scopes holds no
/// permission. Adding a scope for a node already present merges the
/// permissions (`r` + `w` = `rw`). Cloning shares the lists (and there are
/// none to share when unrestricted), so an [`Identity`](crate::Identity)
/// per request costs no allocation.
///
/// [`granted`]: Scopes::granted
#[derive(Clone, Default)]
pub struct Scopes(Option<Arc<Restricted>>);

/// What a scoped token's scopes hold.
struct Restricted {
    nodes: Box<[Scope]>,
    /// As written on the token: names and wildcards, sorted, once each.
    named: Box<[Permission]>,
    /// What the token holds ([`Catalog::resolve`](crate::Catalog::resolve)), sorted, once each.
    granted: Box<[Permission]>,
}

impl Scopes {
    /// No scopes: an unrestricted token.
    pub const fn unrestricted() -> Scopes {
        Scopes(None)
    }

    /// Restricted to nothing: no node, no permission. What a remote
    /// verifier makes of an endpoint's empty `scope` (a token whose
    /// wildcards stand for no name there). Not public: a store keeps no
    /// such record (it would read back as unrestricted), and no creation
    /// can ask for one.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    pub(crate) fn none() -> Scopes {
        Scopes(Some(Arc::new(Restricted {
            nodes: Box::new([]),
            named: Box::new([]),
            granted: Box::new([]),
        })))
    }

    /// Node scopes (merged per node) and named permissions (once each).
    /// What it holds is its names as written until a catalog
    /// [resolves](crate::Catalog::resolve) them.
    pub fn new(
        nodes: impl IntoIterator<Item = Scope>,
        named: impl IntoIterator<Item = Permission>,
    ) -> Scopes {
        let mut merged: BTreeMap<NodeId, Perm> = BTreeMap::new();
        for s in nodes {
            *merged.entry(s.node).or_insert(s.perm) |= s.perm;
        }
        let named: BTreeSet<Permission> = named.into_iter().collect();
        if merged.is_empty() && named.is_empty() {
            return Scopes(None);
        }
        let granted = named.iter().filter(|n| !n.is_wildcard()).cloned().collect();
        Scopes(Some(Arc::new(Restricted {
            nodes: merged
                .into_iter()
                .map(|(node, perm)| Scope { node, perm })
                .collect(),
            named: named.into_iter().collect(),
            granted,
        })))
    }

    /// The same scopes, holding `granted` (sorted, once each).
    pub(crate) fn with_granted(&self, granted: Box<[Permission]>) -> Scopes {
        match &self.0 {
            None => Scopes(None),
            Some(r) => Scopes(Some(Arc::new(Restricted {
                nodes: r.nodes.clone(),
                named: r.named.clone(),
                granted,
            }))),
        }
    }

    /// Whether the token is unrestricted.
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_none()
    }

    /// The node scopes, sorted by node, one per node.
    pub fn as_slice(&self) -> &[Scope] {
        self.0.as_deref().map_or(&[], |r| &r.nodes)
    }

    /// Iterates over the node scopes.
    pub fn iter(&self) -> std::slice::Iter<'_, Scope> {
        self.as_slice().iter()
    }

    /// The named permissions as the token carries them (wildcards
    /// included), sorted.
    pub fn named(&self) -> &[Permission] {
        self.0.as_deref().map_or(&[], |r| &r.named)
    }

    /// The permissions the token holds: its names, and what its
    /// wildcards and implications come to in the catalog of the backend
    /// that answered for it ([`Catalog::resolve`](crate::Catalog::resolve)); sorted. Empty for an
    /// unrestricted token, which holds every permission ([`has`](Scopes::has)).
    ///
    /// Resolved for the scopes of an [`Identity`](crate::Identity) and of
    /// a record [`Admin::find`](crate::Admin::find) returns; a record from
    /// [`Admin::get`](crate::Admin::get) or [`Admin::list`](crate::Admin::list)
    /// holds its names as written (resolve it with
    /// [`Admin::permissions`](crate::Admin::permissions) to ask it).
    pub fn granted(&self) -> &[Permission] {
        self.0.as_deref().map_or(&[], |r| &r.granted)
    }

    /// Every scope, node scopes first, as `-s` takes them.
    pub fn entries(&self) -> impl Iterator<Item = TokenScope> + '_ {
        self.iter()
            .map(|s| TokenScope::Node(*s))
            .chain(self.named().iter().cloned().map(TokenScope::Named))
    }

    /// Whether the token holds the permission `name`: always when
    /// unrestricted, else when it is among [`granted`](Scopes::granted).
    /// A binary search: no allocation.
    #[inline]
    pub fn has(&self, name: &str) -> bool {
        match &self.0 {
            None => true,
            Some(r) => r.granted.binary_search_by(|g| g.as_str().cmp(name)).is_ok(),
        }
    }

    /// Whether the token holds every one of `names`.
    pub fn has_all<S: AsRef<str>>(&self, names: &[S]) -> bool {
        names.iter().all(|n| self.has(n.as_ref()))
    }

    /// Whether the token holds at least one of `names` (never for none).
    pub fn has_any<S: AsRef<str>>(&self, names: &[S]) -> bool {
        names.iter().any(|n| self.has(n.as_ref()))
    }

    /// Whether `perm` is allowed on the first node of `chain`, where `chain`
    /// lists that node followed by its ancestors (as the application knows
    /// its tree).
    ///
    /// Unrestricted scopes permit everything. Otherwise every permission bit
    /// asked for must be granted by a scope on some node of the chain: a scope
    /// on a folder covers everything below it. Scopes only narrow: the
    /// application's own access rules still apply.
    pub fn permits<'a>(&self, chain: impl IntoIterator<Item = &'a NodeId>, perm: Perm) -> bool {
        let Some(scopes) = &self.0 else {
            return true;
        };
        let mut granted = Perm(0);
        for node in chain {
            if let Ok(i) = scopes.nodes.binary_search_by(|s| s.node.cmp(node)) {
                granted |= scopes.nodes[i].perm;
                if granted.contains(perm) {
                    return true;
                }
            }
        }
        false
    }
}

/// Equal when they carry the same scopes, as written (and are both
/// unrestricted, or both not).
impl PartialEq for Scopes {
    fn eq(&self, other: &Scopes) -> bool {
        self.is_unrestricted() == other.is_unrestricted()
            && self.as_slice() == other.as_slice()
            && self.named() == other.named()
    }
}

impl Eq for Scopes {}

impl std::hash::Hash for Scopes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.is_unrestricted().hash(state);
        self.as_slice().hash(state);
        self.named().hash(state);
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Scopes {
        Scopes::new(iter, [])
    }
}

impl FromIterator<TokenScope> for Scopes {
    fn from_iter<I: IntoIterator<Item = TokenScope>>(iter: I) -> Scopes {
        let (mut nodes, mut named) = (Vec::new(), Vec::new());
        for s in iter {
            match s {
                TokenScope::Node(s) => nodes.push(s),
                TokenScope::Named(p) => named.push(p),
            }
        }
        Scopes::new(nodes, named)
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for Scopes {
    /// Comma-separated, as `-s` accepts them, node scopes first; empty when
    /// unrestricted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.entries().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";
    const B: &str = "1b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_perm_and_canonicalises_case() {
        let upper = A.to_uppercase();
        for (p, want) in [("r", "r"), ("w", "w"), ("rw", "rw"), ("wr", "rw")] {
            let s = scope(&format!("node:{upper}:{p}"));
            assert_eq!(s.to_string(), format!("node:{A}:{want}"));
        }
    }

    #[test]
    fn errors_name_the_scope_and_the_bad_part() {
        let cases = [
            ("node", "node:<uuid>:<perm>"),
            (&format!("node:{A}") as &str, "node:<uuid>:<perm>"),
            (&format!("file:{A}:r"), "`file`"),
            ("node:x:r", "`x` is not a UUID"),
            (&format!("node:{A}:x"), "`x`"),
            (&format!("node:{A}:"), "``"),
            (&format!("node:{A}:rwx"), "`rwx`"),
            (&format!("node:{A}:r:extra"), "`r:extra`"),
            (&format!("node:{{{A}}}:r"), "is not a UUID"),
            (&format!("node:{}:r", A.replace('-', "")), "is not a UUID"),
        ];
        for (input, part) in cases {
            let msg = input.parse::<Scope>().unwrap_err().to_string();
            assert!(msg.contains(&format!("scope `{input}`")), "{msg}");
            assert!(msg.contains(part), "{input}: {msg}");
        }
    }

    #[test]
    fn duplicates_merge_and_read_plus_write_combine() {
        let s: Scopes = [
            scope(&format!("node:{B}:r")),
            scope(&format!("node:{A}:w")),
            scope(&format!("node:{A}:r")),
            scope(&format!("node:{B}:r")),
        ]
        .into_iter()
        .collect();
        assert_eq!(s.to_string(), format!("node:{A}:rw,node:{B}:r"));
    }

    #[test]
    fn restricted_to_nothing_is_not_unrestricted() {
        assert_ne!(Scopes::none(), Scopes::unrestricted());
        assert!(!Scopes::none().has("anything") && Scopes::unrestricted().has("anything"));
        assert!(
            crate::backend::authority::within_scopes(
                &[scope(&format!("node:{A}:r"))].into_iter().collect(),
                &Scopes::none()
            )
            .is_err(),
            "never stored: it would read back as unrestricted"
        );
    }

    #[test]
    fn permits_follows_the_chain() {
        let a = NodeId::parse(A).unwrap();
        let b = NodeId::parse(B).unwrap();
        let child = NodeId::from_bytes([7; 16]);
        let read_a: Scopes = [scope(&format!("node:{A}:r"))].into_iter().collect();
        assert!(read_a.permits([&a], Perm::READ));
        assert!(!read_a.permits([&a], Perm::WRITE));
        assert!(!read_a.permits([&a], Perm::READ_WRITE));
        assert!(
            read_a.permits([&child, &a], Perm::READ),
            "ancestor in scope"
        );
        assert!(!read_a.permits([&child], Perm::READ));
        assert!(!read_a.permits([&b], Perm::READ));
        assert!(!read_a.permits([], Perm::READ));
        let unrestricted = Scopes::unrestricted();
        assert!(unrestricted.permits([&b], Perm::READ_WRITE));
        assert!(unrestricted.permits([], Perm::WRITE));
        let split: Scopes = [scope(&format!("node:{A}:r")), scope(&format!("node:{B}:w"))]
            .into_iter()
            .collect();
        assert!(
            split.permits([&b, &a], Perm::READ_WRITE),
            "bits from two ancestors"
        );
    }

    fn arb_scope() -> impl Strategy<Value = Scope> {
        (any::<[u8; 16]>(), 1u8..=3).prop_map(|(n, p)| Scope {
            node: NodeId::from_bytes(n),
            perm: Perm::from_bits(p).unwrap(),
        })
    }

    proptest! {
        #[test]
        fn display_round_trips(s in arb_scope()) {
            prop_assert_eq!(s.to_string().parse::<Scope>().unwrap(), s);
            let upper = format!("node:{}:{}", s.node.to_string().to_uppercase(), s.perm);
            prop_assert_eq!(upper.parse::<Scope>().unwrap(), s);
        }

        #[test]
        fn scopes_match_a_model(list in proptest::collection::vec(arb_scope(), 0..8)) {
            let mut model: BTreeMap<NodeId, u8> = BTreeMap::new();
            for s in &list {
                *model.entry(s.node).or_default() |= s.perm.bits();
            }
            let scopes: Scopes = list.into_iter().collect();
            let got: Vec<(NodeId, u8)> = scopes.iter().map(|s| (s.node, s.perm.bits())).collect();
            prop_assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = s.parse::<Scope>();
        }
    }
}
