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

/// A query string, as a `GET` declares it.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Whose.
    #[param(min_length = 1)]
    owner: String,
    /// How many.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[test]
fn a_query_is_an_object_of_its_parameters_the_required_ones_required() {
    let s = query_of::<Page>();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], json!(false));
    assert_eq!(s["required"], json!(["owner"]));
    assert_eq!(s["properties"]["owner"]["minLength"], 1);
    assert_eq!(s["properties"]["owner"]["description"], "Whose.");
    assert_eq!(s["properties"]["limit"]["maximum"], 100);
    assert_eq!(
        s["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["limit", "owner"]
    );
    // The same type reads the query it describes.
    let page: Page = serde_json::from_value(json!({ "owner": "ann" })).unwrap();
    assert_eq!((page.owner.as_str(), page.limit), ("ann", None));
}
