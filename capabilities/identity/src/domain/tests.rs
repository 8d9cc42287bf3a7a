//! Table tests of identity's validation: which emails, names and ids are
//! accepted, what an email normalizes to, and what registering and changing
//! an address produce.

use super::*;

fn check_email(input: &str, expected: Result<&str, ()>) {
    let got = Email::parse(input);
    match (&got, expected) {
        (Ok(email), Ok(normalized)) => assert_eq!(email.as_str(), normalized, "{input:?}"),
        (Err(e), Err(())) => assert_eq!(e.field, "email", "{input:?}"),
        _ => panic!("{input:?}: expected {expected:?}, got {got:?}"),
    }
}

#[test]
fn valid_emails_are_normalized() {
    let cases = [
        ("ann@example.com", "ann@example.com"),
        ("Ann@Example.COM", "ann@example.com"),
        ("  ann@example.com\t\n", "ann@example.com"),
        // Unicode whitespace around the address is trimmed too.
        ("\u{a0}\u{3000}ann@example.com\u{2003}", "ann@example.com"),
        ("a@b.c", "a@b.c"),
        (
            "first.last+tag@mail.example.co.uk",
            "first.last+tag@mail.example.co.uk",
        ),
        ("o'brien@example.ie", "o'brien@example.ie"),
        (
            "x!#$%&'*+-/=?^_`{|}~@example.com",
            "x!#$%&'*+-/=?^_`{|}~@example.com",
        ),
        ("user@sub-domain.example.com", "user@sub-domain.example.com"),
        ("123@456.789", "123@456.789"),
        ("JÖRG@BÜCHER.DE", "jörg@bücher.de"),
        ("用户@例子.广告", "用户@例子.广告"),
    ];
    for (input, normalized) in cases {
        check_email(input, Ok(normalized));
    }
}

#[test]
fn invalid_emails_are_refused() {
    let long_local = format!("{}@example.com", "a".repeat(65));
    let max_local = format!("{}@example.com", "a".repeat(64));
    let long_label = format!("a@{}.com", "b".repeat(64));
    // 254 bytes is the limit: `a@` + 248 + `.com`.
    let at_limit = format!(
        "a@{}.com",
        [
            "b".repeat(62),
            "c".repeat(62),
            "d".repeat(62),
            "e".repeat(59)
        ]
        .join(".")
    );
    let over_limit = format!("a{at_limit}");
    assert_eq!(at_limit.len(), 254);
    assert_eq!(over_limit.len(), 255);
    check_email(&max_local, Ok(&max_local));
    check_email(&at_limit, Ok(&at_limit));

    let cases: &[&str] = &[
        "",
        "   ",
        "a@",
        "@",
        "@example.com",
        "ann",
        "ann.example.com",
        "ann@@example.com",
        "ann@bob@example.com",
        "ann@localhost",
        "ann@example.",
        "ann@.example.com",
        "ann@example..com",
        "ann@-example.com",
        "ann@example-.com",
        "ann@exa_mple.com",
        "ann@exa!mple.com",
        "ann@[192.168.0.1]",
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        "an n@example.com",
        "ann@exam ple.com",
        "ann\t@example.com",
        "ann\u{a0}x@example.com",
        "ann\u{3000}x@example.com",
        "ann\u{2028}x@example.com",
        "ann@example\u{85}.com",
        "ann\u{0}@example.com",
        "ann\u{7}@example.com",
        "ann\u{200b}@example.com",
        "ann\u{202e}@example.com",
        "\u{feff}ann@example.com",
        "\"ann smith\"@example.com",
        "ann,bob@example.com",
        "ann<bob>@example.com",
        "ann(comment)@example.com",
        "ann;@example.com",
        "ann\\@example.com",
        "🙂@example.com",
        &long_local,
        &long_label,
        &over_limit,
    ];
    for input in cases {
        check_email(input, Err(()));
    }
}

#[test]
fn names_are_checked_but_kept_as_given() {
    let cases: &[(&str, bool)] = &[
        ("Ann", true),
        (" Ann Smith ", true),
        ("Zoë Ōkubo-李", true),
        (&"x".repeat(200), true),
        (&"é".repeat(200), true),
        ("", false),
        ("   ", false),
        ("\u{3000}\u{a0}", false),
        (&"x".repeat(201), false),
        ("Ann\nSmith", false),
        ("bell\u{7}", false),
        ("nul\u{0}", false),
        ("del\u{7f}", false),
    ];
    for (input, ok) in cases {
        let got = Name::parse(input);
        match got {
            Ok(name) => {
                assert!(ok, "{input:?} accepted");
                assert_eq!(name.as_str(), *input);
            }
            Err(e) => {
                assert!(!ok, "{input:?} refused");
                assert_eq!(e.field, "name");
            }
        }
    }
}

