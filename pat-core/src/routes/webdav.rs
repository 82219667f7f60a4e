//! Scopes on a WebDAV share (or any tree of files and folders): what each
//! method needs, a path's chain of nodes, and which entries a listing shows.
//! The share itself (where node ids live, how paths are decoded) is the
//! application's; these are the rules, the same for every server.

use std::path::Path;

use crate::model::scope::{NodeId, Perm, Scopes};

/// What a WebDAV request needs from a scoped token, by method.
///
/// | method | needs |
/// |---|---|
/// | `GET`, `HEAD` | `r` on the target |
/// | `PROPFIND` | `r` on the target, or the target leads to a node the token may read (the listing then shows only the way there) |
/// | `PUT`, `MKCOL`, `DELETE`, `PROPPATCH`, `LOCK`, `UNLOCK` | `w` on the target (a new one: its parent) |
/// | `MOVE` | `rw` on the source, `w` on the destination's parent |
/// | `COPY` | `r` on the source, `w` on the destination's parent |
/// | `OPTIONS` | nothing |
/// | anything else | refused |
///
/// ```
/// use pat_core::DavAccess;
/// assert_eq!(DavAccess::of("PROPFIND"), DavAccess::List);
/// assert_eq!(DavAccess::of("MOVE"), DavAccess::Move);
/// assert_eq!(DavAccess::of("SEARCH"), DavAccess::Unknown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DavAccess {
    /// `OPTIONS`: touches nothing.
    Nothing,
    /// `GET`, `HEAD`: read the target.
    Read,
    /// `PROPFIND`: read the target, or walk through it.
    List,
    /// `PUT`, `MKCOL`, `DELETE`, `PROPPATCH`, `LOCK`, `UNLOCK`: change it.
    Write,
    /// `MOVE`: take the source away, put it under the destination's parent.
    Move,
    /// `COPY`: read the source, put a copy under the destination's parent.
    Copy,
    /// Any other method: a scoped token is refused (fail closed).
    Unknown,
}

impl DavAccess {
    /// The access `method` needs (case-sensitive, as HTTP methods are).
    pub fn of(method: &str) -> DavAccess {
        match method {
            "OPTIONS" => DavAccess::Nothing,
            "GET" | "HEAD" => DavAccess::Read,
            "PROPFIND" => DavAccess::List,
            "PUT" | "MKCOL" | "DELETE" | "PROPPATCH" | "LOCK" | "UNLOCK" => DavAccess::Write,
            "MOVE" => DavAccess::Move,
            "COPY" => DavAccess::Copy,
            _ => DavAccess::Unknown,
        }
    }
}

/// The chain of `path` (relative to the share's root, `""` for the root):
/// the nodes of the path and of each ancestor, nearest first, ending with the
/// root's. `node_of` gives the node of an existing path and `None` for one
/// that does not exist, so the chain of a path about to be created starts at
/// its nearest existing ancestor.
///
/// ```
/// use std::path::Path;
/// use pat_core::{NodeId, dav_chain};
/// let node = |b| Some(NodeId::from_bytes([b; 16]));
/// let chain = dav_chain(Path::new("a/b/new"), |p| match p.to_str() {
///     Some("a/b") => node(2),
///     Some("a") => node(1),
///     Some("") => node(0),
///     _ => None,
/// });
/// assert_eq!(chain, [node(2).unwrap(), node(1).unwrap(), node(0).unwrap()]);
/// ```
pub fn dav_chain(path: &Path, mut node_of: impl FnMut(&Path) -> Option<NodeId>) -> Vec<NodeId> {
    let mut chain = Vec::new();
    for p in path.ancestors() {
        match node_of(p) {
            Some(node) => chain.push(node),
            // Missing below an existing ancestor: not created yet.
            None if chain.is_empty() => {}
            // Missing above an existing path: the tree changed under us;
            // stop rather than skip a link of the chain.
            None => break,
        }
    }
    chain
}

impl Scopes {
    /// Whether a WebDAV request with these scopes may go on.
    ///
    /// `target` is the chain of the request's path (see [`dav_chain`]);
    /// `destination_parent` the chain of the `Destination` header's parent
    /// for `MOVE` and `COPY` (a missing destination refuses them);
    /// `leads_to_readable` tells whether the target contains a node these
    /// scopes may read (asked only for `PROPFIND` of a target they cannot
    /// read). Unrestricted scopes allow everything.
    pub fn allow_dav(
        &self,
        access: DavAccess,
        target: &[NodeId],
        destination_parent: Option<&[NodeId]>,
        leads_to_readable: impl FnOnce() -> bool,
    ) -> bool {
        if self.is_unrestricted() {
            return true;
        }
        let may = |chain: &[NodeId], perm| self.permits(chain, perm);
        let to = |perm| destination_parent.is_some_and(|d| may(d, perm));
        match access {
            DavAccess::Nothing => true,
            DavAccess::Read => may(target, Perm::READ),
            DavAccess::List => may(target, Perm::READ) || leads_to_readable(),
            DavAccess::Write => may(target, Perm::WRITE),
            DavAccess::Move => may(target, Perm::READ_WRITE) && to(Perm::WRITE),
            DavAccess::Copy => may(target, Perm::READ) && to(Perm::WRITE),
            DavAccess::Unknown => false,
        }
    }

