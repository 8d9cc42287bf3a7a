//! Who each access declaration admits, and how callers are told apart.

use super::*;

fn staff() -> Principal {
    Principal::person("sam", Role::Staff)
}

fn service(caps: &[&str]) -> Principal {
    Principal::Service {
        name: caps.join(","),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn each_access_admits_exactly_its_callers() {
    let customer = Principal::person("c1", Role::Customer);
    let operator = Principal::person("olga", Role::Operator);
    let billing = service(&["billing"]);
    let cases: [(Access, &Principal, bool); 14] = [
        (Access::Open, &Principal::Anonymous, true),
        (Access::Open, &customer, true),
        (Access::Open, &billing, true),
        (Access::People(&[Role::Customer]), &customer, true),
        (
            Access::People(&[Role::Customer]),
            &Principal::Anonymous,
            false,
        ),
        (Access::People(&[Role::Customer]), &staff(), false),
        (Access::People(&[Role::Customer]), &billing, false),
        (
            Access::People(&[Role::Customer, Role::Staff]),
            &staff(),
            true,
        ),
        (Access::OPERATORS, &operator, true),
        (Access::OPERATORS, &staff(), false),
        (Access::Services, &billing, true),
        (Access::Services, &operator, false),
        (Access::Services, &Principal::Anonymous, false),
        (Access::People(&[]), &operator, false),
    ];
    for (access, principal, admitted) in cases {
        assert_eq!(
            access.admits(principal),
            admitted,
            "{access} / {principal:?}"
        );
    }
}

#[test]
fn only_needing_no_credentials_is_open() {
    assert!(Access::Open.is_open());
    assert!(!Access::OPERATORS.is_open());
    assert!(!Access::Services.is_open());
}

#[test]
fn a_customer_owns_only_their_own_records() {
    let c = Principal::person("c1", Role::Customer);
    assert!(c.is_customer("c1"));
    assert!(!c.is_customer("c2"));
    // A staff member whose name happens to be a customer's id owns nothing.
    assert!(!Principal::person("c1", Role::Staff).is_customer("c1"));
    assert!(!Principal::Anonymous.is_customer(""));
}

#[test]
fn services_run_what_their_token_names() {
    let s = service(&["billing", "catalog"]);
    assert!(s.runs("billing") && s.runs("catalog"));
    assert!(!s.runs("identity"));
    assert!(!Principal::person("billing", Role::Staff).runs("billing"));
    assert_eq!(s.role(), None);
    assert!(staff().has_role(Role::Staff));
    assert!(!staff().has_role(Role::Operator));
}

#[test]
fn scope_keys_never_collide_across_roles_issuers_or_kinds() {
    let keys = [
        Principal::Anonymous.scope_key(),
        Principal::person("x", Role::Customer).scope_key(),
        Principal::person("x", Role::Staff).scope_key(),
        Principal::Person {
            subject: "x".into(),
            role: Role::Customer,
            issuer: "https://idp.example".into(),
        }
        .scope_key(),
        service(&["x"]).scope_key(),
    ];
    let unique: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
    assert_eq!(keys[1], "customer::x");
}

#[test]
fn roles_round_trip_through_their_claim_values() {
    for r in Role::ALL {
        assert_eq!(Role::parse(r.as_str()), Some(r));
        assert_eq!(r.to_string(), r.as_str());
    }
    assert_eq!(Role::parse("service"), None);
    assert_eq!(Role::parse("Staff"), None);
    assert_eq!(
        Access::People(&[Role::Customer, Role::Staff]).to_string(),
        "customer, staff"
    );
    assert_eq!(Access::Services.to_string(), "services");
    assert_eq!(Access::Open.to_string(), "open");
}
