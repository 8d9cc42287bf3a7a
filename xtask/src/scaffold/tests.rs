//! The scaffold refuses names that cannot be a capability's, fills every
//! placeholder, and never overwrites. That what it writes builds and passes
//! its test is checked by CI, which scaffolds a capability into its clone.

use super::*;

#[test]
fn names_that_cannot_be_a_capability_are_refused() {
    let longest = "a".repeat(32);
    for ok in ["loyalty", "gift-cards", "v2-returns", "a", &longest] {
        assert_eq!(validate(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "Loyalty",
        "gift_cards",
        "-gift",
        "gift-",
        "gift--cards",
        "2fa",
        "gift cards",
        "gift/../x",
        "points-contract",
        &"a".repeat(33),
    ] {
        assert!(validate(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_placeholder_is_filled() {
    let files = render("gift-cards");
    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(paths.contains(&"gift-cards-contract/src/lib.rs".to_owned()));
    assert!(paths.contains(&"gift-cards/tests/gift-cards.rs".to_owned()));
    assert!(paths.contains(&"gift-cards/migrations/postgres/0001_notes.sql".to_owned()));
    for (path, text) in &files {
        assert!(
            !text.contains("{{"),
            "{} keeps a placeholder",
            path.display()
        );
    }
    let (_, implementation) = files
        .iter()
        .find(|(p, _)| p.ends_with("gift-cards/src/lib.rs"))
        .unwrap();
    assert!(implementation.contains("pub const NAME: &str = \"gift-cards\";"));
    assert!(implementation.contains("use gift_cards_contract::{GET_NOTE, Note};"));
}

#[test]
fn an_existing_crate_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let written = write(dir.path(), "points").unwrap();
    assert_eq!(written.len(), TEMPLATES.len());
    std::fs::write(dir.path().join("points/src/lib.rs"), "kept").unwrap();
    let err = write(dir.path(), "points").unwrap_err().to_string();
    assert!(err.contains("exists already"), "{err}");
    let kept = std::fs::read_to_string(dir.path().join("points/src/lib.rs")).unwrap();
    assert_eq!(kept, "kept");
    std::fs::create_dir_all(dir.path().join("cards-contract")).unwrap();
    assert!(write(dir.path(), "cards").is_err());
    assert!(
        !dir.path().join("cards").exists(),
        "nothing written beside it"
    );
    assert!(write(dir.path(), "Bad").is_err());
}
