use std::path::Path;

use axum::http::HeaderValue;

use super::*;

fn width() -> BucketWidth {
    BucketWidth::from_seconds(3600).unwrap()
}

fn spec(name: &str, token: &Token, scope: &str) -> TokenSpec {
    TokenSpec {
        name: name.into(),
        scopes: Scopes::parse(scope.split(',')).unwrap(),
        services: None,
        hash: token.hash(),
        limits: TokenLimits::default(),
    }
}

fn headers(authorization: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in authorization {
        headers.append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    headers
}

#[test]
fn a_token_is_found_by_its_hash_and_every_other_credential_is_refused_by_reason() {
    let writer = Token::generate().unwrap();
    let reader = Token::generate().unwrap();
    let config = AccessConfig {
        tokens: vec![spec("w", &writer, "write"), spec("r", &reader, "read")],
        ..AccessConfig::default()
    };
    let access = Access::new(&config, None, Arc::default(), width());
    let who = |values: &[&str], basic: bool| {
        access
            .authenticate(&headers(values), basic)
            .map(|c| c.name().to_owned())
    };
    assert_eq!(
        who(&[&format!("Bearer {}", writer.reveal())], false).unwrap(),
        "w"
    );
    assert_eq!(
        who(&[&format!("bearer  {} ", reader.reveal())], false).unwrap(),
        "r"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("me:{}", reader.reveal()));
    assert_eq!(who(&[&format!("Basic {basic}")], true).unwrap(), "r");
    let reason = |values: &[&str], basic: bool| who(values, basic).unwrap_err().reason();
    assert_eq!(reason(&[], false), "missing_token");
    assert_eq!(reason(&["Bearer tb_nope"], false), "unknown_token");
    assert_eq!(
        reason(&[&format!("Basic {basic}")], false),
        "malformed_token"
    );
    assert_eq!(
        reason(&[&format!("Token {}", writer.reveal())], false),
        "malformed_token"
    );
    assert_eq!(reason(&["Bearer"], false), "malformed_token");
    let twice = format!("Bearer {}", writer.reveal());
    assert_eq!(reason(&[&twice, &twice], false), "malformed_token");
    assert_eq!(
        reason(&[&format!("Bearer {}", "x".repeat(600))], false),
        "malformed_token"
    );
}

#[test]
fn without_tokens_every_caller_is_anonymous_with_every_scope() {
    let access = Access::open(Arc::default(), width());
    assert!(!access.enforcing());
    let caller = access.authenticate(&headers(&[]), false).unwrap();
    assert!(Scope::ALL.into_iter().all(|s| caller.may(s)));
    assert!(caller.services().is_none());
}

#[test]
fn the_posture_refuses_a_network_address_without_tokens() {
    let open = AccessConfig::default();
    let loopback = [
        "127.0.0.1:8080".parse().unwrap(),
        "[::1]:4317".parse().unwrap(),
    ];
    check_posture(&open, None, &loopback).unwrap();
    let wide: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let error = check_posture(&open, None, &[loopback[0], wide]).unwrap_err();
    assert!(
        error.to_string().contains("0.0.0.0:8080 without tokens"),
        "{error}"
    );
    assert!(error.to_string().contains("--insecure-no-auth"), "{error}");
    let insecure = AccessConfig {
        insecure_no_auth: true,
        ..AccessConfig::default()
    };
    check_posture(&insecure, None, &[wide]).unwrap();
    let token = Token::generate().unwrap();
    let tokens = AccessConfig {
        tokens: vec![spec("a", &token, "read")],
        ..AccessConfig::default()
    };
    check_posture(&tokens, None, &[wide]).unwrap();
}

fn write_tokens(path: &Path, specs: &[TokenSpec]) {
    let text: Vec<String> = specs.iter().map(tokens_file::render).collect();
    std::fs::write(path, text.join("\n")).unwrap();
}

#[test]
fn a_reload_replaces_the_tokens_but_never_turns_access_control_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    let old = Token::generate().unwrap();
    let new = Token::generate().unwrap();
    write_tokens(&path, &[spec("old", &old, "read")]);
    let config = AccessConfig {
        tokens_file: Some(path.clone()),
        tokens: tokens_file::load(&path).unwrap(),
        ..AccessConfig::default()
    };
    let access = Access::new(&config, None, Arc::default(), width());
    let bearer = |t: &Token| headers(&[&format!("Bearer {}", t.reveal())]);
    assert!(access.authenticate(&bearer(&old), false).is_ok());
    write_tokens(&path, &[spec("new", &new, "read")]);
    assert_eq!(access.reload().unwrap(), "1 token(s)");
    assert_eq!(
        access.authenticate(&bearer(&old), false).unwrap_err(),
        Denial::UnknownToken
    );
    assert!(access.authenticate(&bearer(&new), false).is_ok());
    std::fs::write(&path, "# every token removed\n").unwrap();
    assert!(matches!(
        access.reload(),
        Err(AccessError::WouldOpen { .. })
    ));
    assert!(access.authenticate(&bearer(&new), false).is_ok());
    std::fs::write(&path, "[[token]]\nname = 3\n").unwrap();
    assert!(matches!(access.reload(), Err(AccessError::Tokens(_))));
    assert!(access.authenticate(&bearer(&new), false).is_ok());
}

#[test]
fn a_reload_keeps_the_limit_state_of_a_token_whose_limits_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.toml");
    let token = Token::generate().unwrap();
    let limited = TokenSpec {
        limits: TokenLimits {
            readings_per_second: std::num::NonZeroU32::new(5),
            ..TokenLimits::default()
        },
        ..spec("w", &token, "write")
    };
    write_tokens(&path, std::slice::from_ref(&limited));
    let config = AccessConfig {
        tokens_file: Some(path.clone()),
        tokens: vec![limited.clone()],
        ..AccessConfig::default()
    };
    let access = Access::new(&config, None, Arc::default(), width());
    let bearer = headers(&[&format!("Bearer {}", token.reveal())]);
    let state = |a: &Access| {
        a.authenticate(&bearer, false)
            .unwrap()
            .limit_state()
            .cloned()
            .unwrap()
    };
    let before = state(&access);
    access.reload().unwrap();
    assert!(Arc::ptr_eq(&before, &state(&access)));
    let changed = TokenSpec {
        limits: TokenLimits::default(),
        ..limited
    };
    write_tokens(&path, &[changed]);
    access.reload().unwrap();
    assert!(!Arc::ptr_eq(&before, &state(&access)));
}
