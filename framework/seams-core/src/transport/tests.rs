//! A payload is the value itself in process and JSON on the wire, and
//! decodes the same either way.

use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    x: i64,
    y: i64,
}

#[test]
fn a_value_decodes_as_itself_or_through_json() {
    let p = Point { x: 1, y: 2 };
    assert_eq!(Payload::value(p.clone()).decode::<Point>().unwrap(), p);
    // Another type with the same wire form: decoded from the JSON.
    assert_eq!(
        Payload::value(p.clone()).decode::<Pair>().unwrap(),
        Pair { x: 1, y: 2 }
    );
    let json = Payload::value(p.clone()).into_json().unwrap();
    assert_eq!(json, br#"{"x":1,"y":2}"#);
    assert_eq!(Payload::Json(json).decode::<Point>().unwrap(), p);
    assert!(Payload::Json(b"{".to_vec()).decode::<Point>().is_err());
}

#[test]
fn payloads_are_equal_when_their_json_is() {
    let p = Point { x: 1, y: 2 };
    assert_eq!(
        Payload::value(p.clone()),
        Payload::Json(br#"{"x":1,"y":2}"#.to_vec())
    );
    assert_ne!(
        Payload::value(p.clone()),
        Payload::value(Point { x: 2, y: 1 })
    );
    let copy = Payload::value(p).clone();
    assert_eq!(copy.decode::<Point>().unwrap(), Point { x: 1, y: 2 });
    assert_eq!(
        format!("{:?}", Payload::value(Point { x: 0, y: 0 })),
        format!("Value({})", std::any::type_name::<Point>())
    );
}
