//! The invariants the fuzz targets in `fuzz/` check, one function per parser
//! or decoder, each taking arbitrary bytes and panicking if its invariant
//! breaks. The proptests below run the same functions in CI, so a target and
//! its twin never drift apart. Hidden, behind the `fuzzing` feature: not an
//! API.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::backend::{Lookup, Verification, Verifier};
use crate::gate::{Gate, Mode, Outcome};
use crate::model::expiry::Expiry;
use crate::model::record::{Identity, TokenInfo};
use crate::model::scope::{Scope, Scopes};
use crate::model::time::Timestamp;
use crate::model::token::{TokenDigest, TokenId, TokenSecret};

/// A backend that knows every well-formed token, as `alice`: so that every
/// path of the gate, acceptance included, is reachable from random bytes.
struct EveryTokenIsAlices;

impl Verifier for EveryTokenIsAlices {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        let info = TokenInfo::new(
            TokenId::from_u64(1),
            "alice",
            Timestamp::UNIX_EPOCH,
            Expiry::Hard {
                expires_at: Timestamp::MAX,
            },
        );
        Verification::Ready(
            lookup
                .check(&info)
                .map(|expires_at| Identity::new(&info, expires_at)),
        )
    }
}

fn gates() -> &'static [Gate; 2] {
    static GATES: OnceLock<[Gate; 2]> = OnceLock::new();
    GATES.get_or_init(|| {
        let gate = Gate::new(Arc::new(EveryTokenIsAlices));
        [gate.clone(), gate.mode(Mode::Optional)]
    })
}

/// `Authorization` headers (the bytes split on `\n`, up to four) through the
/// gate in both modes: no panic; an identity only for exactly one header of
/// ours with a well-formed token (and, for Basic, the user `alice`);
/// rejections are 400 or 401 with header-safe challenges; "anonymous" only
/// in optional mode.
pub fn authorization(data: &[u8]) {
    let headers: Vec<&[u8]> = data.split(|b| *b == b'\n').take(4).collect();
    let headers = if data.is_empty() { Vec::new() } else { headers };
    for gate in gates() {
        let checking = gate.check_at(headers.iter().copied(), false, Timestamp::UNIX_EPOCH);
        let outcome = checking
            .into_ready()
            .unwrap_or_else(|_| panic!("this backend always answers at once"));
        match outcome {
            Outcome::Authenticated(identity) => {
                assert_eq!(headers.len(), 1, "identity from several headers");
                assert_eq!(identity.user(), "alice");
                assert!(crate::Credentials::claims(headers[0]));
            }
            Outcome::Anonymous => assert_eq!(gate.current_mode(), Mode::Optional),
            Outcome::Rejected(r) => {
                assert!(matches!(r.status(), 400 | 401), "{r:?}");
                for c in r.challenges() {
                    assert!(c.bytes().all(|b| (b' '..=b'~').contains(&b)), "{c:?}");
                }
            }
        }
    }
}

/// A presented token: no panic; a digest only for a prefix (2 to 16
/// letters and digits), `_` and 38 letters and digits, and then the same
/// digest as the parsed secret's; the default set of prefixes agrees for a
/// `pat_` token and calls any other foreign.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match TokenDigest::from_token(text) {
        Ok(digest) => {
            let (prefix, tail) = text.split_once('_').expect("a head");
            assert!(crate::Prefix::new(prefix).is_ok(), "{prefix:?}");
            assert!(tail.len() == 38 && tail.bytes().all(|b| b.is_ascii_alphanumeric()));
            let secret = TokenSecret::parse(text).expect("parses as it validates");
            assert_eq!(secret.digest(), digest);
            let standard = crate::Prefixes::default().digest(text);
            if prefix == "pat" {
                assert_eq!(standard, Ok(digest));
            } else {
                assert_eq!(standard, Err(crate::ParseTokenError::Foreign));
            }
        }
        Err(e) => {
            assert!(TokenSecret::parse(text).is_err());
            // Never echo a token, not even a broken one: the message is one
            // of the fixed texts, with at most its lengths filled in.
            assert!(
                TOKEN_ERRORS.contains(&digits_masked(&e.to_string()).as_str()),
                "{e}"
            );
        }
    }
}

