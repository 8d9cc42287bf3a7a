//! Contract schemas and the check that keeps them compatible.
//!
//! A contract crate derives `utoipa::ToSchema` on its wire types and names
//! them in its declarations with [`schema_of`]; the OpenAPI document uses the
//! same derive, so one type has one schema. From the declarations the runtime
//! builds one [`Document`] per capability: every operation's request and
//! response and every event's payload, per version, with who uses them.
//! `shop contracts snapshot` commits those documents beside each contract
//! crate, and `shop contracts check` compares the current ones (or a running
//! deployment's) with them through [`check`], which classifies each difference
//! with [`compat::compare`].
//!
//! Kept apart from `seams-core` so the vocabulary crate needs no schema
//! library: a declaration holds only a `fn() -> serde_json::Value`.
#![warn(missing_docs)]
#![deny(unreachable_pub)]

pub mod asyncapi;
pub mod compat;
pub mod document;

pub use compat::{Change, Flow, Severity, compare};
pub use document::{
    Document, EventEntry, Finding, OpEntry, OpSchemas, Report, RowsError, check, from_rows,
};

use serde_json::{Map, Value};

/// The JSON Schema (2020-12) of `T`, from its `utoipa::ToSchema` derive:
/// the type's own schema at the root, the schemas it refers to under
/// `$defs`. utoipa writes OpenAPI 3.1 schema objects, which are JSON Schema
/// 2020-12; only their references point into an OpenAPI document's
/// `components`, so they are moved to `$defs` here and the result stands alone.
///
/// ```
/// #[derive(serde::Serialize, utoipa::ToSchema)]
/// struct Ping { id: String }
/// let s = seams_schema::schema_of::<Ping>();
/// assert_eq!(s["properties"]["id"]["type"], "string");
/// assert_eq!(s["required"], serde_json::json!(["id"]));
/// ```
pub fn schema_of<T: utoipa::ToSchema>() -> Value {
    let mut referred = Vec::new();
    T::schemas(&mut referred);
    let mut root = serde_json::to_value(T::schema()).unwrap_or(Value::Null);
    let mut defs = Map::new();
    for (name, schema) in referred {
        let mut schema = serde_json::to_value(schema).unwrap_or(Value::Null);
        relink(&mut schema, COMPONENTS, DEFS);
        defs.insert(name, schema);
    }
    relink(&mut root, COMPONENTS, DEFS);
    if let Value::Object(obj) = &mut root {
        obj.insert(
            "$schema".to_owned(),
            Value::String("https://json-schema.org/draft/2020-12/schema".to_owned()),
        );
        if !defs.is_empty() {
            // Sorted, so a snapshot does not change with the derive's walk order.
            let sorted: std::collections::BTreeMap<String, Value> = defs.into_iter().collect();
            obj.insert("$defs".to_owned(), serde_json::json!(sorted));
        }
    }
    root
}

/// The JSON Schema of a query string: an object with a property per query
/// parameter `T` declares (its `utoipa::IntoParams` derive, which the
/// OpenAPI document's parameters come from too), the required ones
/// required, nothing else allowed. What a `GET` operation declares as its
/// request, so that `shop contracts check` sees a parameter added, made
/// required, narrowed or dropped as it sees a body's fields.
///
/// ```
/// #[derive(serde::Deserialize, utoipa::IntoParams)]
/// #[into_params(parameter_in = Query)]
/// struct Page {
///     /// Whose.
///     #[param(min_length = 1)]
///     owner: String,
///     /// How many.
///     limit: Option<u32>,
/// }
/// let s = seams_schema::query_of::<Page>();
/// assert_eq!(s["properties"]["owner"]["minLength"], 1);
/// assert_eq!(s["required"], serde_json::json!(["owner"]));
/// assert_eq!(s["additionalProperties"], false);
/// ```
pub fn query_of<T: utoipa::IntoParams>() -> Value {
    use utoipa::openapi::Required;
    use utoipa::openapi::path::ParameterIn;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in T::into_params(|| Some(ParameterIn::Query)) {
        let mut schema = p
            .schema
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
            .unwrap_or_else(|| serde_json::json!({}));
        if let (Value::Object(obj), Some(d)) = (&mut schema, p.description) {
            obj.entry("description").or_insert(Value::String(d));
        }
        relink(&mut schema, COMPONENTS, DEFS);
        if matches!(p.required, Required::True) {
            required.push(Value::String(p.name.clone()));
        }
        properties.insert(p.name, schema);
    }
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// Where an OpenAPI document keeps named schemas, and where [`schema_of`]
/// keeps them.
const COMPONENTS: &str = "#/components/schemas/";
const DEFS: &str = "#/$defs/";

/// The inverse of [`schema_of`], for an OpenAPI document: the schema
/// without `$schema` and `$defs`, its references pointed into the
/// document's components, and the named parts that go there.
///
/// ```
/// #[derive(serde::Serialize, utoipa::ToSchema)]
/// struct Price { amount: i64 }
/// #[derive(serde::Serialize, utoipa::ToSchema)]
/// struct Item { price: Price }
/// let (root, parts) = seams_schema::for_openapi(seams_schema::schema_of::<Item>());
/// assert_eq!(root["properties"]["price"]["$ref"], "#/components/schemas/Price");
/// assert!(root.get("$defs").is_none() && root.get("$schema").is_none());
/// assert_eq!(parts["Price"]["properties"]["amount"]["type"], "integer");
/// ```
pub fn for_openapi(mut schema: Value) -> (Value, Map<String, Value>) {
    relink(&mut schema, DEFS, COMPONENTS);
    let parts = match schema.as_object_mut() {
        Some(obj) => {
            obj.remove("$schema");
            match obj.remove("$defs") {
                Some(Value::Object(parts)) => parts,
                _ => Map::new(),
            }
        }
        None => Map::new(),
    };
    (schema, parts)
}

/// Points every reference under `from` to the same name under `to`; other
/// strings, even ones that look like references, stay as they are.
fn relink(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj.iter_mut() {
                match child {
                    Value::String(r) if k == "$ref" => {
                        if let Some(name) = r.strip_prefix(from) {
                            *r = format!("{to}{name}");
                        }
                    }
                    _ => relink(child, from, to),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| relink(i, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
