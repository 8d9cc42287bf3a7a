//! The generator on the reference system's declarations: an alert per
//! eventual invariant, per outbox and per objective burn rate, a test case
//! for every alert, and a scrape configuration that names the token's file
//! and never a token.

use std::time::Duration;

use super::*;

fn reference() -> Declared {
    Declared {
        invariants: vec![
            &billing::PAID_AT_MOST_ONCE,
            &notification::CONTACTS_FOLLOW_IDENTITY,
            &notification::INVOICE_NOTICE_RECORDED,
            &fulfillment::PAID_INVOICE_DISPATCHED,
        ],
        objectives: crate::system::objectives().unwrap(),
        outboxes: vec![Outbox {
            database: "billing".to_owned(),
            horizon: Duration::from_millis(11_300),
        }],
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn every_eventual_invariant_gets_its_bound_as_an_alert() {
    let y = rules(&reference());
    assert_eq!(count(&y, "alert: SeamsEventualInvariantBroken"), 3, "{y}");
    assert!(
        y.contains("histogram_quantile(0.99, sum by (le) (rate(seams_event_lag_seconds_bucket{hop=\"identity.customer-registered->notification\"}[5m]))) > 2'"),
        "{y}"
    );
    assert!(
        y.contains("invariant: 'fulfillment.paid-invoice-dispatched'"),
        "{y}"
    );
    assert!(y.contains(") > 5'"), "the dispatch bound is 5 s: {y}");
    assert!(
        !y.contains("paid-at-most-once"),
        "immediate invariants have no lag: {y}"
    );
}

#[test]
fn outboxes_alert_past_their_own_retry_horizon() {
    let y = rules(&reference());
    assert!(
        y.contains("seams_outbox_oldest_unpublished_age_seconds{database=\"billing\"} > 11.3'"),
        "{y}"
    );
    assert_eq!(count(&y, "alert: SeamsOutboxStuck"), 1, "{y}");
    assert_eq!(count(&y, "alert: SeamsOutboxBacklogGrowing"), 1, "{y}");
    assert_eq!(count(&y, "alert: SeamsDeadLetters"), 1, "{y}");
    assert!(
        y.contains(
            "alert: SeamsBreakerOpen\n        expr: 'seams_breaker_open == 1'\n        for: 1m"
        ),
        "{y}"
    );
}

#[test]
fn every_objective_gets_both_burn_rates_over_recorded_ratios() {
    let d = reference();
    let y = rules(&d);
    let n = d.objectives.len();
    assert!(n >= 7, "every command of the reference system: {n}");
    assert_eq!(count(&y, "alert: SeamsErrorBudgetFastBurn"), n, "{y}");
    assert_eq!(count(&y, "alert: SeamsErrorBudgetSlowBurn"), n, "{y}");
    assert_eq!(
        count(&y, "record: seams:objective_errors:ratio_rate"),
        4 * n,
        "{y}"
    );
    // 99.9 % leaves 0.1 %: 14.4 times that within both windows pages.
    assert!(
        y.contains(
            "seams:objective_errors:ratio_rate1h{objective=\"billing.pay-invoice\"} > 0.0144 and"
        ),
        "{y}"
    );
    assert!(
        y.contains("seams_http_requests_total{method=\"POST\",route=\"/billing/invoices/{id}/payments\",status=~\"5..\"}[6h]"),
        "{y}"
    );
}

#[test]
fn every_alert_has_a_meaning_and_a_runbook() {
    let y = rules(&reference());
    let alerts = count(&y, "- alert: ");
    assert_eq!(count(&y, "summary: '"), alerts);
    assert_eq!(count(&y, "description: '"), alerts);
    assert_eq!(count(&y, "runbook: '"), alerts);
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test() {
    let d = reference();
    let rules_text = rules(&d);
    let tests = rule_tests(&d, RULES_FILE);
    let alerts = count(&rules_text, "- alert: ");
    assert_eq!(count(&tests, "exp_alerts: []"), alerts, "{tests}");
    assert_eq!(count(&tests, "- exp_labels:"), alerts, "{tests}");
    assert!(tests.starts_with("# Generated"), "{tests}");
    assert!(
        tests.contains("rule_files:\n  - 'seams-rules.yml'\n"),
        "{tests}"
    );
    // Templates are expanded as Prometheus would for the firing series.
    assert!(
        tests.contains("summary: 'notification<-billing has undelivered dead letters'"),
        "{tests}"
    );
    assert!(!tests.contains("$labels"), "{tests}");
}

#[test]
fn quotes_in_text_are_doubled_for_yaml() {
    assert_eq!(quote("it's"), "'it''s'");
    assert_eq!(duration(Duration::from_secs(90)), "90s");
    assert_eq!(duration(Duration::from_secs(600)), "10m");
    assert_eq!(number(14.4 * (1.0 - 99.9 / 100.0)), "0.0144");
    assert_eq!(duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(seconds(Duration::from_millis(11_300)), "11.3");
    assert_eq!(seconds(Duration::from_secs(2)), "2");
    assert_eq!(
        expand(
            "{{ $labels.callee }} is down",
            &[("callee", "catalog".to_owned())]
        ),
        "catalog is down"
    );
}

#[test]
fn the_scrape_configuration_names_the_token_file_not_a_token() {
    let y = scrape_config(&Scrape {
        target: "127.0.0.1:8080".to_owned(),
        scheme: "https".to_owned(),
        credentials_file: "/etc/prometheus/seams-operator.jwt".into(),
        ca_file: Some("/etc/seams/ca.pem".into()),
        interval: Duration::from_secs(1),
    });
    assert!(
        y.contains("credentials_file: '/etc/prometheus/seams-operator.jwt'"),
        "{y}"
    );
    assert!(y.contains("scheme: https"), "{y}");
    assert!(y.contains("ca_file: '/etc/seams/ca.pem'"), "{y}");
    assert!(
        y.contains("scrape_interval: 1s\n  evaluation_interval: 1s"),
        "{y}"
    );
    assert!(y.contains("  - seams-rules.yml\n"), "{y}");
    assert!(y.contains("- '127.0.0.1:8080'"), "{y}");
    assert!(!y.contains("eyJ"), "no token inline: {y}");
}

#[test]
fn write_puts_the_three_files_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("prom");
    let scrape = Scrape {
        target: "127.0.0.1:1".to_owned(),
        scheme: "http".to_owned(),
        credentials_file: "operator.jwt".into(),
        ca_file: None,
        interval: Duration::from_secs(15),
    };
    let written = write(&out, &reference(), &scrape).unwrap();
    assert_eq!(written.len(), 3);
    for name in [RULES_FILE, TESTS_FILE, CONFIG_FILE] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(text.starts_with("# Generated"), "{name}");
    }
}

#[tokio::test]
async fn every_objective_names_a_route_its_capability_serves() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().into());
    let builder = crate::system::build(&config, &crate::system::Placement::monolith())
        .await
        .unwrap();
    for o in crate::system::objectives().unwrap() {
        let c = builder
            .components()
            .iter()
            .find(|c| c.name == o.operation.capability)
            .unwrap();
        let doc = serde_json::to_value(&c.openapi).unwrap();
        let path = o.route.strip_prefix(&format!("/{}", c.name)).unwrap();
        let method = o.method.to_lowercase();
        assert!(
            doc["paths"][path][&method].is_object(),
            "{}: {} {} is not served",
            o.id(),
            o.method,
            o.route
        );
        assert!(
            c.public().iter().any(|p| std::ptr::eq(*p, o.operation)),
            "{}: not one of its public operations",
            o.id()
        );
    }
}
