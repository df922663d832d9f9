use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn session_tokens_verify_and_expire() {
    let keys = SessionKeys::new(SECRET);
    let token = keys.issue("o_buyer_1", 2_000);
    assert_eq!(keys.verify(&token, 1_999), Ok("o_buyer_1".into()));
    assert_eq!(keys.verify(&token, 2_000), Err(AuthError::Expired));
    let other = SessionKeys::new(b"another-secret-another-secret-xx");
    assert_eq!(other.verify(&token, 1_000), Err(AuthError::BadSignature));
    assert_eq!(keys.verify("a.b", 1_000), Err(AuthError::Malformed));
    let mut tampered = token.clone();
    tampered.insert(token.find('.').unwrap() + 2, 'x');
    assert!(keys.verify(&tampered, 1_000).is_err());
}

#[test]
fn a_token_signed_with_another_algorithm_is_refused() {
    let keys = SessionKeys::new(SECRET);
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"o_x","exp":9999999999}"#);
    let signed = format!("{header}.{claims}");
    let tag = hmac::sign(&keys.key, signed.as_bytes());
    let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(keys.verify(&token, 1), Err(AuthError::Malformed));
}

/// A token signed with the test secret from its two JSON parts.
fn signed(keys: &SessionKeys, header: &str, claims: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let tag = hmac::sign(&keys.key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[test]
fn tokens_from_other_issuers_verify_through_the_general_path() {
    let keys = SessionKeys::new(SECRET);
    // Another header spelling is decoded and parsed.
    let reordered = signed(
        &keys,
        r#"{"typ":"JWT","alg":"HS256"}"#,
        r#"{"sub":"o_1","exp":9999999999}"#,
    );
    assert_eq!(keys.verify(&reordered, 1), Ok("o_1".into()));
    // A payload longer than the stack's room is decoded on the heap.
    let padding = "p".repeat(PAYLOAD_BYTES_ON_STACK);
    let long = signed(
        &keys,
        JWT_HEADER,
        &format!(r#"{{"sub":"o_2","exp":9999999999,"name":"{padding}"}}"#),
    );
    assert_eq!(keys.verify(&long, 1), Ok("o_2".into()));
    // A `sub` with escapes is unescaped.
    let escaped = signed(
        &keys,
        JWT_HEADER,
        r#"{"sub":"o_\"3\u0041","exp":9999999999}"#,
    );
    assert_eq!(keys.verify(&escaped, 1), Ok("o_\"3A".into()));
}

#[test]
fn a_signature_of_the_wrong_length_is_bad_and_one_that_is_not_base64_malformed() {
    let keys = SessionKeys::new(SECRET);
    let token = keys.issue("o_buyer_1", 2_000);
    let (signed, _) = token.rsplit_once('.').unwrap();
    for tag in [vec![7u8; 16], vec![7u8; 32], vec![7u8; 200]] {
        let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&tag));
        assert_eq!(keys.verify(&forged, 1), Err(AuthError::BadSignature));
    }
    let not_base64 = format!("{signed}.not*base64");
    assert_eq!(keys.verify(&not_base64, 1), Err(AuthError::Malformed));
}

#[test]
fn admin_tokens_map_to_roles_and_accept_digests() {
    let digest: String = sha256(b"ops-token-123456")
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let tokens = AdminTokens::parse(&[
        "host:host-token-123456".into(),
        format!("ops:sha256:{digest}"),
    ])
    .unwrap();
    assert_eq!(tokens.authenticate("host-token-123456"), Ok(Role::Host));
    assert_eq!(tokens.authenticate("ops-token-123456"), Ok(Role::Ops));
    assert_eq!(
        tokens.authenticate("nope"),
        Err(AuthError::UnknownAdminToken)
    );
    assert!(Role::Admin.allows(Role::Host) && Role::Host.allows(Role::Ops));
    assert!(!Role::Ops.allows(Role::Host));
    assert!(AdminTokens::parse(&["king:abcdefghijklmn".into()]).is_err());
    assert!(AdminTokens::parse(&["host:short".into()]).is_err());
    assert!(AdminTokens::parse(&["host:looks.like.a-jwt".into()]).is_err());
    let header = http::HeaderValue::from_static("bearer abc");
    assert_eq!(bearer_token(Some(&header)), Ok("abc"));
}
