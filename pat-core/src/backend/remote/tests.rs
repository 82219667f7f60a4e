//! The remote verifier against a real HTTP endpoint on 127.0.0.1.

use super::*;
use crate::model::token::TokenId;

const NODE: &str = "0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a";

#[test]
fn endpoint_answers_are_read_strictly() {
    let id = TokenId::generate();
    let active = format!(
        r#"{{"active":true,"username":"alice","sub":"alice","token_type":"pat","exp":100,"iat":10,"jti":"{id}","scope":"node:{NODE}:r"}}"#
    );
    let Ok((Said::Active(identity), prefixes, _)) = parse_answer(active.as_bytes()) else {
        panic!("{active}");
    };
    assert!(prefixes.is_empty(), "an older endpoint names none");
    assert_eq!(
        (identity.user(), identity.token_id(), identity.expires_at()),
        ("alice", id, Timestamp::from_unix_secs(100).unwrap())
    );
    assert_eq!(identity.scopes().to_string(), format!("node:{NODE}:r"));
    assert!(!identity.is_previous_secret());
    // A secret in its grace stays one through the verifier.
    let previous = active.replace(
        r#""active":true"#,
        r#""active":true,"pat_previous_secret":true"#,
    );
    let Ok((Said::Active(identity), _, _)) = parse_answer(previous.as_bytes()) else {
        panic!("{previous}");
    };
    assert!(identity.is_previous_secret());
    // The store's prefixes; one that is not a prefix is skipped.
    let named = active.replace(
        r#""active":true"#,
        r#""active":true,"pat_prefixes":["beta","no_t","acme"]"#,
    );
    let Ok((_, prefixes, _)) = parse_answer(named.as_bytes()) else {
        panic!("{named}");
    };
    assert_eq!(
        prefixes,
        [
            "beta".parse::<crate::Prefix>().unwrap(),
            "acme".parse().unwrap()
        ]
    );
    let bad = active.replace(
        r#""active":true"#,
        r#""active":true,"pat_previous_secret":1"#,
    );
    assert!(parse_answer(bad.as_bytes()).is_err());

    // A quota's use: spent as the endpoint answered unless it says not
    // (`pat_spent: false`, to `pat_spend=no`); an older endpoint says
    // nothing, and spent it.
    for (spent, says) in [
        ("", true),
        (r#","pat_spent":true"#, true),
        (r#","pat_spent":false"#, false),
    ] {
        let quota = active.replace(
            r#""active":true"#,
            &format!(r#""active":true,"pat_uses_left":2{spent}"#),
        );
        let Ok((Said::Active(identity), _, _)) = parse_answer(quota.as_bytes()) else {
            panic!("{quota}");
        };
        assert_eq!(identity.uses_left(), Some(2));
        assert_eq!(identity.is_quota_spent(), says, "{quota}");
    }
    let bad = active.replace(
        r#""active":true"#,
        r#""active":true,"pat_uses_left":2,"pat_spent":"no""#,
    );
    assert!(parse_answer(bad.as_bytes()).is_err());
    // A fresh token made with the largest quota has all of it left (the
    // attack review's finding: it was read as no count); one more is not
    // a quota pat makes.
    for (left, reads) in [(crate::MAX_USES, true), (crate::MAX_USES + 1, false)] {
        let quota = active.replace(
            r#""active":true"#,
            &format!(r#""active":true,"pat_uses_left":{left},"pat_spent":false"#),
        );
        match parse_answer(quota.as_bytes()) {
            Ok((Said::Active(identity), _, _)) if reads => {
                assert_eq!(identity.uses_left(), Some(left));
            }
            Err(e) if !reads => assert!(e.contains("pat_uses_left"), "{e}"),
            other => panic!("{quota}: {other:?}"),
        }
    }

    let said = |body: &[u8]| parse_answer(body).map(|(said, _, _)| said);
    assert_eq!(said(br#"{"active":false}"#), Ok(Said::Unknown));
    assert_eq!(
        said(br#"{"active":false,"pat_reason":"wrong_user"}"#),
        Ok(Said::WrongUser)
    );
    assert_eq!(
        said(br#"{"active":false,"pat_reason":"disabled"}"#),
        Ok(Said::Disabled)
    );
    assert_eq!(
        said(br#"{"active":false,"pat_reason":"expired","exp":5}"#),
        Ok(Said::Expired(Timestamp::from_unix_secs(5).unwrap()))
    );
    for (body, says) in [
        ("<html>", "not JSON"),
        ("{}", "no boolean `active`"),
        (r#"{"active":"yes"}"#, "no boolean `active`"),
        (
            r#"{"active":false,"pat_reason":"expired"}"#,
            "without `exp`",
        ),
        (r#"{"active":true,"jti":"x"}"#, "without `username`"),
        (r#"{"active":true,"username":"","jti":"x"}"#, "not a name"),
        (r#"{"active":true,"username":"a","jti":"x"}"#, "`jti`"),
    ] {
        let e = parse_answer(body.as_bytes()).unwrap_err();
        assert!(e.contains(says), "{body}: {e}");
    }
    let bad_scope = active.replace(":r\"", ":x\"");
    assert!(
        parse_answer(bad_scope.as_bytes())
            .unwrap_err()
            .contains("scope")
    );
    let negative = active.replace("\"exp\":100", "\"exp\":-1");
    assert!(
        parse_answer(negative.as_bytes())
            .unwrap_err()
            .contains("`exp`")
    );
}

proptest::proptest! {
    #[test]
    fn no_answer_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = parse_answer(&body);
    }
}

#[test]
fn waiters_get_an_answer_even_when_a_round_trip_panics() {
    let v = RemoteVerifier::connect("http://127.0.0.1:9/x", &TokenSecret::generate()).unwrap();
    let asked: Asked = (TokenSecret::generate().digest(), None, None, false);
    let (tx, rx) = tokio::sync::oneshot::channel();
    v.shared
        .waiting
        .lock()
        .unwrap()
        .insert(asked.clone(), vec![tx]);
    let shared = &v.shared;
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _reply = Reply {
            shared,
            asked: &asked,
            answer: Err("the remote check stopped before an answer".into()),
        };
        panic!("a bug in a round trip");
    }));
    assert!(crashed.is_err());
    let answer = rx.blocking_recv().expect("answered, not dropped");
    assert!(answer.is_err());
    assert!(
        v.shared.waiting.lock().unwrap().is_empty(),
        "nobody left waiting"
    );
}

#[test]
fn user_names_are_form_encoded() {
    let mut out = String::new();
    form_encode("a b&c=d/é~", &mut out);
    assert_eq!(out, "a%20b%26c%3Dd%2F%C3%A9~");
}
