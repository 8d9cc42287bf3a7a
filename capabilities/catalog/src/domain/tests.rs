//! Table tests of catalog's validation.

use super::*;

fn amount(amount: i64, currency: &str) -> Amount {
    Amount {
        amount,
        currency: currency.into(),
    }
}

#[test]
fn adding_a_product_validates_every_field() {
    let cases: &[(&str, &str, Amount, Result<(), &str>)] = &[
        ("SKU-1", "Tea", amount(450, "EUR"), Ok(())),
        ("", "Tea", amount(450, "EUR"), Err("sku")),
        ("has space", "Tea", amount(450, "EUR"), Err("sku")),
        (&"x".repeat(65), "Tea", amount(450, "EUR"), Err("sku")),
        ("SKU-1", "   ", amount(450, "EUR"), Err("name")),
        ("SKU-1", "bell\u{7}", amount(450, "EUR"), Err("name")),
        ("SKU-1", "Tea", amount(-1, "EUR"), Err("price")),
        ("SKU-1", "Tea", amount(1, "eur"), Err("price")),
        ("SKU-1", "Tea", amount(0, "JPY"), Ok(())),
    ];
    for (sku, name, price, expected) in cases {
        let got = Product::add(sku, name, price)
            .map(|_| ())
            .map_err(|e| e.field);
        assert_eq!(
            got,
            expected.map_err(str::to_owned),
            "{sku:?} {name:?} {price:?}"
        );
    }
}

#[test]
fn the_event_carries_the_product() {
    let (product, event) = Product::add("TEA", "Green tea", &amount(450, "EUR")).unwrap();
    assert_eq!(event.sku, product.sku.as_str());
    assert_eq!(event.price, amount(450, "EUR"));
}
