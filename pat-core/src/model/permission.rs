//! Named permissions: the vocabulary a service defines (`repo:read`,
//! `api`), kept in its store's [`Catalog`] with a description and the
//! permissions each implies, and carried by tokens beside node scopes.
//!
//! A token's scopes may name catalog permissions (`repo:read`) or a
//! trailing wildcard (`repo:*`: every catalog name under `repo:`). What it
//! holds, [`Scopes::granted`], is those names with every wildcard matched
//! against the catalog and every implication followed, worked out once when
//! its record is read ([`Catalog::resolve`]), so that a check
//! ([`Scopes::has`]) is a binary search that allocates nothing.
//!
//! ```
//! use pat_core::{Catalog, Permission, PermissionDef, Scopes};
//!
//! let mut catalog = Catalog::new();
//! catalog.define([
//!     PermissionDef::new("read_api".parse()?).description("Read the API"),
//!     PermissionDef::new("api".parse()?).implies("read_api".parse()?),
//!     PermissionDef::new("repo:read".parse()?),
//!     PermissionDef::new("repo:write".parse()?),
//! ])?;
//! let scopes = Scopes::new([], ["api".parse::<Permission>()?, "repo:*".parse()?]);
//! let held = catalog.resolve(&scopes);
//! assert!(held.has("read_api") && held.has("repo:write"));
//! assert!(!held.has("admin"));
//! // No scope at all: what a login grants, every permission.
//! assert!(Scopes::unrestricted().has("admin"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use compact_str::CompactString;

use crate::model::scope::Scopes;
use crate::model::text::Echo;

/// The longest permission name, in bytes.
pub const MAX_PERMISSION_LEN: usize = 64;
/// The longest description of a permission, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 256;
/// The most permissions a catalog holds.
pub const MAX_CATALOG_LEN: usize = 1024;
/// The most permissions one definition implies.
pub const MAX_IMPLIES: usize = 64;

/// A permission name (`repo:read`), or in a token's scopes a trailing
/// wildcard (`repo:*`).
///
/// Lowercase ASCII letters, digits and `_ . : -`, 1 to 64 bytes, not
/// starting with `node:` (node scopes' own). A wildcard is a name that ends
/// in `:*` or `.*`: it stands for every catalog name that starts with what
/// comes before the `*`. Inline up to 24 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission(CompactString);

impl Permission {
    /// Checks `s` (see the type's documentation).
    pub fn new(s: &str) -> Result<Permission, ParsePermissionError> {
        let problem = |problem| {
            Err(ParsePermissionError {
                input: s.to_owned(),
                problem,
            })
        };
        if s.is_empty() {
            return problem("it is empty");
        }
        if s.len() > MAX_PERMISSION_LEN {
            return problem("it is longer than 64 bytes");
        }
        if s == "node" || s.starts_with("node:") {
            return problem("`node` and `node:` start node scopes (node:<uuid>:<perm>)");
        }
        let body = match s.strip_suffix('*') {
            Some(stem) if stem.ends_with(':') || stem.ends_with('.') => stem,
            Some(_) => return problem("a wildcard is a name ending in `:*` or `.*`"),
            None => s,
        };
        if !body.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        }) {
            return problem(if body.contains('*') {
                "a wildcard is a name ending in `:*` or `.*`"
            } else {
                "it has a character other than a-z, 0-9, `_`, `.`, `:` and `-`"
            });
        }
        Ok(Permission(CompactString::new(s)))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard (`repo:*`).
    pub fn is_wildcard(&self) -> bool {
        self.0.ends_with('*')
    }

    /// For a wildcard, what a name it stands for starts with (`repo:`);
    /// for a name, the name.
    fn stem(&self) -> &str {
        self.0.strip_suffix('*').unwrap_or(&self.0)
    }

    /// Whether `name` is this permission, or one this wildcard stands for.
    pub fn matches(&self, name: &str) -> bool {
        if self.is_wildcard() {
            name.starts_with(self.stem()) && !name.ends_with('*')
        } else {
            self.as_str() == name
        }
    }

    /// Whether everything `other` could ever stand for, whatever the
    /// catalog comes to hold, this stands for too: the same name, a name
    /// this wildcard matches, or a narrower wildcard (`repo:admin.*` under
    /// `repo:*`). The authority rule asks it of a child's wildcards.
    pub fn covers(&self, other: &Permission) -> bool {
        if self.is_wildcard() {
            other.stem().starts_with(self.stem())
        } else {
            self == other
        }
    }
}