#[test]
fn customer_ids_are_canonical_uuids() {
    let id = Uuid::now_v7();
    let text = id.to_string();
    assert_eq!(CustomerId::new(id).as_str(), text);
    assert_eq!(CustomerId::parse(&text).unwrap().as_str(), text);
    let cases = [
        String::new(),
        "nope".into(),
        text.to_uppercase(),
        id.simple().to_string(),
        id.braced().to_string(),
        id.urn().to_string(),
        format!("{text} "),
    ];
    for input in cases {
        let err = CustomerId::parse(&input).unwrap_err();
        assert_eq!(err.field, "id", "{input:?}");
    }
}

const PW: &str = "correct horse";

#[test]
fn registering_validates_email_then_name_then_password() {
    let id = Uuid::now_v7();
    let cases: &[(&str, &str, &str, Result<(), &str>)] = &[
        ("ann@example.com", "Ann", PW, Ok(())),
        ("not-an-email", "Ann", PW, Err("email")),
        ("ann@example.com", " ", PW, Err("name")),
        ("not-an-email", " ", PW, Err("email")),
        ("ann@example.com", "Ann", "short", Err("password")),
        ("ann@example.com", " ", "short", Err("name")),
    ];
    for (email, name, password, expected) in cases {
        let got = Customer::register(id, email, name, password)
            .map(|_| ())
            .map_err(|e| e.field);
        assert_eq!(got, expected.map_err(str::to_owned), "{email:?} {name:?}");
    }
}

#[test]
fn passwords_are_8_to_128_characters_without_control_characters() {
    let ok = |p: &str| Password::parse(p).is_ok();
    assert!(ok("12345678"));
    assert!(ok(&"x".repeat(128)));
    assert!(ok("ünïcödé!"), "eight characters, more bytes");
    assert!(ok("with spaces  inside"));
    assert!(!ok("1234567"));
    assert!(!ok(""));
    assert!(!ok(&"x".repeat(129)));
    assert!(!ok("tab\tinside"));
    assert!(!ok("nul\0inside"));
    let err = Password::parse("short").unwrap_err();
    assert_eq!(err.field, "password");
    assert!(!err.reason.contains("short"), "never echoed");
    assert_eq!(
        format!("{:?}", Password::parse("secret-value").unwrap()),
        "Password(***)"
    );
    assert_eq!(Password::parse("12345678").unwrap().as_bytes(), b"12345678");
}

#[test]
fn the_event_carries_the_normalized_customer() {
    let id = Uuid::now_v7();
    let (customer, event, password) =
        Customer::register(id, " Ann@Example.com ", "Ann", PW).unwrap();
    assert_eq!(password.as_bytes(), PW.as_bytes());
    assert_eq!(customer.id.as_str(), id.to_string());
    assert_eq!(customer.email.as_str(), "ann@example.com");
    assert_eq!(
        event,
        CustomerRegistered {
            customer_id: id.to_string(),
            email: "ann@example.com".into(),
            name: "Ann".into(),
        }
    );
    let wire = identity_contract::Customer::from(customer);
    assert_eq!(
        (wire.id.as_str(), wire.email.as_str(), wire.name.as_str()),
        (event.customer_id.as_str(), "ann@example.com", "Ann")
    );
}

fn ann() -> Customer {
    Customer::register(Uuid::now_v7(), "ann@example.com", "Ann", PW)
        .unwrap()
        .0
}

#[test]
fn changing_the_email_yields_the_new_customer_and_its_event() {
    let before = ann();
    let got = before.change_email("  Ann.Smith@Example.org ").unwrap();
    let after = Customer {
        email: Email::parse("ann.smith@example.org").unwrap(),
        ..before.clone()
    };
    let event = CustomerEmailChanged {
        customer_id: before.id.as_str().to_owned(),
        email: "ann.smith@example.org".into(),
    };
    assert_eq!(got, EmailChange::Changed(after, event));
}

#[test]
fn the_same_address_in_any_spelling_changes_nothing() {
    let before = ann();
    for email in ["ann@example.com", "ANN@Example.Com", "\tann@example.com\n"] {
        assert_eq!(
            before.change_email(email),
            Ok(EmailChange::Unchanged),
            "{email:?}"
        );
    }
}

#[test]
fn an_invalid_new_address_is_refused_naming_the_email() {
    let before = ann();
    for email in [
        "",
        "   ",
        "not-an-email",
        "ann@@example.com",
        "ann@localhost",
    ] {
        let err = before.change_email(email).unwrap_err();
        assert_eq!(err.field, "email", "{email:?}");
    }
}
