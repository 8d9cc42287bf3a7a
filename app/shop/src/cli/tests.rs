//! Where `shop contracts` keeps a capability's snapshot.

use super::*;

#[test]
fn a_snapshot_sits_beside_its_contract_crate_in_capabilities_or_examples() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("examples/loyalty-contract")).unwrap();
    std::fs::create_dir_all(root.path().join("capabilities/billing-contract")).unwrap();
    assert_eq!(
        snapshot_path(root.path(), "loyalty"),
        root.path()
            .join("examples/loyalty-contract/contract-snapshot.json")
    );
    assert_eq!(
        snapshot_path(root.path(), "billing"),
        root.path()
            .join("capabilities/billing-contract/contract-snapshot.json")
    );
    // A capability with no crate yet is expected under capabilities/.
    assert_eq!(
        snapshot_path(root.path(), "gifts"),
        root.path()
            .join("capabilities/gifts-contract/contract-snapshot.json")
    );
}
