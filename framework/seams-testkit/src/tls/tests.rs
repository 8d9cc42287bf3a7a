//! The files a [`TestCa`] writes: one CA per call, and a key only its owner reads.

use std::os::unix::fs::PermissionsExt;

use super::*;

#[test]
fn each_ca_is_its_own_and_the_key_is_private() {
    let a = TestCa::new().unwrap();
    let b = TestCa::new().unwrap();
    let pem = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    assert_ne!(pem(a.ca_file()), pem(b.ca_file()));
    for file in [a.ca_file(), a.cert_file()] {
        assert!(pem(file).starts_with("-----BEGIN CERTIFICATE-----"));
    }
    assert!(pem(a.key_file()).starts_with("-----BEGIN PRIVATE KEY-----"));
    let mode = std::fs::metadata(a.key_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