/// Every message a presented token can get, digits masked.
const TOKEN_ERRORS: &[&str] = &[
    "not a personal access token: it does not start with this service's token prefix",
    "token has # characters after its prefix, expected #",
    "token contains a character that is not an ASCII letter or digit",
    "token checksum does not match: the token was mistyped or altered",
];

/// `s` with each run of digits replaced by one `#`.
fn digits_masked(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// A scope and a list of scopes: no panic; what parses prints in canonical
/// form and parses back to the same.
pub fn scope(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scope) = text.parse::<Scope>() {
        let shown = scope.to_string();
        assert_eq!(shown.parse::<Scope>().expect("canonical form"), scope);
    }
    let parsed: Result<Vec<Scope>, _> = text.split(',').map(str::parse).collect();
    if let Ok(list) = parsed {
        let scopes: Scopes = list.into_iter().collect();
        let again: Scopes = scopes.iter().copied().collect();
        assert_eq!(again, scopes);
    }
}

/// A duration: no panic; what parses is positive, whole, before year 9999,
/// and formats to a string that parses back to it; errors quote the input.
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match crate::parse_duration(text) {
        Ok(d) => {
            assert!(d > Duration::ZERO && d.subsec_nanos() == 0);
            assert!(Timestamp::UNIX_EPOCH.checked_add(d).is_some());
            let shown = crate::format_duration(d);
            assert_eq!(crate::parse_duration(&shown), Ok(d));
        }
        Err(e) => {
            let quoted = format!("`{}`", crate::redacted(text));
            assert!(e.to_string().contains(&quoted), "{e}");
        }
    }
}

/// A stored record: no panic; what decodes encodes to bytes that decode to
/// the same record.
#[cfg(all(unix, feature = "redb"))]
pub fn record(data: &[u8]) {
    use crate::backend::redb::codec;
    if let Ok(info) = codec::decode(data) {
        let again = codec::decode(&codec::encode(&info)).expect("re-encoded record decodes");
        assert_eq!(again, info);
    }
}

/// An admin-socket request frame and body, as the service reads them: no
/// panic, the frame limit holds, and what decodes re-encodes to the same.
#[cfg(all(unix, feature = "redb"))]
pub fn admin_request(data: &[u8]) {
    use crate::backend::redb::socket::protocol::{MAX_REQUEST, Request, read_frame};
    let mut cursor = std::io::Cursor::new(data);
    if let Ok(Some(body)) = read_frame(&mut cursor, MAX_REQUEST) {
        assert!(body.len() <= MAX_REQUEST);
    }
    if let Ok(req) = Request::decode(data) {
        let again = Request::decode(&req.encode()).expect("re-encoded request decodes");
        assert_eq!(format!("{again:?}"), format!("{req:?}"));
    }
}

/// An admin-socket reply body, as the CLI reads it: no panic, and what
/// decodes re-encodes to the same.
#[cfg(all(unix, feature = "redb"))]
pub fn admin_reply(data: &[u8]) {
    use crate::backend::redb::socket::protocol::{decode_reply, encode_reply};
    if let Ok(reply) = decode_reply(data) {
        let again = decode_reply(&encode_reply(&reply)).expect("re-encoded reply decodes");
        assert_eq!(format!("{again:?}"), format!("{reply:?}"));
    }
}

/// A management API create body from a user (not an admin, signed in
/// with no token): no panic; 201 with a secret that authenticates as that
/// user, or 400 / 403 with a JSON error that holds no secret.
pub fn management(data: &[u8]) {
    use crate::routes::management::{Management, Principal};
    let store = Arc::new(crate::MemoryStore::new());
    let m = Management::new(store.clone());
    let answer = m.create_blocking(&Principal::user("alice"), data, Timestamp::UNIX_EPOCH);
    let body: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON answer");
    match answer.status {
        201 => {
            let token = body["token"].as_str().expect("the secret");
            let digest = TokenDigest::from_token(token).expect("a well-formed secret");
            let found = crate::Admin::find(store.as_ref(), &digest, Timestamp::UNIX_EPOCH)
                .expect("memory")
                .expect("the new token");
            assert_eq!(found.user, "alice");
        }
        400 | 403 => {
            assert!(body["error_description"].is_string(), "{body}");
            assert!(!token_shaped(&answer.body), "{body}");
        }
        other => panic!("status {other}: {body}"),
    }
}

