//! The composition root's tables agree with each other.

use super::*;

#[test]
fn every_capability_declares_its_dependencies_in_the_same_order() {
    let declared: Vec<&str> = declared().iter().map(|d| d.capability).collect();
    assert_eq!(declared, CAPABILITIES);
}
