//! `shop ops prometheus`: what an operator points Prometheus at, derived
//! from what the system declares rather than written by hand, so an alert
//! cannot drift from the bound, objective or retry horizon it guards.
//!
//! [`rules`], [`rule_tests`] and [`scrape_config`] are pure: declarations
//! in, YAML text out. [`write`] is the shell that puts the three files in a
//! directory. The alerts:
//!
//! - `SeamsEventualInvariantBroken`, one rule per eventual invariant: the
//!   declared percentile of `seams_event_lag_seconds` over the last 5
//!   minutes is past its declared bound.
//! - `SeamsDeadLetters`: a subscription holds undelivered dead letters.
//! - `SeamsOutboxBacklogGrowing`: an outbox's unpublished rows keep growing.
//! - `SeamsOutboxStuck`, one rule per producing database: its oldest
//!   unpublished row is older than the longest retry horizon its events
//!   declare, so a consumer would already have dead-lettered it.
//! - `SeamsBreakerOpen`: calls to a callee have failed fast for a minute.
//! - `SeamsServiceDown`: a split service has not answered the gateway's
//!   merged `/metrics` for a minute.
//! - `SeamsErrorBudgetFastBurn` and `SeamsErrorBudgetSlowBurn`, per
//!   declared objective: the multi-window, multi-burn-rate alerts of the
//!   Google SRE workbook (1 h and 5 m over 14.4 times the budget's rate,
//!   paging; 6 h and 30 m over 6 times, a ticket), over recording rules
//!   `seams:objective_errors:ratio_rate<window>`.
//!
//! Every alert carries `summary`, `description` (what it means) and
//! `runbook` (what to do). The rule tests give every rule a case where it
//! fires and one where it does not, for `promtool test rules`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use seams_core::decl::{Invariant, InvariantKind, Objective};

/// The rules file's name in the output directory.
pub const RULES_FILE: &str = "seams-rules.yml";
/// The rule tests' file name in the output directory.
pub const TESTS_FILE: &str = "seams-rules-test.yml";
/// The scrape configuration's file name in the output directory.
pub const CONFIG_FILE: &str = "prometheus.yml";

/// A database with an outbox, and the longest retry horizon of the events
/// it publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbox {
    /// The `database` label of its gauges (the capability's name).
    pub database: String,
    /// The longest declared bus retry horizon of its events.
    pub horizon: Duration,
}

/// What the alerts are derived from.
#[derive(Debug, Default)]
pub struct Declared {
    /// Every invariant; the eventual ones get an alert.
    pub invariants: Vec<&'static Invariant>,
    /// Every service level objective.
    pub objectives: Vec<&'static Objective>,
    /// Every outbox events leave from.
    pub outboxes: Vec<Outbox>,
}

/// Where and how Prometheus scrapes the system.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// `host:port` of the system's public address (the gateway when split).
    pub target: String,
    /// `http` or `https`.
    pub scheme: String,
    /// A file holding an operator token (never the token itself).
    pub credentials_file: PathBuf,
    /// The authority to trust for `https`, when it is the deployment's own.
    pub ca_file: Option<PathBuf>,
    /// How often to scrape and to evaluate the rules.
    pub interval: Duration,
}

/// What an alert says: what happened, what it means, what to do.
struct Notes {
    summary: String,
    description: String,
    runbook: String,
}