impl FromStr for Permission {
    type Err = ParsePermissionError;

    fn from_str(s: &str) -> Result<Permission, ParsePermissionError> {
        Permission::new(s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({:?})", self.as_str())
    }
}

impl AsRef<str> for Permission {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Permission {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A value that is not a permission name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{}` is not a permission: {problem}; a permission is 1 to 64 bytes of a-z, 0-9, `_`, `.`, \
     `:` and `-`, such as `repo:read` (in a token's scopes, `repo:*` stands for every \
     `repo:` permission)",
    Echo(input)
)]
#[non_exhaustive]
pub struct ParsePermissionError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// One permission of a catalog: its name, what it is for, and the
/// permissions a token holding it holds too (GitLab's `api` implies
/// `read_api`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PermissionDef {
    /// The name (never a wildcard).
    pub name: Permission,
    /// What it allows, as the panel and `pat-cli scopes list` show it; may
    /// be empty.
    pub description: String,
    /// The names it implies (sorted, once each, and each in the catalog,
    /// once a [`Catalog`] holds the definition).
    pub implies: Vec<Permission>,
}

impl PermissionDef {
    /// A permission with no description that implies nothing.
    pub fn new(name: Permission) -> PermissionDef {
        PermissionDef {
            name,
            description: String::new(),
            implies: Vec::new(),
        }
    }

    /// The same, with `description`.
    pub fn description(mut self, description: impl Into<String>) -> PermissionDef {
        self.description = description.into();
        self
    }

    /// The same, implying `name` too.
    pub fn implies(mut self, name: Permission) -> PermissionDef {
        self.implies.push(name);
        self
    }

    /// The definition's own rules: a name that is not a wildcard, a short
    /// printable description, implications that are names; sorts the
    /// implications.
    fn checked(mut self) -> Result<PermissionDef, CatalogError> {
        let bad = |problem: &'static str| CatalogError::Definition {
            name: self.name.to_string(),
            problem,
        };
        if self.name.is_wildcard() {
            return Err(bad("a wildcard stands for names, it is not one"));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(bad("its description is longer than 256 bytes"));
        }
        if self.description.chars().any(char::is_control) {
            return Err(bad("its description has a control character"));
        }
        // Shown in terminals and the panel: nothing that hides or reorders
        // what is around it (the CLI's filter would escape it).
        if self
            .description
            .chars()
            .any(crate::model::text::is_invisible)
        {
            return Err(bad(
                "its description has an invisible or direction-changing character",
            ));
        }
        if self.implies.len() > MAX_IMPLIES {
            return Err(bad("it implies more than 64 permissions"));
        }
        if self.implies.iter().any(Permission::is_wildcard) {
            return Err(bad("it implies a wildcard; implications name permissions"));
        }
        self.implies.sort();
        self.implies.dedup();
        Ok(self)
    }
}

/// The permissions a store knows: what tokens may carry and route guards
/// ask for.
///
/// Changed only as a whole and checked as a whole ([`Catalog::define`],
/// [`Catalog::remove`]): every implied name is in it and no name implies
/// itself through others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    defs: BTreeMap<Permission, PermissionDef>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// A catalog of `defs`, checked as [`define`](Catalog::define) checks
    /// them (a backend reading its stored catalog).
    pub fn of(defs: impl IntoIterator<Item = PermissionDef>) -> Result<Catalog, CatalogError> {
        let mut catalog = Catalog::new();
        catalog.define(defs)?;
        Ok(catalog)
    }

    /// The definition of `name`.
    pub fn get(&self, name: &str) -> Option<&PermissionDef> {
        self.defs.get(name)
    }

    /// Whether `name` is in the catalog.
    pub fn contains(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// The definitions, by name.
    pub fn iter(&self) -> impl Iterator<Item = &PermissionDef> {
        self.defs.values()
    }

    /// How many permissions there are.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// Adds `defs`, or replaces the definitions of names it has, all or
    /// nothing: an implied name must be in the catalog or among `defs`, and
    /// no cycle may form (refused naming it, `a → b → a`). Returns whether
    /// anything changed.
    pub fn define(
        &mut self,
        defs: impl IntoIterator<Item = PermissionDef>,
    ) -> Result<bool, CatalogError> {
        let mut next = self.defs.clone();
        for def in defs {
            let def = def.checked()?;
            next.insert(def.name.clone(), def);
        }
        if next.len() > MAX_CATALOG_LEN {
            return Err(CatalogError::TooMany);
        }
        for def in next.values() {
            if let Some(missing) = def.implies.iter().find(|n| !next.contains_key(n.as_str())) {
                return Err(CatalogError::Unknown {
                    name: missing.to_string(),
                    close: close_matches(next.keys(), missing.as_str()),
                });
            }
        }
        if let Some(cycle) = find_cycle(&next) {
            return Err(CatalogError::Cycle { cycle });
        }
        let changed = next != self.defs;
        self.defs = next;
        Ok(changed)
    }

    /// Takes `name` out; refused when another permission implies it
    /// (change those first) or it is not there.
    pub fn remove(&mut self, name: &str) -> Result<PermissionDef, CatalogError> {
        let by: Vec<String> = self
            .defs
            .values()
            .filter(|d| d.implies.iter().any(|n| n.as_str() == name))
            .map(|d| d.name.to_string())
            .collect();
        if !by.is_empty() {
            return Err(CatalogError::Implied {
                name: name.to_owned(),
                by,
            });
        }
        self.defs.remove(name).ok_or_else(|| self.unknown(name))
    }

    /// What a token with `scopes` holds: its names and the catalog names
    /// its wildcards stand for, with everything they imply
    /// ([`Scopes::granted`]). A name the catalog lacks is held as written;
    /// a wildcard stands for no name the catalog lacks.
    pub fn resolve(&self, scopes: &Scopes) -> Scopes {
        if scopes.named().is_empty() {
            return scopes.clone();
        }
        let mut held: BTreeSet<&Permission> = BTreeSet::new();
        let mut todo: Vec<&Permission> = Vec::new();
        for written in scopes.named() {
            if written.is_wildcard() {
                todo.extend(self.under(written));
            } else {
                todo.push(written);
            }
        }
        while let Some(name) = todo.pop() {
            if held.insert(name)
                && let Some(def) = self.defs.get(name.as_str())
            {
                todo.extend(def.implies.iter());
            }
        }
        scopes.with_granted(held.into_iter().cloned().collect())
    }

    /// The catalog names `wildcard` stands for.
    fn under<'a>(&'a self, wildcard: &'a Permission) -> impl Iterator<Item = &'a Permission> {
        let stem = wildcard.stem();
        self.defs
            .range::<str, _>((std::ops::Bound::Included(stem), std::ops::Bound::Unbounded))
            .map(|(name, _)| name)
            .take_while(move |name| name.as_str().starts_with(stem))
    }

    /// Whether a new token may carry `scopes`' names: each is in the
    /// catalog, and each wildcard stands for at least one of its names
    /// (else it is most likely a typo).
    pub fn check(&self, scopes: &Scopes) -> Result<(), CatalogError> {
        for name in scopes.named() {
            if name.is_wildcard() {
                if self.under(name).next().is_none() {
                    return Err(CatalogError::NoMatch {
                        wildcard: name.to_string(),
                    });
                }
            } else if !self.contains(name.as_str()) {
                return Err(self.unknown(name.as_str()));
            }
        }
        Ok(())
    }

    /// The names of the catalog close to `name` (a typo of one), best
    /// first, at most five.
    pub fn close_matches(&self, name: &str) -> Vec<String> {
        close_matches(self.defs.keys(), name)
    }

    fn unknown(&self, name: &str) -> CatalogError {
        CatalogError::Unknown {
            name: name.to_owned(),
            close: self.close_matches(name),
        }
    }
}

/// A cycle of implications in `defs`, as the names along it, the first
/// repeated at the end.
fn find_cycle(defs: &BTreeMap<Permission, PermissionDef>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in defs.keys() {
        if marks.contains_key(start.as_str()) {
            continue;
        }
        // Depth first, without recursion: the path and, for each name on
        // it, how many of its implications were followed.
        let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
        marks.insert(start.as_str(), Mark::Open);
        while let Some(&mut (name, ref mut next)) = path.last_mut() {
            let implies = defs.get(name).map_or(&[][..], |d| &d.implies[..]);
            match implies.get(*next) {
                None => {
                    marks.insert(name, Mark::Done);
                    path.pop();
                }
                Some(implied) => {
                    *next += 1;
                    let implied = implied.as_str();
                    match marks.get(implied) {
                        Some(Mark::Done) => {}
                        Some(Mark::Open) => {
                            let from = path.iter().position(|(n, _)| *n == implied)?;
                            let mut cycle: Vec<String> =
                                path[from..].iter().map(|(n, _)| (*n).to_owned()).collect();
                            cycle.push(implied.to_owned());
                            return Some(cycle);
                        }
                        None => {
                            marks.insert(implied, Mark::Open);
                            path.push((implied, 0));
                        }
                    }
                }
            }
        }
    }
    None
}

/// Up to five of `names` within a small edit distance of `name`, or
/// sharing its part before the first `:`, closest first.
fn close_matches<'a>(names: impl Iterator<Item = &'a Permission>, name: &str) -> Vec<String> {
    let limit = (name.len() / 3).clamp(1, 3);
    fn head(s: &str) -> &str {
        s.split(':').next().unwrap_or(s)
    }
    let mut scored: Vec<(usize, &str)> = names
        .map(|n| (edit_distance(n.as_str(), name), n.as_str()))
        .filter(|&(d, n)| d <= limit || (name.contains(':') && head(n) == head(name)))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// Levenshtein distance over bytes (names are ASCII), bounded by the
/// lengths of both (64 bytes at most).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A catalog cannot take a change, or a token names what it lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// A name the catalog does not have.
    #[error("{}", unknown_message(name, close))]
    Unknown {
        /// The name.
        name: String,
        /// Catalog names close to it (see [`Catalog::close_matches`]).
        close: Vec<String>,
    },
    /// A token's wildcard stands for no catalog name.
    #[error(
        "`{}` stands for no permission in the catalog (`pat-cli scopes list` shows them)",
        Echo(wildcard)
    )]
    NoMatch {
        /// The wildcard.
        wildcard: String,
    },
    /// Implications would go round in a circle.
    #[error("the implications would form a cycle: {}", Echo(&cycle.join(" → ")))]
    Cycle {
        /// The names along it, the first again at the end.
        cycle: Vec<String>,
    },
    /// A definition breaks a rule of its own.
    #[error("permission `{}`: {problem}", Echo(name))]
    Definition {
        /// The permission defined.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Other permissions imply the one being removed.
    #[error(
        "`{}` is implied by {}: define {} again without it first",
        Echo(name),
        Echo(&quoted(by)),
        if by.len() == 1 { "it" } else { "them" }
    )]
    Implied {
        /// The permission being removed.
        name: String,
        /// The permissions that imply it.
        by: Vec<String>,
    },
    /// Live tokens carry the permission being removed.
    #[error(
        "{tokens} live token{s} carr{y} `{}`; remove it with force (`pat-cli scopes remove \
         --force`) to take it from {them} (a token left with no scope is revoked)",
        Echo(name),
        s = if *tokens == 1 { "" } else { "s" },
        y = if *tokens == 1 { "ies" } else { "y" },
        them = if *tokens == 1 { "it" } else { "them" }
    )]
    InUse {
        /// The permission being removed.
        name: String,
        /// How many tokens carry it.
        tokens: usize,
    },
    /// The change takes away an implication through which the token a
    /// token was made with holds a permission that token carries: the
    /// child would hold more than its parent.
    #[error(
        "token {token} carries `{}`, which the token it was made with would no longer hold \
         after this change: revoke token {token} first (a removal by force takes it away)",
        Echo(name)
    )]
    Outgrown {
        /// The permission.
        name: String,
        /// The child token.
        token: crate::model::token::TokenId,
    },
    /// The catalog would pass [`MAX_CATALOG_LEN`] permissions.
    #[error("a catalog holds at most {max} permissions", max = MAX_CATALOG_LEN)]
    TooMany,
    /// This backend keeps no catalog.
    #[error("this backend keeps no catalog of permissions")]
    Fixed,
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown_message(name: &str, close: &[String]) -> String {
    let mut msg = format!("no permission `{}` in the catalog", Echo(name));
    if !close.is_empty() {
        msg.push_str(&format!("; did you mean {}?", Echo(&quoted(close))));
    } else {
        msg.push_str(" (`pat-cli scopes list` shows them)");
    }
    msg
}

/// What [`Admin::remove_permission`](crate::Admin::remove_permission) did
/// to the tokens that carried the name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PermissionRemoval {
    /// Tokens that lost it and kept their other scopes.
    pub narrowed: usize,
    /// Tokens revoked because it was their last scope, with their
    /// descendants.
    pub revoked: usize,
}

impl PermissionRemoval {
    /// A removal that narrowed `narrowed` tokens and revoked `revoked`
    /// (for a backend written elsewhere, and the admin socket).
    pub const fn new(narrowed: usize, revoked: usize) -> PermissionRemoval {
        PermissionRemoval { narrowed, revoked }
    }
}

/// A backend's catalog as its lookups read it: a snapshot, replaced whole
/// when the catalog changes. Read on a cache miss (which reads storage
/// anyway), never on a hit.
#[derive(Debug, Default)]
pub(crate) struct SharedCatalog(RwLock<Arc<Catalog>>);

impl SharedCatalog {
    /// The catalog now.
    pub(crate) fn get(&self) -> Arc<Catalog> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes `catalog` the one lookups read from now on.
    pub(crate) fn set(&self, catalog: Catalog) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(catalog);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Permission {
        s.parse().unwrap()
    }

    fn def(name: &str, implies: &[&str]) -> PermissionDef {
        implies
            .iter()
            .fold(PermissionDef::new(p(name)), |d, i| d.implies(p(i)))
    }

    fn granted(catalog: &Catalog, names: &[&str]) -> Vec<String> {
        let scopes = Scopes::new([], names.iter().map(|n| p(n)));
        catalog
            .resolve(&scopes)
            .granted()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn names_and_wildcards_parse_and_everything_else_is_refused_saying_why() {
        for ok in [
            "api",
            "repo:read",
            "read_api",
            "a.b-c:d_0",
            "repo:*",
            "documents.*",
        ] {
            assert_eq!(p(ok).as_str(), ok);
        }
        let long = "a".repeat(65);
        for (bad, why) in [
            ("", "empty"),
            (long.as_str(), "longer than 64"),
            ("Repo", "a-z"),
            ("repo read", "a-z"),
            ("rêpo", "a-z"),
            ("node:x", "`node:`"),
            ("node", "`node`"),
            ("repo*", "`:*` or `.*`"),
            ("*", "`:*` or `.*`"),
            ("re*po:*", "`:*` or `.*`"),
            ("repo:**", "`:*` or `.*`"),
        ] {
            let msg = Permission::new(bad).unwrap_err().to_string();
            assert!(msg.contains(why), "{bad:?}: {msg}");
            assert!(
                msg.starts_with(&format!("`{}`", redacted_for(bad))),
                "{msg}"
            );
        }
        assert_eq!(p(&"a".repeat(64)).as_str().len(), 64);
    }

    fn redacted_for(s: &str) -> String {
        crate::model::text::redacted(s).into_owned()
    }

    #[test]
    fn implications_and_wildcards_resolve_to_what_a_token_holds() {
        let catalog = Catalog::of([
            def("read_api", &[]),
            def("api", &["read_api", "read_repository"]),
            def("read_repository", &[]),
            def("repo:read", &[]),
            def("repo:write", &["repo:read"]),
            def("repository", &[]),
        ])
        .unwrap();
        assert_eq!(
            granted(&catalog, &["api"]),
            ["api", "read_api", "read_repository"]
        );
        assert_eq!(granted(&catalog, &["repo:*"]), ["repo:read", "repo:write"]);
        assert_eq!(
            granted(&catalog, &["repo:write"]),
            ["repo:read", "repo:write"]
        );
        assert_eq!(granted(&catalog, &["read_api"]), ["read_api"]);
        // A name the catalog lacks (an endpoint's answer, a store without
        // a catalog) is held as written; a wildcard stands for none.
        assert_eq!(granted(&Catalog::new(), &["gone", "x:*"]), ["gone"]);
        let held = catalog.resolve(&Scopes::new([], [p("api")]));
        assert!(held.has("read_api") && !held.has("repo:read") && !held.has("api:*"));
    }

    #[test]
    fn definitions_are_checked_as_a_whole() {
        let mut catalog = Catalog::new();
        let err = catalog.define([def("api", &["read_api"])]).unwrap_err();
        assert!(matches!(err, CatalogError::Unknown { ref name, .. } if name == "read_api"));
        assert!(catalog.is_empty(), "nothing of a refused change is kept");
        // In any order, in one change.
        assert!(
            catalog
                .define([def("api", &["read_api"]), def("read_api", &[])])
                .unwrap()
        );
        assert!(
            !catalog.define([def("read_api", &[])]).unwrap(),
            "no change"
        );
        let err = catalog
            .define([def("read_api", &["admin"]), def("admin", &["api"])])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the implications would form a cycle: admin → api → read_api → admin"
        );
        let err = catalog.define([def("solo", &["solo"])]).unwrap_err();
        assert!(err.to_string().contains("solo → solo"), "{err}");
        assert_eq!(catalog.len(), 2);
        let err = catalog.define([def("x:*", &[])]).unwrap_err();
        assert!(err.to_string().contains("a wildcard"), "{err}");
        let err = catalog.define([def("x", &["api:*"])]).unwrap_err();
        assert!(err.to_string().contains("implies a wildcard"), "{err}");
        let hidden = PermissionDef::new(p("y")).description("a\u{202e}b");
        assert!(
            catalog
                .define([hidden])
                .unwrap_err()
                .to_string()
                .contains("invisible")
        );
        let plain = PermissionDef::new(p("y")).description("Lire les dépôts \\ tout");
        catalog
            .define([plain])
            .expect("letters of any language and a backslash");
        catalog.remove("y").unwrap();
        let bell = PermissionDef::new(p("y")).description("ring\x07");
        assert!(
            catalog
                .define([bell])
                .unwrap_err()
                .to_string()
                .contains("control")
        );
    }

    #[test]
    fn removal_is_refused_while_another_implies_it() {
        let mut catalog = Catalog::of([def("api", &["read_api"]), def("read_api", &[])]).unwrap();
        let err = catalog.remove("read_api").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`read_api` is implied by `api`: define it again without it first"
        );
        assert!(matches!(
            catalog.remove("nope"),
            Err(CatalogError::Unknown { .. })
        ));
        catalog.remove("api").unwrap();
        catalog.remove("read_api").unwrap();
        assert!(catalog.is_empty());
    }

    #[test]
    fn a_token_may_carry_only_catalog_names_and_matching_wildcards() {
        let catalog = Catalog::of([def("repo:read", &[]), def("repo:write", &[])]).unwrap();
        let scopes = |names: &[&str]| Scopes::new([], names.iter().map(|n| p(n)));
        catalog.check(&scopes(&["repo:read", "repo:*"])).unwrap();
        let err = catalog.check(&scopes(&["repo:raed"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no permission `repo:raed` in the catalog; did you mean `repo:read`, `repo:write`?"
        );
        let err = catalog.check(&scopes(&["admin"])).unwrap_err();
        assert!(
            err.to_string().contains("`pat-cli scopes list` shows them"),
            "{err}"
        );
        let err = catalog.check(&scopes(&["org:*"])).unwrap_err();
        assert!(matches!(err, CatalogError::NoMatch { .. }), "{err}");
    }

    #[test]
    fn wildcards_cover_names_and_narrower_wildcards_only() {
        assert!(p("repo:*").covers(&p("repo:read")));
        assert!(p("repo:*").covers(&p("repo:admin.*")));
        assert!(!p("repo:admin.*").covers(&p("repo:*")));
        assert!(!p("repo:read").covers(&p("repo:*")));
        assert!(p("repo:read").covers(&p("repo:read")));
        assert!(!p("repo:*").covers(&p("org:read")));
        assert!(p("repo:*").matches("repo:read") && !p("repo:*").matches("repo:x.*"));
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = s.parse::<Permission>();
        }

        /// Resolution matches a model: the closure of the names, and of the
        /// catalog names the wildcards match, over the implications.
        #[test]
        fn resolution_matches_a_model(
            edges in proptest::collection::vec((0u8..8, 0u8..8), 0..12),
            held in proptest::collection::vec(0u8..10, 0..4),
        ) {
            let name = |i: u8| format!("g{}:n{i}", i % 2);
            // Edges only from a higher number to a lower: no cycle.
            let mut defs: BTreeMap<u8, PermissionDef> =
                (0..8).map(|i| (i, PermissionDef::new(p(&name(i))))).collect();
            for (a, b) in edges {
                if a > b {
                    let d = defs.remove(&a).unwrap().implies(p(&name(b)));
                    defs.insert(a, d);
                }
            }
            let catalog = Catalog::of(defs.values().cloned()).unwrap();
            // 8 and 9 stand for the wildcards `g0:*` and `g1:*`.
            let written: Vec<Permission> = held
                .iter()
                .map(|&i| if i >= 8 { p(&format!("g{}:*", i - 8)) } else { p(&name(i)) })
                .collect();
            let mut model: BTreeSet<String> = BTreeSet::new();
            let mut todo: Vec<u8> = held
                .iter()
                .flat_map(|&i| if i >= 8 { (0..8).filter(|j| j % 2 == i - 8).collect() } else { vec![i] })
                .collect();
            while let Some(i) = todo.pop() {
                if model.insert(name(i)) {
                    todo.extend(defs[&i].implies.iter().map(|n| n.as_str()[4..].parse::<u8>().unwrap()));
                }
            }
            let got: BTreeSet<String> = catalog
                .resolve(&Scopes::new([], written))
                .granted()
                .iter()
                .map(ToString::to_string)
                .collect();
            prop_assert_eq!(got, model);
        }
    }
}
