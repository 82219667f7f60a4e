//! Limits on what a request may make a server read, the same in every
//! framework: the routes pat mounts read bodies within [`MAX_BODY_LEN`] and
//! [`BODY_READ_TIMEOUT`], and [`refuse_request`] is the check the reference
//! servers put in front of every route. An integrator's own server should
//! set the same (see the README's "Request hygiene").

use std::time::Duration;

use crate::routes::answer::Answer;

/// The largest body a route of pat's reads (management, introspection,
/// leak reports): 64 KiB, room for a leak report of 1,000 tokens.
pub const MAX_BODY_LEN: usize = 64 * 1024;

/// How long a route of pat's waits for the whole body: 10 s. A client that
/// announces a body and sends it slowly does not hold the connection
/// longer.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server waits for a request's head (request line and
/// headers): 10 s, in both reference servers.
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest request target (path and query) [`refuse_request`] lets
/// through: 8 KiB. (Past 64 KiB the `http` crate refuses a URI before any
/// route sees it: hyper answers 414, actix-web 400.)
pub const MAX_TARGET_LEN: usize = 8 * 1024;

impl Answer {
    /// 413: the body is over [`MAX_BODY_LEN`]. The connection is closed
    /// (the rest of the body is not read).
    pub fn body_too_large() -> Answer {
        Answer::body_larger_than(MAX_BODY_LEN)
    }

    /// 413: the body is over `limit` bytes, a route's own limit (as
    /// [`MAX_REPORT_LEN`](crate::secret_scanning::MAX_REPORT_LEN)). The
    /// connection is closed.
    pub fn body_larger_than(limit: usize) -> Answer {
        let mut a = Answer::error(
            413,
            "invalid_request",
            &format!("the body is larger than {limit} bytes"),
        );
        a.close = true;
        a
    }

    /// 408: the body did not arrive within [`BODY_READ_TIMEOUT`]; the
    /// connection is closed.
    pub fn body_too_slow() -> Answer {
        let mut a = Answer::error(
            408,
            "invalid_request",
            &format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        );
        a.close = true;
        a
    }

    /// 400: the body could not be read (the connection broke, or its
    /// framing was wrong); the connection is closed.
    pub fn body_unreadable() -> Answer {
        let mut a = Answer::error(400, "invalid_request", "the body could not be read");
        a.close = true;
        a
    }
}

/// What the reference servers answer before any route: a request target
/// over [`MAX_TARGET_LEN`] is 414; a request with both `Content-Length` and
/// `Transfer-Encoding` (a request-smuggling shape RFC 9112 lets a server
/// refuse) is 400 with no body, and the connection is closed, as
/// actix-web's parser answers it before any application code.
pub fn refuse_request(
    target_len: usize,
    content_length: bool,
    transfer_encoding: bool,
) -> Option<Answer> {
    if content_length && transfer_encoding {
        return Some(Answer {
            status: 400,
            body: String::new(),
            retry_after: None,
            close: true,
            content_type: Answer::CONTENT_TYPE,
        });
    }
    if target_len > MAX_TARGET_LEN {
        return Some(Answer::error(
            414,
            "invalid_request",
            &format!("the request target is longer than {MAX_TARGET_LEN} bytes"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_answer_json_and_close_when_a_body_is_left_unread() {
        let big = Answer::body_too_large();
        assert_eq!((big.status, big.close), (413, true));
        assert!(big.body.contains("65536"), "{}", big.body);
        let slow = Answer::body_too_slow();
        assert_eq!((slow.status, slow.close), (408, true));
        assert!(refuse_request(MAX_TARGET_LEN, true, false).is_none());
        let long = refuse_request(MAX_TARGET_LEN + 1, false, false).unwrap();
        assert_eq!((long.status, long.close), (414, false));
        let both = refuse_request(10, true, true).unwrap();
        assert_eq!(
            (both.status, both.body.as_str(), both.close),
            (400, "", true)
        );
    }
}