/// One alerting rule, and the synthetic series its test feeds it.
struct Alert {
    name: &'static str,
    expr: String,
    /// `for:`; zero fires on the first evaluation past the threshold.
    pending: Duration,
    /// Labels the rule adds (`severity`, what it is about).
    labels: Vec<(&'static str, String)>,
    /// With `{{ $labels.x }}` templates for what the series carry.
    notes: Notes,
    test: Case,
}

/// A `promtool test rules` case: input series (one minute apart), a time at
/// which the alert must not fire and one at which it fires with `labels`
/// (the rule's and the series').
struct Case {
    series: Vec<(String, String)>,
    quiet_at_minutes: u32,
    fires_at_minutes: u32,
    /// The firing alert's labels from the series, which also fill the
    /// notes' templates.
    series_labels: Vec<(&'static str, String)>,
}

/// The burn-rate windows: (long, short, factor, severity, pending, name).
const BURNS: [(&str, &str, f64, &str, Duration, &str); 2] = [
    (
        "1h",
        "5m",
        14.4,
        "page",
        Duration::from_secs(120),
        "SeamsErrorBudgetFastBurn",
    ),
    (
        "6h",
        "30m",
        6.0,
        "ticket",
        Duration::from_secs(900),
        "SeamsErrorBudgetSlowBurn",
    ),
];

/// Every window a recording rule is kept for.
const WINDOWS: [&str; 4] = ["5m", "30m", "1h", "6h"];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else if d.as_secs().is_multiple_of(60) && !d.is_zero() {
        format!("{}m", d.as_secs() / 60)
    } else {
        format!("{}s", d.as_secs())
    }
}

/// `x` without the binary noise of its arithmetic (`0.0144`, not
/// `0.014399999999998414`): thresholds are read by people.
fn number(x: f64) -> String {
    format!("{}", (x * 1e9).round() / 1e9)
}

fn seconds(d: Duration) -> String {
    number(d.as_secs_f64())
}

fn series_name(metric: &str, labels: &[(&str, &str)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{metric}{{{}}}", inner.join(","))
}

/// The recorded error ratio of `o` over `window`.
fn ratio(o: &Objective, window: &str) -> String {
    format!(
        "seams:objective_errors:ratio_rate{window}{{objective=\"{}\"}}",
        o.id()
    )
}

fn alerts(d: &Declared) -> Vec<Alert> {
    let mut out = Vec::new();
    for inv in &d.invariants {
        let (
            InvariantKind::Eventual {
                bound, percentile, ..
            },
            Some(hop),
        ) = (inv.kind, inv.measure_key())
        else {
            continue;
        };
        let q = number(percentile / 100.0);
        let b = bound.as_secs_f64();
        let bucket = |le: &str| {
            series_name(
                "seams_event_lag_seconds_bucket",
                &[("hop", hop.as_str()), ("le", le)],
            )
        };
        let (low, high) = (number(b / 2.0), number(b * 4.0));
        out.push(Alert {
            name: "SeamsEventualInvariantBroken",
            expr: format!(
                "histogram_quantile({q}, sum by (le) (rate(seams_event_lag_seconds_bucket{{hop=\"{hop}\"}}[5m]))) > {}",
                seconds(bound)
            ),
            pending: Duration::from_secs(60),
            labels: vec![
                ("severity", "page".to_owned()),
                ("invariant", inv.id()),
                ("hop", hop.clone()),
            ],
            notes: Notes {
                summary: format!(
                    "{} is broken: p{percentile} lag over {} s",
                    inv.id(),
                    seconds(bound)
                ),
                description: format!(
                    "{} The declared bound is {} s at p{percentile}, measured as {hop}; over the last 5 minutes the lag was past it, so readers of that data see it late.",
                    inv.description,
                    seconds(bound)
                ),
                runbook: "Look at /_seams/consistency and seams_subscription_lag_events for the subscription behind this hop: a stopped or slow consumer (its service down, its database slow, chaos delay on), or a producer burst. Check the consumer service's logs and seams_event_failures_total; restart or scale the consumer. The alert clears 5 minutes after the lag is back under the bound.".to_owned(),
            },
            test: Case {
                // Five minutes under half the bound, then everything past it.
                series: vec![
                    (bucket(&low), "0+60x5 300+0x15".to_owned()),
                    (bucket(&high), "0+60x5 300+60x15".to_owned()),
                    (bucket("+Inf"), "0+60x5 300+60x15".to_owned()),
                ],
                quiet_at_minutes: 5,
                fires_at_minutes: 10,
                series_labels: Vec::new(),
            },
        });
    }
    out.push(Alert {
        name: "SeamsDeadLetters",
        expr: "seams_dead_letters > 0".to_owned(),
        pending: Duration::ZERO,
        labels: vec![("severity", "ticket".to_owned())],
        notes: Notes {
            summary: "{{ $labels.subscription }} has undelivered dead letters".to_owned(),
            description: "A consumer gave up on events of {{ $labels.subscription }} after their declared attempts; they are parked, and later events of the same key wait behind them, so the consumer's data misses them until they are replayed.".to_owned(),
            runbook: "GET /_seams/dead-letters (operator token) shows each one's error and attempts. Fix the cause (a bug, bad data, a peer that refused), then POST /_seams/dead-letters/{id}/replay; the alert clears when none is left undelivered.".to_owned(),
        },
        test: Case {
            series: vec![
                (
                    series_name("seams_dead_letters", &[("subscription", "notification<-billing")]),
                    "0 0 0 1+0x5".to_owned(),
                ),
                (
                    series_name("seams_dead_letters", &[("subscription", "billing<-fulfillment")]),
                    "0+0x8".to_owned(),
                ),
            ],
            quiet_at_minutes: 2,
            fires_at_minutes: 4,
            series_labels: vec![("subscription", "notification<-billing".to_owned())],
        },
    });
    out.push(Alert {
        name: "SeamsOutboxBacklogGrowing",
        expr: "deriv(seams_outbox_backlog_events[10m]) > 0 and seams_outbox_backlog_events > 0".to_owned(),
        pending: Duration::from_secs(600),
        labels: vec![("severity", "ticket".to_owned())],
        notes: Notes {
            summary: "{{ $labels.database }}'s outbox backlog keeps growing".to_owned(),
            description: "Events are committed to {{ $labels.database }}'s outbox faster than its readers (the subscriptions, or the bus publisher) take them, and have been for 20 minutes: consumers fall further behind and the outbox cannot be pruned.".to_owned(),
            runbook: "Find the reader that is behind: seams_subscription_lag_events by subscription (or, with --nats, the publisher and JetStream). Check that the consuming services are up and their databases healthy, and whether the producer sees a burst; scale or fix the slow consumer.".to_owned(),
        },
        test: Case {
            series: vec![
                (
                    series_name("seams_outbox_backlog_events", &[("database", "billing")]),
                    "0 10+10x30".to_owned(),
                ),
                (
                    series_name("seams_outbox_backlog_events", &[("database", "catalog")]),
                    "5+0x30".to_owned(),
                ),
            ],
            quiet_at_minutes: 5,
            fires_at_minutes: 15,
            series_labels: vec![("database", "billing".to_owned())],
        },
    });
    for outbox in &d.outboxes {
        let horizon = outbox.horizon.as_secs_f64();
        let below = (horizon / 2.0).floor();
        let above = horizon.ceil() + 60.0;
        out.push(Alert {
            name: "SeamsOutboxStuck",
            expr: format!(
                "seams_outbox_oldest_unpublished_age_seconds{{database=\"{}\"}} > {}",
                outbox.database,
                seconds(outbox.horizon)
            ),
            pending: Duration::from_secs(60),
            labels: vec![
                ("severity", "page".to_owned()),
                ("database", outbox.database.clone()),
            ],
            notes: Notes {
                summary: format!(
                    "{}'s oldest unpublished event is older than its retry horizon ({} s)",
                    outbox.database,
                    seconds(outbox.horizon)
                ),
                description: format!(
                    "An event has waited in {}'s outbox longer than the longest retry horizon its events declare ({} s): a consumer retrying it would have dead-lettered it by now, so it is not being read at all (a reader stopped, a peer or the bus unreachable).",
                    outbox.database,
                    seconds(outbox.horizon)
                ),
                runbook: "Check which reader has not acknowledged (seams_subscription_lag_age_seconds by subscription), that its service is up (/readyz, the supervisor's log) and can reach this producer's feed, or with --nats that NATS is up. Events wait safely in the outbox and drain once the reader is back.".to_owned(),
            },
            test: Case {
                series: vec![(
                    series_name(
                        "seams_outbox_oldest_unpublished_age_seconds",
                        &[("database", outbox.database.as_str())],
                    ),
                    format!("0 {below}+0x3 {above}+60x5"),
                )],
                quiet_at_minutes: 4,
                fires_at_minutes: 7,
                series_labels: Vec::new(),
            },
        });
    }
    out.push(Alert {
        name: "SeamsBreakerOpen",
        expr: "seams_breaker_open == 1".to_owned(),
        pending: Duration::from_secs(60),
        labels: vec![("severity", "page".to_owned())],
        notes: Notes {
            summary: "Calls to {{ $labels.callee }} have failed fast for a minute".to_owned(),
            description: "The circuit breaker for {{ $labels.callee }} is open: its callers get the declared when-down answer (such as 503 with Retry-After) instead of calling it, so the commands that need it fail.".to_owned(),
            runbook: "Check the {{ $labels.callee }} service: /readyz, its logs, its database. The breaker probes by itself and closes on the first success; nothing needs resetting.".to_owned(),
        },
        test: Case {
            series: vec![
                (
                    series_name("seams_breaker_open", &[("callee", "catalog")]),
                    "0 0 1+0x5".to_owned(),
                ),
                (
                    series_name("seams_breaker_open", &[("callee", "identity")]),
                    "0+0x7".to_owned(),
                ),
            ],
            quiet_at_minutes: 2,
            fires_at_minutes: 4,
            series_labels: vec![("callee", "catalog".to_owned())],
        },
    });
    out.push(Alert {
        name: "SeamsServiceDown",
        expr: "seams_service_up == 0".to_owned(),
        pending: Duration::from_secs(60),
        labels: vec![("severity", "page".to_owned())],
        notes: Notes {
            summary: "The {{ $labels.service }} service has not answered the gateway's scrape for a minute".to_owned(),
            description: "The split gateway could not read {{ $labels.service }}'s own /metrics: the process is down, restarting, or too busy to answer, so its routes likely fail too and its series are missing from this scrape.".to_owned(),
            runbook: "Check the supervisor's log for the service's exits and restarts (child lines, ERROR when it cannot restart it), its /readyz through the gateway, and its database. The supervisor restarts a crashed service by itself, backing off up to 10 s.".to_owned(),
        },
        test: Case {
            series: vec![
                (
                    series_name("seams_service_up", &[("service", "billing")]),
                    "1 1 0+0x5".to_owned(),
                ),
                (
                    series_name("seams_service_up", &[("service", "identity")]),
                    "1+0x7".to_owned(),
                ),
            ],
            quiet_at_minutes: 2,
            fires_at_minutes: 4,
            series_labels: vec![("service", "billing".to_owned())],
        },
    });
    for o in &d.objectives {
        let budget = o.error_budget();
        let days = o.window.as_secs() / 86_400;
        for (long, short, factor, severity, pending, name) in BURNS {
            let threshold = number(factor * budget);
            let all = |status: &str| {
                series_name(
                    "seams_http_requests_total",
                    &[("method", o.method), ("route", o.route), ("status", status)],
                )
            };
            out.push(Alert {
                name,
                expr: format!(
                    "{} > {threshold} and {} > {threshold}",
                    ratio(o, long),
                    ratio(o, short)
                ),
                pending,
                labels: vec![
                    ("severity", severity.to_owned()),
                    ("objective", o.id()),
                ],
                notes: Notes {
                    summary: format!(
                        "{} ({} {}) burns its error budget {factor} times too fast",
                        o.id(),
                        o.method,
                        o.route
                    ),
                    description: format!(
                        "Over both the last {long} and the last {short}, more than {}% of {} {} requests were answered with a server error: at this rate the {}% objective's {days}-day budget is gone in {:.1} days.",
                        number(factor * budget * 100.0),
                        o.method,
                        o.route,
                        o.availability_percent,
                        days as f64 / factor
                    ),
                    runbook: format!(
                        "Look at seams_http_requests_total{{route=\"{}\",status=~\"5..\"}} by status and the {} service's ERROR lines (each 500 is logged with its cause). A 503 names what is down (a callee's breaker, the database, overload). Fix or roll back; the alert clears once the {short} window is clean.",
                        o.route, o.operation.capability
                    ),
                },
                test: Case {
                    // Half an hour of clean traffic, then 10% server errors.
                    series: vec![
                        (all("201"), "0+90x150".to_owned()),
                        (all("500"), "0+0x30 0+10x120".to_owned()),
                    ],
                    quiet_at_minutes: 20,
                    fires_at_minutes: 150,
                    series_labels: Vec::new(),
                },
            });
        }
    }
    out
}

/// The alerting and recording rules derived from `d`, as a Prometheus rules file.
pub fn rules(d: &Declared) -> String {
    let mut y = String::from(
        "# Generated by `shop ops prometheus` from the system's declarations; do not edit.\ngroups:\n",
    );
    if !d.objectives.is_empty() {
        y.push_str("  - name: seams-objectives\n    rules:\n");
        for o in &d.objectives {
            for w in WINDOWS {
                let base = format!("method=\"{}\",route=\"{}\"", o.method, o.route);
                let _ = write!(
                    y,
                    "      - record: seams:objective_errors:ratio_rate{w}\n        expr: {}\n        labels:\n          objective: {}\n",
                    quote(&format!(
                        "(sum(rate(seams_http_requests_total{{{base},status=~\"5..\"}}[{w}])) or vector(0)) / sum(rate(seams_http_requests_total{{{base}}}[{w}]))"
                    )),
                    quote(&o.id())
                );
            }
        }
    }
    y.push_str("  - name: seams-alerts\n    rules:\n");
    for a in alerts(d) {
        let _ = write!(
            y,
            "      - alert: {}\n        expr: {}\n",
            a.name,
            quote(&a.expr)
        );
        if !a.pending.is_zero() {
            let _ = writeln!(y, "        for: {}", duration(a.pending));
        }
        y.push_str("        labels:\n");
        for (k, v) in &a.labels {
            let _ = writeln!(y, "          {k}: {}", quote(v));
        }
        let _ = write!(
            y,
            "        annotations:\n          summary: {}\n          description: {}\n          runbook: {}\n",
            quote(&a.notes.summary),
            quote(&a.notes.description),
            quote(&a.notes.runbook)
        );
    }
    y
}

/// `{{ $labels.x }}` in `text` replaced by the values of `labels`, as
/// Prometheus expands them for a firing alert.
fn expand(text: &str, labels: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    out
}

/// `promtool test rules` cases for every alert of [`rules`]: each fires on
/// its synthetic series and stays quiet before (or on the healthy series
/// beside them). `rules_file` is the rules' path as the test file names it.
pub fn rule_tests(d: &Declared, rules_file: &str) -> String {
    let mut y = format!(
        "# Generated by `shop ops prometheus`: promtool test rules {TESTS_FILE}\nrule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n",
        quote(rules_file)
    );
    for a in alerts(d) {
        let _ = write!(y, "  - interval: 1m\n    input_series:\n");
        for (series, values) in &a.test.series {
            let _ = write!(
                y,
                "      - series: {}\n        values: {}\n",
                quote(series),
                quote(values)
            );
        }
        let _ = write!(
            y,
            "    alert_rule_test:\n      - eval_time: {}m\n        alertname: {}\n        exp_alerts: []\n      - eval_time: {}m\n        alertname: {}\n        exp_alerts:\n          - exp_labels:\n",
            a.test.quiet_at_minutes, a.name, a.test.fires_at_minutes, a.name
        );
        for (k, v) in a.labels.iter().chain(a.test.series_labels.iter()) {
            let _ = writeln!(y, "              {k}: {}", quote(v));
        }
        let labels = &a.test.series_labels;
        let _ = write!(
            y,
            "            exp_annotations:\n              summary: {}\n              description: {}\n              runbook: {}\n",
            quote(&expand(&a.notes.summary, labels)),
            quote(&expand(&a.notes.description, labels)),
            quote(&expand(&a.notes.runbook, labels))
        );
    }
    y
}

/// A Prometheus configuration scraping the system's `/metrics` with the
/// operator token in `s.credentials_file`, evaluating [`RULES_FILE`] beside it.
pub fn scrape_config(s: &Scrape) -> String {
    let every = duration(s.interval);
    let mut y = format!(
        "# Generated by `shop ops prometheus`. The token is read from the credentials file\n# (an operator's: shop token --role operator --subject prometheus --ttl 30d), never kept here.\nglobal:\n  scrape_interval: {every}\n  evaluation_interval: {every}\nrule_files:\n  - {RULES_FILE}\nscrape_configs:\n  - job_name: seams\n    metrics_path: /metrics\n    scheme: {}\n    authorization:\n      type: Bearer\n      credentials_file: {}\n",
        s.scheme,
        quote(&s.credentials_file.display().to_string())
    );
    if let Some(ca) = &s.ca_file {
        let _ = write!(
            y,
            "    tls_config:\n      ca_file: {}\n",
            quote(&ca.display().to_string())
        );
    }
    let _ = write!(
        y,
        "    static_configs:\n      - targets:\n          - {}\n",
        quote(&s.target)
    );
    y
}

/// Writes [`RULES_FILE`], [`TESTS_FILE`] and [`CONFIG_FILE`] into `dir`
/// (made if missing); the paths written.
pub fn write(dir: &Path, d: &Declared, s: &Scrape) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        (RULES_FILE, rules(d)),
        (TESTS_FILE, rule_tests(d, RULES_FILE)),
        (CONFIG_FILE, scrape_config(s)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        // Prometheus often runs as a user of its own; nothing here is secret.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
