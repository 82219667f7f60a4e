//! The one cross-site request rule of every route pat mounts that changes
//! state: self-service (`DELETE …/self`, `POST …/self/rotate`), the
//! management API (`POST`, `DELETE`) and introspection (a use of the
//! token). Leak reports are public by design and take none.
//!
//! 1. A request whose `Sec-Fetch-Site` says another site sent it (anything
//!    but `same-origin` or `none`) is refused: browsers send the header,
//!    and a page of another site has no business here.
//! 2. On self-service and management, a request whose credentials a
//!    browser adds by itself (HTTP Basic it cached, a cookie session) must
//!    also carry [`CSRF_HEADER`] with any non-empty value: a cross-site
//!    form cannot send a custom header, and a cross-site script cannot
//!    without a CORS preflight these routes never allow. A `Bearer`
//!    request needs nothing more, since a browser never adds a Bearer
//!    token by itself: a bot rotating its own token keeps working
//!    unchanged.
//!
//! Introspection callers (RFC 7662 gateways, often HTTP Basic, never
//! browsers) need only the first rule. The adapters hand the three headers
//! over as bytes and send the refusal as is, so both frameworks answer
//! alike.

use crate::routes::answer::Answer;

/// The header a state-changing request with browser-sent credentials must
/// carry, with any non-empty value (see the [module documentation](self)).
pub const CSRF_HEADER: &str = "x-pat-csrf";

/// What the rule looks at in a request: its `Sec-Fetch-Site`, its
/// [`CSRF_HEADER`] and its `Authorization` header, as the client sent them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrossSite<'a> {
    sec_fetch_site: Option<&'a [u8]>,
    csrf: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
}

impl<'a> CrossSite<'a> {
    /// The headers of a request (`None` for each one absent).
    pub fn new(
        sec_fetch_site: Option<&'a [u8]>,
        csrf: Option<&'a [u8]>,
        authorization: Option<&'a [u8]>,
    ) -> CrossSite<'a> {
        CrossSite {
            sec_fetch_site,
            csrf,
            authorization,
        }
    }

    /// For a request that changes tokens (self-service, management): a 403
    /// to answer instead, or `None` to go on.
    pub fn refuse_token_change(&self) -> Option<Answer> {
        if let Some(refused) = self.refuse_other_site() {
            return Some(refused);
        }
        if self.bearer() || self.csrf.is_some_and(|v| !v.is_empty()) {
            return None;
        }
        Some(forbidden(&format!(
            "a request that changes tokens with credentials a browser sends by itself \
             (HTTP Basic, a cookie) must carry the `{CSRF_HEADER}` header"
        )))
    }

    /// For an introspection request: a 403 to answer instead, or `None`.
    pub fn refuse_introspection(&self) -> Option<Answer> {
        self.refuse_other_site()
    }

    /// The headers of a request, each found by `header` (its value by
    /// lowercase name): what an adapter calls, so that the names are
    /// written once.
    pub fn from_headers(header: impl Fn(&str) -> Option<&'a [u8]>) -> CrossSite<'a> {
        CrossSite::new(
            header("sec-fetch-site"),
            header(CSRF_HEADER),
            header("authorization"),
        )
    }

    fn refuse_other_site(&self) -> Option<Answer> {
        match self.sec_fetch_site {
            Some(b"same-origin" | b"none") | None => None,
            Some(_) => Some(forbidden(
                "a request from another site may not change tokens",
            )),
        }
    }

    /// Whether the credentials are a Bearer token (scheme case-insensitive,
    /// as the gate reads it).
    fn bearer(&self) -> bool {
        self.authorization
            .is_some_and(|v| v.len() > 7 && v[..6].eq_ignore_ascii_case(b"bearer") && v[6] == b' ')
    }
}

fn forbidden(description: &str) -> Answer {
    Answer::error(403, "forbidden", description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(site: Option<&str>, csrf: Option<&str>, auth: Option<&str>) -> (bool, bool) {
        let c = CrossSite::new(
            site.map(str::as_bytes),
            csrf.map(str::as_bytes),
            auth.map(str::as_bytes),
        );
        (
            c.refuse_token_change().is_some(),
            c.refuse_introspection().is_some(),
        )
    }

    #[test]
    fn the_rule_in_a_table() {
        let basic = Some("Basic YWxpY2U6cGF0");
        let bearer = Some("Bearer pat_x");
        for (site, csrf, auth, change, intro) in [
            // Another site: refused everywhere, whatever else it carries.
            (Some("cross-site"), Some("1"), bearer, true, true),
            (Some("same-site"), Some("1"), basic, true, true),
            (Some("CROSS-SITE"), None, bearer, true, true),
            // Browser-sent credentials need the header to change tokens.
            (None, None, basic, true, false),
            (Some("same-origin"), None, basic, true, false),
            (Some("same-origin"), Some(""), basic, true, false),
            (Some("same-origin"), Some("1"), basic, false, false),
            (None, None, None, true, false),
            // Bearer: a browser never adds it by itself.
            (None, None, bearer, false, false),
            (Some("none"), None, Some("bEaReR pat_x"), false, false),
            (Some("same-origin"), None, bearer, false, false),
            // Not Bearer, though it starts like it.
            (None, None, Some("Bearerpat_x"), true, false),
            (None, None, Some("Bearer "), true, false),
        ] {
            assert_eq!(
                refused(site, csrf, auth),
                (change, intro),
                "{site:?} {csrf:?} {auth:?}"
            );
        }
    }

    #[test]
    fn refusals_are_403_json_naming_the_header() {
        let a = CrossSite::new(None, None, None)
            .refuse_token_change()
            .expect("refused");
        assert_eq!(a.status, 403);
        assert!(a.body.contains("x-pat-csrf"), "{}", a.body);
        let a = CrossSite::new(Some(b"cross-site"), None, None)
            .refuse_introspection()
            .expect("refused");
        assert!(a.body.contains("another site"), "{}", a.body);
    }
}