/// Whether `s` holds something shaped like a token (`pat_` and 8 letters
/// or digits), which [`crate::redacted`] would have cut.
fn token_shaped(s: &str) -> bool {
    s.match_indices("pat_").any(|(i, _)| {
        let rest = &s.as_bytes()[i + 4..];
        rest.len() >= 8 && rest[..8].iter().all(u8::is_ascii_alphanumeric)
    })
}

/// An introspection form body (RFC 7662's `token=` or pat's
/// `token_digest=` and `username=`, percent-encoded) from an allowed
/// caller, against a store where no token matches: no panic, and exactly
/// `{"active":false}` with status 200, or a 400 naming an unreadable field
/// (and echoing nothing of it).
pub fn introspection_form(data: &[u8]) {
    use crate::routes::introspection::Introspection;
    static INTRO: OnceLock<(Introspection, Identity)> = OnceLock::new();
    let (intro, caller) = INTRO.get_or_init(|| {
        let store = Arc::new(crate::MemoryStore::new());
        let info = TokenInfo::new(
            TokenId::from_u64(1),
            "gateway",
            Timestamp::UNIX_EPOCH,
            Expiry::Hard {
                expires_at: Timestamp::MAX,
            },
        );
        let caller = Identity::new(&info, Timestamp::MAX);
        (Introspection::new(store).allow_users(["gateway"]), caller)
    });
    let answer = intro.answer_blocking(caller, data, Timestamp::UNIX_EPOCH);
    let unreadable = |field: &str| {
        format!(
            r#"{{"error":"invalid_request","error_description":"`{field}` is not percent-encoded UTF-8"}}"#
        )
    };
    match answer.status {
        200 => assert_eq!(answer.body, r#"{"active":false}"#),
        400 => assert!(
            ["token", "token_digest", "username"]
                .iter()
                .any(|f| answer.body == unreadable(f)),
            "{}",
            answer.body
        ),
        other => panic!("status {other}: {}", answer.body),
    }
}

/// One target: arbitrary bytes in, a panic if the invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by name, as `fuzz/` and the proptests run them.
pub const TARGETS: &[(&str, Target)] = &[
    ("authorization", authorization),
    ("token", token),
    ("scope", scope),
    ("duration", duration),
    ("management", management),
    ("introspection_form", introspection_form),
    #[cfg(all(unix, feature = "redb"))]
    ("record", record),
    #[cfg(all(unix, feature = "redb"))]
    ("admin_request", admin_request),
    #[cfg(all(unix, feature = "redb"))]
    ("admin_reply", admin_reply),
];

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Bytes that look like what each target parses, mixed with noise, so
    /// the proptests reach past the first check.
    fn input() -> impl Strategy<Value = Vec<u8>> {
        let token = TokenSecret::generate().expose_secret().to_owned();
        let pieces = vec![
            "Bearer ".to_owned(),
            "Basic ".to_owned(),
            "YWxpY2U6".to_owned(),
            token,
            "node:0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a:rw".to_owned(),
            "1d12h".to_owned(),
            r#"{"label":"x","expire":"#.to_owned(),
            "token_digest=".to_owned(),
            "&username=".to_owned(),
            "%5F".to_owned(),
            "\n".to_owned(),
            ",".to_owned(),
            ":".to_owned(),
        ];
        let piece = prop_oneof![
            proptest::sample::select(pieces).prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..12),
        ];
        proptest::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn every_target_holds_on_arbitrary_input(data in input()) {
            for (_, target) in TARGETS {
                target(&data);
            }
        }
    }

    /// Writes `fuzz/corpus/`: run with `cargo test -p pat-core --lib
    /// write_seed_corpus -- --ignored` after a format change.
    #[test]
    #[ignore = "writes the seed corpus"]
    fn write_seed_corpus() {
        use crate::backend::redb::socket::protocol::{Failure, Reply, Request, encode_reply};
        use crate::{ExpiryPolicy, NewToken, NodeId, Perm};
        use base64::Engine as _;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let token = TokenSecret::generate();
        let t = token.expose_secret();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("alice:{t}"));
        let node = NodeId::from_bytes([7; 16]);
        let scopes: Scopes = [Scope {
            node,
            perm: Perm::READ,
        }]
        .into_iter()
        .collect();
        let at = Timestamp::from_unix_secs(1_700_000_000).unwrap();
        let mut info = TokenInfo::new(
            TokenId::from_u64(42),
            "alice",
            at,
            Expiry::Sliding {
                window: Duration::from_secs(600),
                max_lifetime: Some(Duration::from_secs(86_400)),
                expires_at: at,
            },
        );
        info.label = "deploy".into();
        info.scopes = scopes.clone();
        info.last_used_at = Some(at);
        let new = NewToken::new("alice", ExpiryPolicy::hard(Duration::from_secs(3600)))
            .label("ci")
            .scopes(scopes);
        let framed = |body: Vec<u8>| [(body.len() as u32).to_be_bytes().to_vec(), body].concat();
        let seeds: Vec<(&str, Vec<Vec<u8>>)> = vec![
            (
                "authorization",
                vec![
                    format!("Bearer {t}").into_bytes(),
                    format!("Basic {basic}").into_bytes(),
                    format!("bearer   {t}\nDigest x").into_bytes(),
                    b"Negotiate YIIabc".to_vec(),
                    b"Basic YWxpY2U=".to_vec(),
                ],
            ),
            (
                "token",
                vec![
                    t.as_bytes().to_vec(),
                    t.as_bytes()[..20].to_vec(),
                    b"ghp_x".to_vec(),
                ],
            ),
            (
                "scope",
                vec![
                    format!("node:{node}:r").into_bytes(),
                    format!("node:{node}:rw,node:{node}:w").into_bytes(),
                    b"node:X:wr".to_vec(),
                ],
            ),
            (
                "duration",
                vec![
                    b"1d12h".to_vec(),
                    b"10m".to_vec(),
                    b"1h30m".to_vec(),
                    b"10M".to_vec(),
                ],
            ),
            ("record", vec![crate::backend::redb::codec::encode(&info)]),
            (
                "management",
                vec![
                    br#"{"label":"ci","expire":"30d"}"#.to_vec(),
                    format!(r#"{{"auto":"10m","max_lifetime":"1d","scopes":["node:{node}:r"]}}"#)
                        .into_bytes(),
                    br#"{"user":"bob","expire":"1h"}"#.to_vec(),
                ],
            ),
            (
                "introspection_form",
                vec![
                    format!("token={t}").into_bytes(),
                    format!(
                        "token_type_hint=access_token&token_digest={}&username=al%69ce",
                        "ab".repeat(32)
                    )
                    .into_bytes(),
                ],
            ),
            (
                "admin_request",
                vec![
                    Request::Hello.encode(),
                    Request::Create { new, now: at }.encode(),
                    framed(Request::Revoke(TokenId::from_u64(42)).encode()),
                    Request::List {
                        user: Some("alice".into()),
                        include_expired: true,
                        now: at,
                    }
                    .encode(),
                ],
            ),
            (
                "admin_reply",
                vec![
                    encode_reply(&Ok(Reply::Tokens(vec![info.clone(), info.clone()]))),
                    encode_reply(&Ok(Reply::Count(3))),
                    encode_reply(&Err(Failure::Message("no".into()))),
                    encode_reply(&Err(Failure::NotFound(TokenId::from_u64(1)))),
                ],
            ),
        ];
        for (name, items) in seeds {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, item) in items.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), item).unwrap();
            }
        }
    }

    #[test]
    fn the_seed_corpus_passes() {
        for (name, target) in TARGETS {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fuzz/corpus")
                .join(name);
            let entries = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()));
            let mut seen = 0;
            for entry in entries {
                target(&std::fs::read(entry.unwrap().path()).unwrap());
                seen += 1;
            }
            assert!(seen > 0, "no seeds for {name}");
        }
    }
}
