//! Route guards on named permissions, decided once for every framework: a
//! [`ScopeGuard`] says which permissions a route needs (all of them, or
//! any one), and answers a token that lacks them with RFC 6750 §3.1's
//! `403` and `WWW-Authenticate: Bearer error="insufficient_scope",
//! scope="…"`, the same bytes from every adapter.
//!
//! ```
//! use pat_core::ScopeGuard;
//!
//! let guard = ScopeGuard::all(["repo:write"])?;
//! assert_eq!(
//!     guard.insufficient().challenge(),
//!     "Bearer realm=\"pat\", error=\"insufficient_scope\", \
//!      error_description=\"the token lacks a permission this route needs\", scope=\"repo:write\""
//! );
//! # Ok::<(), pat_core::ScopeGuardError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use crate::model::permission::{ParsePermissionError, Permission};
use crate::model::record::Identity;

/// A guard cannot be made of these names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeGuardError {
    /// One is not a permission name.
    #[error(transparent)]
    Name(#[from] ParsePermissionError),
    /// One is a wildcard: a route asks for names.
    #[error(
        "scope guard: `{}` is a wildcard; a route asks for names such as `repo:read`",
        crate::model::text::Echo(.0)
    )]
    Wildcard(String),
    /// None was given.
    #[error("a scope guard needs at least one permission name")]
    Empty,
}

/// The `error_description` of an insufficient-scope answer.
const DESCRIPTION: &str = "the token lacks a permission this route needs";

/// Which named permissions a route needs, and the answer for a token that
/// lacks them. Cheap to clone; the answer's bytes are made once.
#[derive(Clone)]
pub struct ScopeGuard {
    inner: Arc<Inner>,
}

struct Inner {
    names: Box<[Permission]>,
    any: bool,
    insufficient: InsufficientScope,
}

impl ScopeGuard {
    /// A guard that lets through a token holding every one of `names`.
    pub fn all<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<ScopeGuard, ScopeGuardError> {
        ScopeGuard::new(names, false)
    }

    /// A guard that lets through a token holding at least one of `names`.
    pub fn any<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<ScopeGuard, ScopeGuardError> {
        ScopeGuard::new(names, true)
    }

    fn new<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
        any: bool,
    ) -> Result<ScopeGuard, ScopeGuardError> {
        let mut list = Vec::new();
        for name in names {
            let name = Permission::new(name.as_ref())?;
            if name.is_wildcard() {
                return Err(ScopeGuardError::Wildcard(name.to_string()));
            }
            list.push(name);
        }
        if list.is_empty() {
            return Err(ScopeGuardError::Empty);
        }
        let insufficient = InsufficientScope::new(&list, crate::gate::DEFAULT_REALM);
        Ok(ScopeGuard {
            inner: Arc::new(Inner {
                names: list.into_boxed_slice(),
                any,
                insufficient,
            }),
        })
    }

    /// The same guard, its challenge naming `realm` (as the
    /// [`Gate`](crate::Gate)'s does; default
    /// [`DEFAULT_REALM`](crate::DEFAULT_REALM)).
    pub fn realm(self, realm: &str) -> ScopeGuard {
        let inner = Inner {
            names: self.inner.names.clone(),
            any: self.inner.any,
            insufficient: InsufficientScope::new(&self.inner.names, realm),
        };
        ScopeGuard {
            inner: Arc::new(inner),
        }
    }

    /// The permissions it asks for.
    pub fn names(&self) -> &[Permission] {
        &self.inner.names
    }

    /// Whether one of the names is enough (else all are needed).
    pub fn is_any(&self) -> bool {
        self.inner.any
    }

    /// Whether `identity` may pass: its token holds the names, its
    /// implications and wildcards counted ([`Identity::has_scope`]). No
    /// allocation.
    #[inline]
    pub fn allows(&self, identity: &Identity) -> bool {
        let names = &self.inner.names;
        if self.inner.any {
            names.iter().any(|n| identity.has_scope(n.as_str()))
        } else {
            names.iter().all(|n| identity.has_scope(n.as_str()))
        }
    }

    /// `Ok` when `identity` may pass, else the answer to send.
    #[inline]
    pub fn check(&self, identity: &Identity) -> Result<(), &InsufficientScope> {
        if self.allows(identity) {
            Ok(())
        } else {
            Err(&self.inner.insufficient)
        }
    }

    /// The answer for a token that lacks the permissions.
    pub fn insufficient(&self) -> &InsufficientScope {
        &self.inner.insufficient
    }
}

