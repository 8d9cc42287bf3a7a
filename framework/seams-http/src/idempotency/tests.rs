//! Fingerprints separate what must be separated.

use super::*;

#[test]
fn fingerprints_cover_method_path_and_body() {
    let base = fingerprint("POST", "/billing/invoices", b"{}");
    assert_eq!(base, fingerprint("POST", "/billing/invoices", b"{}"));
    assert_ne!(base, fingerprint("PUT", "/billing/invoices", b"{}"));
    assert_ne!(base, fingerprint("POST", "/billing/invoices/1", b"{}"));
    assert_ne!(base, fingerprint("POST", "/billing/invoices", b"{ }"));
    // Length-prefixing keeps boundaries: moving bytes between parts changes the hash.
    assert_ne!(
        fingerprint("POST", "/a", b"b"),
        fingerprint("POST", "/ab", b"")
    );
}

#[test]
fn keys_are_visible_ascii_up_to_255() {
    assert!(valid_key("a"));
    assert!(valid_key(&"k".repeat(255)));
    assert!(!valid_key(""));
    assert!(!valid_key(&"k".repeat(256)));
    assert!(!valid_key("has space"));
    assert!(!valid_key("ünïcode"));
}
