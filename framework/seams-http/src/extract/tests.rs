//! Field names are found in serde's messages.

use super::field_of;

#[test]
fn finds_the_offending_field() {
    let cases = [
        (
            "Failed to deserialize the JSON body into the target type: unknown field `colour`, expected one of `sku`",
            Some("colour"),
        ),
        (
            "Failed to deserialize the JSON body into the target type: missing field `sku` at line 1 column 2",
            Some("sku"),
        ),
        (
            "Failed to deserialize the JSON body into the target type: lines[0].quantity: invalid type: string \"2\", expected u32 at line 1 column 40",
            Some("lines[0].quantity"),
        ),
        (
            "Failed to deserialize the JSON body into the target type: invalid type: integer `3`, expected a map",
            None,
        ),
    ];
    for (detail, expected) in cases {
        assert_eq!(field_of(detail).as_deref(), expected, "{detail}");
    }
}
