//! HTTPS against a throwaway CA: a client that trusts it is served, one
//! that does not is refused, and so is a key anyone can read.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::*;
use crate::server::{Limits, serve};

/// A CA and a certificate it issued for `localhost` and 127.0.0.1, as PEM
/// files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf_cert.pem()).unwrap();
        seams_auth::private::write(
            &dir.path().join("key.pem"),
            leaf_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

async fn serve_tls(pki: &Pki) -> std::net::SocketAddr {
    let tls = server_config(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap();
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
    let pki = Pki::new();
    let addr = serve_tls(&pki).await;
    let client = client_builder(&authorities(&pki.path("ca.pem")).unwrap())
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
    let pki = Pki::new();
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
    let other = Pki::new();
    let err = client_builder(&authorities(&other.path("ca.pem")).unwrap())
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
    let pki = Pki::new();
    assert!(server_config(&pki.path("cert.pem"), &pki.path("key.pem")).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pki.path("key.pem"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let err = server_config(&pki.path("cert.pem"), &pki.path("key.pem")).unwrap_err();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
        std::fs::set_permissions(pki.path("key.pem"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    // A certificate file as the key, an empty certificate file, a missing one.
    std::fs::write(pki.path("empty.pem"), "").unwrap();
    assert!(server_config(&pki.path("empty.pem"), &pki.path("key.pem")).is_err());
    assert!(server_config(&pki.path("nope.pem"), &pki.path("key.pem")).is_err());
    assert!(authorities(&pki.path("empty.pem")).is_err());
    // The leaf does not match another key.
    let other = Pki::new();
    assert!(server_config(&pki.path("cert.pem"), &other.path("key.pem")).is_err());
}
