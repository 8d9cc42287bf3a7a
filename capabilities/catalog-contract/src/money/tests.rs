//! Money arithmetic and parsing.

use super::*;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
}

#[test]
fn currencies_are_iso_4217_codes_exactly() {
    assert_eq!(Currency::parse("EUR").unwrap().code(), "EUR");
    for bad in ["eur", "EURO", "XXY", "", "€"] {
        assert!(Currency::parse(bad).is_err(), "{bad}");
    }
    // Codes that exist but are no money to bill in: no currency, testing,
    // gold, a fund, a withdrawn currency.
    for not_money in ["XXX", "XTS", "XAU", "XDR", "BOV", "USN", "HRK", "SLL"] {
        assert!(Currency::parse(not_money).is_err(), "{not_money}");
    }
    for money in ["USD", "JPY", "CHF", "SLE", "BHD"] {
        assert_eq!(Currency::parse(money).unwrap().code(), money);
    }
}

/// Each thread remembers its last parsed code: the answer stays the one
/// `iso_currency` gives, whatever came before.
#[test]
fn a_remembered_code_answers_for_itself_only() {
    for code in ["EUR", "EUR", "USD", "EUR", "JPY", "JPY", "EUR"] {
        assert_eq!(Currency::parse(code).unwrap().code(), code);
    }
    for bad in ["EUr", "EUR ", "XXX", "XXX", "EU"] {
        assert!(Currency::parse(bad).is_err(), "{bad}");
        assert_eq!(Currency::parse("EUR").unwrap().code(), "EUR");
    }
}

#[test]
fn arithmetic_is_checked() {
    assert_eq!(eur(250).times(3).unwrap(), eur(750));
    assert_eq!(eur(250).plus(eur(1)).unwrap(), eur(251));
    assert_eq!(eur(i64::MAX).times(2), Err(MoneyError::Overflow));
    assert_eq!(eur(i64::MAX).plus(eur(1)), Err(MoneyError::Overflow));
    let usd = Money::new(1, Currency::parse("USD").unwrap()).unwrap();
    assert!(matches!(
        eur(1).plus(usd),
        Err(MoneyError::MixedCurrencies(..))
    ));
    assert_eq!(
        Money::new(-1, Currency::parse("EUR").unwrap()),
        Err(MoneyError::Negative)
    );
}

#[test]
fn displays_in_major_units() {
    assert_eq!(eur(1250).to_string(), "12.50 EUR");
    assert_eq!(eur(5).to_string(), "0.05 EUR");
    assert_eq!(
        Money::new(1200, Currency::parse("JPY").unwrap())
            .unwrap()
            .to_string(),
        "1200 JPY"
    );
}

#[test]
fn wire_amounts_round_trip() {
    let a = Amount {
        amount: 999,
        currency: "GBP".into(),
    };
    let m = Money::try_from(&a).unwrap();
    assert_eq!(Amount::from(m), a);
    assert!(
        Money::try_from(&Amount {
            amount: 1,
            currency: "ABC".into()
        })
        .is_err()
    );
}

#[test]
fn the_documented_currencies_are_exactly_the_accepted_ones() {
    let schema = serde_json::to_value(currency_schema()).unwrap();
    let listed: Vec<&str> = schema["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in ["EUR", "USD", "JPY", "GBP"] {
        assert!(listed.contains(&code), "{code}");
    }
    for code in ["XXX", "XTS", "XAU", "BOV", "HRK", "AAA", "eur"] {
        assert!(!listed.contains(&code), "{code}");
    }
    assert!(listed.iter().all(|c| Currency::parse(c).is_ok()));
    assert_eq!(schema["type"], "string");
}
