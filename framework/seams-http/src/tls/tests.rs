//! HTTPS against a throwaway CA: a client that trusts it is served, one
//! that does not is refused, and so is a key anyone can read.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use seams_testkit::tls::TestCa;

use super::*;
use crate::server::{Limits, serve};

async fn serve_tls(pki: &TestCa) -> std::net::SocketAddr {
    let tls = server_config(&pki.cert_file(), &pki.key_file()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/hello", get(|| async { "over tls" }));
    tokio::spawn(serve(
        listener,
        app,
        Limits::default(),
        Some(tls),
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn a_client_trusting_the_ca_is_served_over_tls() {
    let pki = TestCa::new().unwrap();
    let addr = serve_tls(&pki).await;
    let client = client_builder(&authorities(&pki.ca_file()).unwrap())
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("https://{host}:{}/hello", addr.port());
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "over tls", "{host}");
    }
}

#[tokio::test]
async fn an_untrusted_certificate_and_plain_http_are_refused() {
    let pki = TestCa::new().unwrap();
    let addr = serve_tls(&pki).await;
    let url = format!("https://localhost:{}/hello", addr.port());
    // The public roots alone do not vouch for a private CA.
    let err = client_builder(&[])
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Nor does another CA.
    let other = TestCa::new().unwrap();
    let err = client_builder(&authorities(&other.ca_file()).unwrap())
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // Plain HTTP gets no answer from a TLS port.
    let plain = format!("http://127.0.0.1:{}/hello", addr.port());
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(&plain)
        .send()
        .await;
    assert!(res.is_err(), "{res:?}");
}

#[test]
fn a_key_others_can_read_or_a_bad_file_is_refused() {
    let pki = TestCa::new().unwrap();
    assert!(server_config(&pki.cert_file(), &pki.key_file()).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pki.key_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = server_config(&pki.cert_file(), &pki.key_file()).unwrap_err();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        std::fs::set_permissions(pki.key_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A certificate file as the key, an empty certificate file, a missing one.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(server_config(&empty, &pki.key_file()).is_err());
    assert!(server_config(&dir.path().join("nope.pem"), &pki.key_file()).is_err());
    assert!(authorities(&empty).is_err());
    // The leaf does not match another key.
    let other = TestCa::new().unwrap();
    assert!(server_config(&pki.cert_file(), &other.key_file()).is_err());
}
