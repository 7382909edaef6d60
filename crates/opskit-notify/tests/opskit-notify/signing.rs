//! Standard Webhooks signing and verification, and the seeds' X-Signature style.

use std::time::Duration;

use opskit_notify::Error;
use opskit_notify::signing::{
    FileSeenIds, MemorySeenIds, ReceivedHeaders, Rejection, Verifier, WebhookSecret,
    XSignatureSecret, sign,
};
use secrecy::SecretString;

// The reference vector of the Standard Webhooks libraries:
// standard-webhooks/standard-webhooks, libraries/go/webhook_test.go, `TestWebhookSign`
// (the same values are in svix-webhooks' test suites).
const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1_614_265_330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
// From the same file: a well-formed signature that belongs to no secret.
const FOREIGN_SIGNATURE: &str = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";

fn secret() -> WebhookSecret {
    WebhookSecret::parse(VECTOR_SECRET).unwrap()
}

fn headers(id: &str, ts: i64, sig: &str) -> ReceivedHeaders {
    ReceivedHeaders {
        id: Some(id.into()),
        timestamp: Some(ts.to_string()),
        signature: Some(sig.into()),
        key_id: None,
        x_signature: None,
    }
}

fn rejection(err: Error) -> Rejection {
    match err {
        Error::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn spec_vector_signs_to_the_published_signature() {
    let signed = sign(&[secret()], VECTOR_ID, VECTOR_TS, VECTOR_BODY).unwrap();
    assert_eq!(signed.signature, VECTOR_SIGNATURE);
    assert_eq!(signed.id, VECTOR_ID);
    assert_eq!(signed.timestamp, VECTOR_TS);
}

#[test]
fn spec_vector_verifies_with_and_without_the_whsec_prefix() {
    for text in [VECTOR_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        let v = Verifier::new(vec![WebhookSecret::parse(text).unwrap()]).unwrap();
        v.verify_at(
            &headers(VECTOR_ID, VECTOR_TS, VECTOR_SIGNATURE),
            VECTOR_BODY,
            VECTOR_TS,
        )
        .unwrap();
    }
}

#[test]
fn spec_foreign_signature_is_rejected() {
    let v = Verifier::new(vec![secret()]).unwrap();
    let err = v
        .verify_at(
            &headers(VECTOR_ID, VECTOR_TS, FOREIGN_SIGNATURE),
            VECTOR_BODY,
            VECTOR_TS,
        )
        .unwrap_err();
    assert_eq!(rejection(err), Rejection::SignatureMismatch);
}

#[test]
fn spec_multi_signature_header_passes_when_one_entry_matches() {
    // As in the Go suite's "valid multi sig is valid": unknown versions and foreign v1 entries
    // around the valid one.
    let sig = format!(
        "{FOREIGN_SIGNATURE} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {VECTOR_SIGNATURE} {FOREIGN_SIGNATURE}"
    );
    let v = Verifier::new(vec![secret()]).unwrap();
    v.verify_at(&headers(VECTOR_ID, VECTOR_TS, &sig), VECTOR_BODY, VECTOR_TS)
        .unwrap();
}

#[test]
fn spec_missing_headers_are_malformed() {
    let v = Verifier::new(vec![secret()]).unwrap();
    let full = headers(VECTOR_ID, VECTOR_TS, VECTOR_SIGNATURE);
    for (name, h) in [
        (
            "webhook-id",
            ReceivedHeaders {
                id: None,
                ..full.clone()
            },
        ),
        (
            "webhook-timestamp",
            ReceivedHeaders {
                timestamp: None,
                ..full.clone()
            },
        ),
        (
            "webhook-signature",
            ReceivedHeaders {
                signature: None,
                ..full.clone()
            },
        ),
    ] {
        let r = rejection(v.verify_at(&h, VECTOR_BODY, VECTOR_TS).unwrap_err());
        assert_eq!(r, Rejection::MissingHeader(name));
        assert_eq!(r.code(), "malformed_header");
    }
}

#[test]
fn round_trip_with_rotated_keys() {
    let old = secret();
    let new = WebhookSecret::generate();
    let body = br#"{"alert":"disk full"}"#;
    let signed = sign(
        &[old.clone(), new.clone()],
        "msg_rotate",
        1_700_000_000,
        body,
    )
    .unwrap();
    assert_eq!(signed.signature.split(' ').count(), 2);
    let received =
        ReceivedHeaders::from_pairs(signed.pairs().iter().map(|(k, v)| (*k, v.as_str())));
    // A receiver holding only the old key, only the new key, or both accepts it.
    for keys in [vec![old.clone()], vec![new.clone()], vec![new, old]] {
        Verifier::new(keys)
            .unwrap()
            .verify_at(&received, body, 1_700_000_000)
            .unwrap();
    }
}

#[test]
fn tampered_body_wrong_secret_old_timestamp_and_replay_each_have_their_own_reason() {
    let key = secret();
    let body = br#"{"alert":"disk full","host":"web-1"}"#;
    let now = 1_700_000_000;
    let signed = sign(std::slice::from_ref(&key), "msg_1", now, body).unwrap();
    let good = ReceivedHeaders::from_pairs(signed.pairs().iter().map(|(k, v)| (*k, v.as_str())));
    let verifier = Verifier::new(vec![key.clone()])
        .unwrap()
        .seen_ids(Box::new(MemorySeenIds::new()));

    let tampered = br#"{"alert":"disk fine","host":"web-1"}"#;
    let r = rejection(verifier.verify_at(&good, tampered, now).unwrap_err());
    assert_eq!(r, Rejection::BadSignature);
    assert!(r.to_string().contains("changed after signing"), "{r}");

    let other = Verifier::new(vec![WebhookSecret::generate()]).unwrap();
    let r = rejection(other.verify_at(&good, body, now).unwrap_err());
    assert_eq!(r, Rejection::WrongSecret);
    assert!(r.to_string().starts_with("wrong secret"), "{r}");

    let r = rejection(verifier.verify_at(&good, body, now + 301).unwrap_err());
    assert_eq!(
        r,
        Rejection::TimestampTooOld {
            age_secs: 301,
            tolerance_secs: 300
        }
    );
    let r = rejection(verifier.verify_at(&good, body, now - 301).unwrap_err());
    assert_eq!(r.code(), "timestamp_too_new");

    // Exactly at the tolerance still passes; the first delivery is accepted, the second is a replay.
    verifier.verify_at(&good, body, now + 300).unwrap();
    let r = rejection(verifier.verify_at(&good, body, now + 1).unwrap_err());
    assert_eq!(r, Rejection::Replayed { id: "msg_1".into() });
    assert_eq!(r.code(), "replayed");
}

#[test]
fn a_rejected_delivery_does_not_poison_the_replay_store() {
    let key = secret();
    let body = b"{}";
    let signed = sign(std::slice::from_ref(&key), "msg_2", 1_700_000_000, body).unwrap();
    let good = ReceivedHeaders::from_pairs(signed.pairs().iter().map(|(k, v)| (*k, v.as_str())));
    let verifier = Verifier::new(vec![key])
        .unwrap()
        .seen_ids(Box::new(MemorySeenIds::new()));
    assert!(
        verifier
            .verify_at(&good, b"{\"x\":1}", 1_700_000_000)
            .is_err()
    );
    verifier.verify_at(&good, body, 1_700_000_000).unwrap();
}

#[test]
fn tolerance_is_configurable_and_can_be_disabled() {
    let v = Verifier::new(vec![secret()])
        .unwrap()
        .tolerance(Some(Duration::from_secs(10)));
    let h = headers(VECTOR_ID, VECTOR_TS, VECTOR_SIGNATURE);
    assert_eq!(
        rejection(v.verify_at(&h, VECTOR_BODY, VECTOR_TS + 11).unwrap_err()).code(),
        "timestamp_too_old"
    );
    let v = Verifier::new(vec![secret()]).unwrap().tolerance(None);
    v.verify_at(&h, VECTOR_BODY, VECTOR_TS + 1_000_000).unwrap();
}

#[test]
fn malformed_headers_are_named() {
    let v = Verifier::new(vec![secret()]).unwrap();
    for (ts, sig, header, needle) in [
        (
            "yesterday",
            VECTOR_SIGNATURE,
            "webhook-timestamp",
            "Unix seconds",
        ),
        ("1614265330", "g0hM9SsE", "webhook-signature", "v1,<base64>"),
        (
            "1614265330",
            "v1,not base64!",
            "webhook-signature",
            "base64",
        ),
        (
            "1614265330",
            "v1a,abcd",
            "webhook-signature",
            "no `v1,<base64>`",
        ),
    ] {
        let h = ReceivedHeaders {
            id: Some(VECTOR_ID.into()),
            timestamp: Some(ts.into()),
            signature: Some(sig.into()),
            key_id: None,
            x_signature: None,
        };
        let r = rejection(v.verify_at(&h, VECTOR_BODY, VECTOR_TS).unwrap_err());
        match &r {
            Rejection::MalformedHeader { header: h, reason } => {
                assert_eq!(*h, header);
                assert!(reason.contains(needle), "{reason}");
            }
            other => panic!("expected malformed header, got {other:?}"),
        }
    }
}

#[test]
fn header_block_parsing_is_case_insensitive() {
    let block = format!(
        "POST /hook HTTP/1.1\nWebhook-Id: {VECTOR_ID}\nWEBHOOK-TIMESTAMP: {VECTOR_TS}\nwebhook-signature: {VECTOR_SIGNATURE}\r\n"
    );
    let h = ReceivedHeaders::parse_block(&block);
    Verifier::new(vec![secret()])
        .unwrap()
        .verify_at(&h, VECTOR_BODY, VECTOR_TS)
        .unwrap();
}

#[test]
fn bad_secrets_are_explained() {
    let err = WebhookSecret::parse("whsec_!!!").unwrap_err();
    assert!(err.to_string().contains("base64"), "{err}");
    assert!(WebhookSecret::parse("whsec_").is_err());
    assert!(Verifier::new(vec![]).is_err());
    assert!(sign(&[], "msg", 1, b"{}").is_err());
    assert!(sign(&[secret()], "a.b", 1, b"{}").is_err());
}

#[test]
fn secrets_never_show_in_debug() {
    let s = secret();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{dbg}");
    assert!(dbg.contains(&s.key_id()));
    let x = XSignatureSecret::new(SecretString::from("hunter2")).unwrap();
    assert!(!format!("{x:?}").contains("hunter2"));
}

#[test]
fn x_signature_matches_pythons_hmac_hexdigest() {
    // hmac.new(b"It's a Secret to Everybody", b"Hello, World!", hashlib.sha256).hexdigest(),
    // the example GitHub documents for its X-Hub-Signature-256 (same construction as the seeds').
    let x = XSignatureSecret::new(SecretString::from("It's a Secret to Everybody")).unwrap();
    let sig = x.sign(b"Hello, World!");
    assert_eq!(
        sig,
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    x.verify(&sig, b"Hello, World!").unwrap();
    assert_eq!(
        rejection(x.verify(&sig, b"Hello, World?").unwrap_err()),
        Rejection::SignatureMismatch
    );
    assert_eq!(
        rejection(x.verify("md5=abc", b"Hello, World!").unwrap_err()).code(),
        "malformed_header"
    );
}

#[test]
fn file_seen_ids_survive_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seen");
    let key = secret();
    let body = b"{}";
    let now = opskit_notify::signing::unix_now();
    let signed = sign(std::slice::from_ref(&key), "msg_file", now, body).unwrap();
    let h = ReceivedHeaders::from_pairs(signed.pairs().iter().map(|(k, v)| (*k, v.as_str())));
    let verifier = || {
        Verifier::new(vec![key.clone()])
            .unwrap()
            .seen_ids(Box::new(FileSeenIds::new(&path)))
    };
    verifier().verify(&h, body).unwrap();
    let r = rejection(verifier().verify(&h, body).unwrap_err());
    assert_eq!(r.code(), "replayed");
}

#[test]
fn memory_seen_ids_stay_bounded() {
    use opskit_notify::signing::SeenIds;
    let store = MemorySeenIds::with_capacity(2);
    let tol = Duration::from_secs(300);
    let now = 1_700_000_000;
    assert!(store.insert_new("a", now - 2, now, tol).unwrap());
    assert!(store.insert_new("b", now - 1, now, tol).unwrap());
    assert!(store.insert_new("c", now, now, tol).unwrap()); // evicts "a", the oldest
    assert!(!store.insert_new("c", now, now, tol).unwrap());
    assert!(!store.insert_new("b", now, now, tol).unwrap());
    // Ids signed long before `now` are forgotten.
    assert!(store.insert_new("b", now, now + 10_000, tol).unwrap());
}

#[test]
fn a_malformed_entry_does_not_reject_a_header_that_also_holds_a_valid_one() {
    let v = Verifier::new(vec![secret()]).unwrap();
    for sig in [
        format!("garbage {VECTOR_SIGNATURE}"),
        format!("v1,!!!not-base64!!! {VECTOR_SIGNATURE}"),
        format!("{VECTOR_SIGNATURE} v1,"),
    ] {
        v.verify_at(&headers(VECTOR_ID, VECTOR_TS, &sig), VECTOR_BODY, VECTOR_TS)
            .unwrap_or_else(|e| panic!("{sig}: {e}"));
    }
    // only malformed entries: still malformed, and the reason names one
    let err = v
        .verify_at(
            &headers(VECTOR_ID, VECTOR_TS, "garbage v1,!!!"),
            VECTOR_BODY,
            VECTOR_TS,
        )
        .unwrap_err();
    assert!(
        matches!(rejection(err), Rejection::MalformedHeader { ref reason, .. } if reason.contains("garbage"))
    );
}

#[test]
fn a_header_block_is_read_bounded() {
    let h = ReceivedHeaders::read_block(&b"webhook-id: msg_1\nwebhook-timestamp: 5\n"[..]).unwrap();
    assert_eq!(h.id.as_deref(), Some("msg_1"));
    // an endless input is refused after the limit, not read whole
    let endless = std::io::repeat(b'a');
    let err = ReceivedHeaders::read_block(endless).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
}
