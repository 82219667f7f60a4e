//! The token settings page: one HTML page (a little vanilla JS and CSS,
//! embedded in this crate, no build step, nothing fetched from elsewhere)
//! that drives the [management API](crate::routes::management).
//!
//! A table of the user's tokens (label, expiry model, expiry, last use,
//! scopes, status) with a revoke button that asks for confirmation; a form
//! to create one (label, hard limit or auto refresh with a duration, an
//! optional cap, scopes); the new secret shown once, with a copy button and
//! the warning that it is shown only once; for admins, a field to pick the
//! user. The secret lives only in the page's memory: it is never in a URL,
//! never stored by the browser, and gone on reload.
//!
//! The page is served with a strict `Content-Security-Policy` (its own
//! script and style by hash, requests to its own origin only, no framing,
//! no form submissions), `Cache-Control: no-store`, `Referrer-Policy:
//! no-referrer` and `X-Content-Type-Options: nosniff`; pat-tower's
//! `token_panel` and pat-actix's `token_panel` send them all.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

const HTML: &str = include_str!("panel/tokens.html");
const STYLE: &str = include_str!("panel/tokens.css");
const SCRIPT: &str = include_str!("panel/tokens.js");

/// The page, ready to serve, for a management API mounted at one path.
#[derive(Clone, Debug)]
pub struct Panel {
    html: String,
    csp: String,
}

impl Panel {
    /// The `Content-Type` of the page.
    pub const CONTENT_TYPE: &'static str = "text/html; charset=utf-8";

    /// The page for the management API at `api` (an absolute path such as
    /// `/api/tokens`, or a URL of the same origin).
    pub fn new(api: &str) -> Panel {
        let html = HTML
            .replace("{{API}}", &attribute(api))
            .replace("{{STYLE}}", STYLE)
            .replace("{{SCRIPT}}", SCRIPT);
        let hash = |text: &str| {
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
        };
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
            hash(SCRIPT),
            hash(STYLE)
        );
        Panel { html, csp }
    }

    /// The HTML.
    pub fn html(&self) -> &str {
        &self.html
    }

    /// The `Content-Security-Policy` to send with it.
    pub fn content_security_policy(&self) -> &str {
        &self.csp
    }

    /// Every header to send with the page, the content type first.
    pub fn headers(&self) -> [(&'static str, &str); 6] {
        [
            ("content-type", Panel::CONTENT_TYPE),
            ("content-security-policy", &self.csp),
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
        ]
    }
}

/// `text` escaped for a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_its_csp_names_its_own_code() {
        let panel = Panel::new("/api/tokens");
        let html = panel.html();
        assert!(html.contains(r#"<meta name="pat-api" content="/api/tokens">"#));
        for forbidden in ["http://", "https://", "//cdn", "@import", "url("] {
            assert!(!html.contains(forbidden), "{forbidden} in the page");
        }
        // The embedded code cannot close its own element early.
        assert!(!SCRIPT.contains("</"), "`</` in the script");
        assert!(!STYLE.contains("</"), "`</` in the style");
        assert!(!html.contains("{{"), "a placeholder left");
        assert!(html.contains(&format!("<script>{SCRIPT}</script>")));
        let csp = panel.content_security_policy();
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(!csp.contains("unsafe"));
        // No inline handlers or styles, which the policy would block.
        for attr in [" onclick=", " onsubmit=", " style="] {
            assert!(!html.contains(attr), "{attr} in the page");
        }
    }

    #[test]
    fn the_api_path_cannot_break_out_of_its_attribute() {
        let html = Panel::new(r#"/x"><script>alert(1)</script>"#)
            .html()
            .to_owned();
        assert!(html.contains(r#"content="/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;""#));
    }
}
