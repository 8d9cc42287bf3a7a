//! A service's token: read from its private file and reread when the file
//! is replaced, or minted and renewed by the process itself.

use std::time::Duration;

use super::*;
use crate::keys::{KeyStore, SigningKeys};

const SHORT: Duration = Duration::from_millis(50);

#[test]
fn a_token_file_is_reread_when_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.jwt");
    assert!(
        TokenFile::with_recheck(&path, SHORT).is_err(),
        "missing file"
    );
    crate::private::write(&path, b"  \n").unwrap();
    assert!(TokenFile::with_recheck(&path, SHORT).is_err(), "blank file");
    crate::private::write(&path, b"first.token.sig\n").unwrap();
    let file = TokenFile::with_recheck(&path, SHORT).unwrap();
    assert_eq!(&*file.token().unwrap(), "first.token.sig");
    std::thread::sleep(Duration::from_millis(20));
    crate::private::write(&path, b"second.token.sig").unwrap();
    std::thread::sleep(SHORT * 2);
    assert_eq!(&*file.token().unwrap(), "second.token.sig");
    // A broken replacement keeps the token that worked.
    std::thread::sleep(Duration::from_millis(20));
    crate::private::write(&path, b"").unwrap();
    std::thread::sleep(SHORT * 2);
    assert_eq!(&*file.token().unwrap(), "second.token.sig");
}

#[cfg(unix)]
#[test]
fn a_token_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.jwt");
    std::fs::write(&path, "a.b.c").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(TokenFile::with_recheck(&path, SHORT).is_err());
}

#[tokio::test]
async fn a_self_minted_token_is_reused_then_renewed() {
    let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
    let verifier = crate::Verifier::new(vec![crate::Issuer::deployment("shop", keys.clone())]);
    let minted = SelfMinted::new(
        Minter::new(keys.clone(), "shop"),
        "gateway",
        Vec::new(),
        Duration::from_secs(3600),
    );
    let first = minted.token().unwrap();
    assert_eq!(first, minted.token().unwrap(), "reused while fresh");
    let who = verifier.verify(&first).await.unwrap();
    assert_eq!(
        who,
        seams_core::auth::Principal::Service {
            name: "gateway".into(),
            capabilities: vec![]
        }
    );
    // A lifetime of two seconds is renewed once one has passed.
    let short = SelfMinted::new(
        Minter::new(keys, "shop"),
        "billing",
        vec!["billing".into()],
        Duration::from_secs(2),
    );
    let a = short.token().unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let b = short.token().unwrap();
    assert_ne!(a, b);
    assert!(verifier.verify(&b).await.unwrap().runs("billing"));
}
