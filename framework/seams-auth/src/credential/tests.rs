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

/// Gives `path` the modification time `at`, as whoever replaces the file would.
fn set_modified(path: &std::path::Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[test]
fn a_token_file_is_reread_only_when_its_modification_time_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.jwt");
    let then = SystemTime::now() - Duration::from_secs(60);
    crate::private::write(&path, b"first.token.sig").unwrap();
    set_modified(&path, then);
    // Looking at the file every time: only its modification time decides.
    let file = TokenFile::with_recheck(&path, Duration::ZERO).unwrap();
    crate::private::write(&path, b"second.token.sig").unwrap();
    set_modified(&path, then);
    assert_eq!(&*file.token().unwrap(), "first.token.sig");
    set_modified(&path, then + Duration::from_secs(1));
    assert_eq!(&*file.token().unwrap(), "second.token.sig");
}

#[test]
fn a_token_file_is_not_looked_at_again_within_its_recheck_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.jwt");
    let then = SystemTime::now() - Duration::from_secs(60);
    crate::private::write(&path, b"first.token.sig").unwrap();
    set_modified(&path, then);
    let file = TokenFile::with_recheck(&path, Duration::from_secs(3600)).unwrap();
    crate::private::write(&path, b"second.token.sig").unwrap();
    set_modified(&path, then + Duration::from_secs(1));
    assert_eq!(&*file.token().unwrap(), "first.token.sig");
}

#[tokio::test]
async fn a_self_minted_token_is_reused_until_half_its_life_then_renewed() {
    let keys = KeyStore::in_memory(SigningKeys::generate().unwrap());
    let verifier = crate::Verifier::new(vec![crate::Issuer::deployment("shop", keys.clone())]);
    let minted = SelfMinted::new(
        Minter::new(keys.clone(), "shop"),
        "gateway",
        Vec::new(),
        Duration::from_secs(3600),
    );
    let first = minted.token().unwrap();
    // The same token, not one minted again (which, within one second,
    // would read the same).
    assert!(
        Arc::ptr_eq(&first, &minted.token().unwrap()),
        "reused while fresh"
    );
    let who = verifier.verify(&first).await.unwrap();
    assert_eq!(
        who,
        seams_core::auth::Principal::Service {
            name: "gateway".into(),
            capabilities: vec![]
        }
    );
    // A lifetime of two seconds is renewed from its second second on,
    // while it is still valid.
    let short = SelfMinted::new(
        Minter::new(keys, "shop"),
        "billing",
        vec!["billing".into()],
        Duration::from_secs(2),
    );
    let a = short.token().unwrap();
    let exp = short.state.read().unwrap().as_ref().unwrap().1;
    let half = UNIX_EPOCH + Duration::from_secs(exp - 1);
    // A little past the boundary, so the wall clock has surely crossed it.
    if let Ok(wait) = half.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(20)).await;
    }
    let b = short.token().unwrap();
    assert_ne!(a, b, "renewed at half its life");
    assert!(
        Arc::ptr_eq(&b, &short.token().unwrap()),
        "the renewal is reused"
    );
    assert!(verifier.verify(&b).await.unwrap().runs("billing"));
}
