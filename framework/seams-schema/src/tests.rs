//! `schema_of`: a derived schema stands alone, its references in `$defs`.

use super::*;
use serde_json::json;

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Line {
    sku: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Order {
    id: String,
    note: Option<String>,
    lines: Vec<Line>,
}

#[test]
fn references_point_into_the_schemas_own_defs() {
    let s = schema_of::<Order>();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["properties"]["lines"]["items"]["$ref"], "#/$defs/Line");
    assert_eq!(s["$defs"]["Line"]["properties"]["sku"]["type"], "string");
    assert_eq!(s["required"], json!(["id", "lines"]));
    assert_eq!(s["additionalProperties"], json!(false));
    assert!(!s.to_string().contains("#/components/"));
}