    /// Whether a listing shows an entry whose chain is `chain`: when these
    /// scopes may read it, or when it lies on the way to a node they may read
    /// (`contains(node)`: whether `node` is this entry or below it).
    /// Unrestricted scopes show everything.
    pub fn reveals(&self, chain: &[NodeId], mut contains: impl FnMut(&NodeId) -> bool) -> bool {
        self.is_unrestricted()
            || self.permits(chain, Perm::READ)
            || self
                .iter()
                .filter(|s| s.perm.contains(Perm::READ))
                .any(|s| contains(&s.node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    fn n(b: u8) -> NodeId {
        NodeId::from_bytes([b; 16])
    }

    fn scopes(list: &[(u8, Perm)]) -> Scopes {
        list.iter()
            .map(|&(b, perm)| Scope { node: n(b), perm })
            .collect()
    }

    // A tree: root(0) / projects(1) / a(2) / file(3); root / other(9).
    const ROOT: &[u8] = &[0];
    const PROJECTS: &[u8] = &[1, 0];
    const A: &[u8] = &[2, 1, 0];
    const FILE: &[u8] = &[3, 2, 1, 0];
    const OTHER: &[u8] = &[9, 0];

    fn chain(bytes: &[u8]) -> Vec<NodeId> {
        bytes.iter().map(|&b| n(b)).collect()
    }

    #[test]
    fn read_only_on_a_folder() {
        let s = scopes(&[(2, Perm::READ)]);
        let allow = |access, target: &[u8], dest: Option<&[u8]>| {
            let dest = dest.map(chain);
            s.allow_dav(access, &chain(target), dest.as_deref(), || {
                target != OTHER && target != FILE && target != A
            })
        };
        assert!(allow(DavAccess::Read, FILE, None));
        assert!(allow(DavAccess::List, A, None));
        assert!(allow(DavAccess::List, PROJECTS, None), "on the way");
        assert!(allow(DavAccess::List, ROOT, None), "on the way");
        assert!(
            !allow(DavAccess::Read, PROJECTS, None),
            "the way is not readable"
        );
        assert!(!allow(DavAccess::Read, OTHER, None));
        assert!(!allow(DavAccess::Write, FILE, None));
        assert!(
            !allow(DavAccess::Copy, FILE, Some(A)),
            "no w at the destination"
        );
        assert!(!allow(DavAccess::Unknown, FILE, None));
        assert!(allow(DavAccess::Nothing, OTHER, None));
    }

    #[test]
    fn read_write_on_a_folder() {
        let s = scopes(&[(2, Perm::READ_WRITE)]);
        let allow = |access, target: &[u8], dest: Option<&[u8]>| {
            let dest = dest.map(chain);
            s.allow_dav(access, &chain(target), dest.as_deref(), || false)
        };
        assert!(allow(DavAccess::Write, FILE, None));
        assert!(allow(DavAccess::Write, A, None));
        assert!(allow(DavAccess::Move, FILE, Some(A)));
        assert!(allow(DavAccess::Copy, FILE, Some(A)));
        assert!(!allow(DavAccess::Move, FILE, Some(OTHER)), "moving out");
        assert!(!allow(DavAccess::Move, FILE, None), "no destination");
        assert!(
            !allow(DavAccess::Copy, OTHER, Some(A)),
            "copying in what it cannot read"
        );
        assert!(!allow(DavAccess::Write, PROJECTS, None));
        assert!(
            !allow(DavAccess::Move, A, Some(PROJECTS)),
            "out of its own scope"
        );
    }

    #[test]
    fn write_only_cannot_read_or_move() {
        let s = scopes(&[(2, Perm::WRITE)]);
        assert!(s.allow_dav(DavAccess::Write, &chain(FILE), None, || false));
        assert!(!s.allow_dav(DavAccess::Read, &chain(FILE), None, || false));
        assert!(!s.allow_dav(DavAccess::Move, &chain(FILE), Some(&chain(A)), || false));
        // A write-only scope shows no way to itself in listings.
        assert!(!s.reveals(&chain(PROJECTS), |node| *node == n(2)));
    }

    #[test]
    fn unrestricted_scopes_allow_and_show_everything() {
        let s = Scopes::unrestricted();
        for access in [
            DavAccess::Read,
            DavAccess::Write,
            DavAccess::Move,
            DavAccess::Unknown,
        ] {
            assert!(s.allow_dav(access, &chain(OTHER), None, || false));
        }
        assert!(s.reveals(&chain(OTHER), |_| false));
    }

    #[test]
    fn listings_show_the_way_and_what_is_readable() {
        let s = scopes(&[(2, Perm::READ)]);
        // Listing the root: `projects` leads to `a`; `other` does not.
        assert!(s.reveals(&chain(PROJECTS), |node| *node == n(2)));
        assert!(!s.reveals(&chain(OTHER), |_| false));
        // Inside `a`, everything.
        assert!(s.reveals(&chain(FILE), |_| false));
    }

    #[test]
    fn chains_start_at_the_nearest_existing_path() {
        let existing = |p: &Path| match p.to_str() {
            Some("a/b") => Some(n(2)),
            Some("a") => Some(n(1)),
            Some("") => Some(n(0)),
            _ => None,
        };
        assert_eq!(dav_chain(Path::new("a/b"), existing), chain(&[2, 1, 0]));
        assert_eq!(dav_chain(Path::new("a/b/c/d"), existing), chain(&[2, 1, 0]));
        assert_eq!(dav_chain(Path::new(""), existing), chain(&[0]));
        // A gap above an existing node stops the chain there.
        let gap = |p: &Path| match p.to_str() {
            Some("x/y") => Some(n(5)),
            Some("") => Some(n(0)),
            _ => None,
        };
        assert_eq!(dav_chain(Path::new("x/y"), gap), chain(&[5]));
    }
}
