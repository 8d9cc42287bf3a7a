//! Hashing, checking, the decoy for unknown addresses, and the limiters.

use super::*;

fn pw(s: &str) -> Password {
    Password::parse(s).unwrap()
}

#[tokio::test]
async fn a_hash_verifies_its_password_only() {
    let c = Credentials::new(Limits::default());
    let hash = c.hash(pw("correct horse")).await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    // A fresh salt each time.
    assert_ne!(hash, c.hash(pw("correct horse")).await.unwrap());
    assert!(
        c.verify("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap()
    );
    assert!(
        !c.verify("correct horsE".into(), Some(hash.clone()))
            .await
            .unwrap()
    );
    assert!(!c.verify(String::new(), Some(hash)).await.unwrap());
}

#[tokio::test]
async fn no_stored_hash_never_matches_not_even_the_decoy_s_password() {
    let c = Credentials::new(Limits::default());
    for stored in [None, Some(String::new()), Some("not a hash".to_owned())] {
        assert!(
            !c.verify("not a password anyone has".into(), stored.clone())
                .await
                .unwrap(),
            "{stored:?}"
        );
        assert!(!c.verify("anything".into(), stored).await.unwrap());
    }
}

#[test]
fn each_limit_counts_its_own_keys() {
    let c = Credentials::new(Limits {
        per_email: std::num::NonZeroU32::new(2).unwrap(),
        per_address: std::num::NonZeroU32::new(3).unwrap(),
    });
    assert!(c.attempt_for("ann").is_ok());
    assert!(c.attempt_for("ann").is_ok());
    match c.attempt_for("ann") {
        Err(Refused::TooMany(wait)) => assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        ),
        other => panic!("expected too many, got {other:?}"),
    }
    assert!(c.attempt_for("bob").is_ok(), "another email is not held up");
    for _ in 0..3 {
        assert!(c.attempt_from("10.0.0.1").is_ok());
    }
    assert!(matches!(
        c.attempt_from("10.0.0.1"),
        Err(Refused::TooMany(_))
    ));
    assert!(c.attempt_from("10.0.0.2").is_ok());
    assert_eq!(c.tracked(), 4);
    c.forget_idle();
    // Keys whose limit is still running are kept.
    assert!(c.tracked() >= 2);
}
