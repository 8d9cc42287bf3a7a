//! Which names are display text, and which hide or reorder what is shown.

use super::*;

#[test]
fn names_that_hide_or_reorder_text_are_refused() {
    for bad in [
        "",
        "   ",
        "Ann\u{0}",
        "Ann\nSmith",
        "Ann\u{202E}htimS",
        "\u{2066}Ann\u{2069}",
        "A\u{200B}nn",
        "Ann\u{200E}",
        "\u{FEFF}Ann",
        "Ann\u{E0041}\u{E007F}",
        "Ann\u{00AD}",
        "\u{3164}",
        "\u{2800}",
        "\u{061C}Ann",
    ] {
        assert!(display_text("name", bad, 200).is_err(), "{bad:?} accepted");
    }
    let err = display_text("name", "A\u{202E}b", 200).unwrap_err();
    assert_eq!(err.field, "name");
    assert!(err.reason.contains("direction-override"), "{}", err.reason);
}

#[test]
fn names_in_every_script_are_display_text() {
    for good in [
        "Ann Smith",
        "Jörg Bücher",
        "王小明",
        "محمد",
        // Persian needs the zero-width non-joiner; emoji sequences the joiner.
        "می\u{200C}خواهم",
        "👩\u{200D}💻 Ada",
        "❤\u{FE0F}",
        "x",
    ] {
        assert_eq!(
            display_text("name", good, 200).as_deref(),
            Ok(good),
            "{good:?}"
        );
    }
    assert!(display_text("name", &"é".repeat(200), 200).is_ok());
    assert!(display_text("name", &"é".repeat(201), 200).is_err());
}