impl fmt::Debug for ScopeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeGuard")
            .field("names", &self.inner.names)
            .field("any", &self.inner.any)
            .finish()
    }
}

/// The answer to a token without the permissions a route needs: `403`,
/// one `WWW-Authenticate` challenge, and a JSON body for hooks that want
/// one. The same bytes in every framework.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsufficientScope {
    challenge: String,
    scope: String,
    json: String,
}

impl InsufficientScope {
    fn new(names: &[Permission], realm: &str) -> InsufficientScope {
        let scope = names
            .iter()
            .map(Permission::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        // Names are `[a-z0-9_.:-]`: nothing in them needs quoting.
        let challenge = format!(
            "Bearer realm={}, error=\"insufficient_scope\", error_description=\"{DESCRIPTION}\", \
             scope=\"{scope}\"",
            crate::gate::rejection::quoted_realm(realm)
        );
        let json = format!(
            "{{\"error\":\"insufficient_scope\",\"error_description\":\"{DESCRIPTION}\",\
             \"scope\":\"{scope}\"}}"
        );
        InsufficientScope {
            challenge,
            scope,
            json,
        }
    }

    /// `403`.
    pub fn status(&self) -> u16 {
        403
    }

    /// The `WWW-Authenticate` value (printable ASCII).
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// The permissions the route needs, space-separated (RFC 6750's
    /// `scope`).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// `{"error":"insufficient_scope","error_description":"…","scope":"…"}`.
    pub fn json_body(&self) -> &str {
        &self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::expiry::Expiry;
    use crate::model::record::TokenInfo;
    use crate::model::scope::Scopes;
    use crate::model::time::Timestamp;
    use crate::model::token::TokenId;

    fn identity(scopes: Scopes) -> Identity {
        let at = Timestamp::from_unix_secs(1).unwrap();
        let mut info = TokenInfo::new(
            TokenId::from_u64(1),
            "alice",
            at,
            Expiry::Hard {
                expires_at: Timestamp::MAX,
            },
        );
        info.scopes = scopes;
        Identity::new(&info, Timestamp::MAX)
    }

    fn named(names: &[&str]) -> Scopes {
        Scopes::new([], names.iter().map(|n| n.parse::<Permission>().unwrap()))
    }

    #[test]
    fn all_and_any_decide_on_what_the_token_holds() {
        let all = ScopeGuard::all(["repo:read", "repo:write"]).unwrap();
        let any = ScopeGuard::any(["repo:read", "repo:write"]).unwrap();
        let reader = identity(named(&["repo:read"]));
        let both = identity(named(&["repo:read", "repo:write"]));
        let unrestricted = identity(Scopes::unrestricted());
        let nodes_only = identity(
            [crate::Scope {
                node: crate::NodeId::from_bytes([1; 16]),
                perm: crate::Perm::READ,
            }]
            .into_iter()
            .collect(),
        );
        assert!(!all.allows(&reader) && all.allows(&both) && all.allows(&unrestricted));
        assert!(any.allows(&reader) && any.allows(&both) && any.allows(&unrestricted));
        assert!(!all.allows(&nodes_only) && !any.allows(&nodes_only));
        let refused = all.check(&reader).unwrap_err();
        assert_eq!(refused.status(), 403);
        assert_eq!(refused.scope(), "repo:read repo:write");
        assert_eq!(
            refused.json_body(),
            "{\"error\":\"insufficient_scope\",\"error_description\":\"the token lacks a \
             permission this route needs\",\"scope\":\"repo:read repo:write\"}"
        );
    }

    #[test]
    fn a_guard_is_made_of_names_only() {
        assert_eq!(
            ScopeGuard::all(["repo:*"]).unwrap_err().to_string(),
            "scope guard: `repo:*` is a wildcard; a route asks for names such as `repo:read`"
        );
        assert!(matches!(
            ScopeGuard::all(["Repo"]),
            Err(ScopeGuardError::Name(_))
        ));
        assert_eq!(
            ScopeGuard::any(Vec::<&str>::new()).unwrap_err().to_string(),
            "a scope guard needs at least one permission name"
        );
        let guard = ScopeGuard::all(["api"]).unwrap().realm("my \"app\"");
        assert!(
            guard
                .insufficient()
                .challenge()
                .starts_with("Bearer realm=\"my \\\"app\\\"\", error=\"insufficient_scope\""),
            "{}",
            guard.insufficient().challenge()
        );
    }
}
