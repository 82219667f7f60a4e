//! Records, requests and identities: validation and their rules.

use super::*;
use std::time::Duration;

fn new(user: &str) -> NewToken {
    NewToken::new(user, ExpiryPolicy::hard(Duration::from_secs(60)))
}

// Issue 21, finding 10: 20,000 scopes were accepted, a 920 KB record
// read on every miss and returned whole by `/whoami`.
#[test]
fn a_token_carries_at_most_64_scopes() {
    let scopes = |n: usize| -> Scopes {
        (0..n)
            .map(|i| {
                format!("node:00000000-0000-4000-8000-{i:012x}:r")
                    .parse::<crate::Scope>()
                    .unwrap()
            })
            .collect()
    };
    let id = TokenId::from_u64(1);
    let now = Timestamp::UNIX_EPOCH;
    assert!(new("a").scopes(scopes(MAX_SCOPES)).to_info(id, now).is_ok());
    let e = new("a")
        .scopes(scopes(MAX_SCOPES + 1))
        .to_info(id, now)
        .unwrap_err();
    assert!(
        matches!(e, NewTokenError::TooManyScopes { count: 65, max: 64 }),
        "{e}"
    );
    assert_eq!(e.to_string(), "65 scopes: a token carries at most 64");
}

#[test]
fn bad_names_are_refused_with_the_reason() {
    let id = TokenId::from_u64(1);
    let now = Timestamp::UNIX_EPOCH;
    for (user, reason) in [
        ("", "empty"),
        ("a:b", "`:`"),
        (" alice", "white space"),
        ("al\nice", "control"),
        (&"x".repeat(256) as &str, "255"),
    ] {
        let msg = new(user).to_info(id, now).unwrap_err().to_string();
        assert!(msg.contains(reason), "{user:?}: {msg}");
    }
    assert!(matches!(
        new("a").label("x\ty").to_info(id, now),
        Err(NewTokenError::Label { .. })
    ));
    assert!(new("alice@example.com").to_info(id, now).is_ok());
    assert!(new("Zoë").label("").to_info(id, now).is_ok());
}
