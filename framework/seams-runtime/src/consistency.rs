//! Consistency, stated and measured.
//!
//! Capabilities declare invariants ([`seams_core::decl::Invariant`]); for
//! eventual ones this registry keeps the measured lags (producer commit →
//! consumer applied, recorded by every relay, or named lags a capability
//! records itself) and reports them against the declared bound, logging a
//! line when a bound becomes broken and when it holds again.
//!
//! It also tracks each subscription's position in its producer's feed, so a
//! read model can say how fresh it is and a read presenting a consistency
//! token (`<producer>:<position>`) can wait, bounded, until the projection
//! has caught up, or answer that it is stale.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seams_core::decl::{Invariant, InvariantKind};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Samples kept per measured lag (a sliding window).
pub const WINDOW: usize = 4096;

/// Response header carrying a write's consistency token.
pub const TOKEN_HEADER: &str = "seams-consistency-token";
/// Response header describing a read model's freshness.
pub const FRESHNESS_HEADER: &str = "seams-freshness";

/// A write's position in its producer's outbox: `<producer>:<position>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The producing capability.
    pub producer: String,
    /// The outbox position of the write's event.
    pub position: u64,
}

impl Token {
    /// The most digits a position has: outbox positions are 64-bit signed
    /// row ids, and every one of them has at most 19.
    pub const MAX_POSITION_DIGITS: usize = 19;

    /// Parses `producer:position`: lowercase letters and `-`, a colon, and
    /// 1-19 decimal digits, exactly as [`Token`]'s `Display` writes it (so
    /// no sign and no spaces, which `u64`'s own parser would let by).
    pub fn parse(s: &str) -> Option<Token> {
        let (producer, position) = s.trim().split_once(':')?;
        let ok = !producer.is_empty()
            && producer
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
            && (1..=Self::MAX_POSITION_DIGITS).contains(&position.len())
            && position.bytes().all(|b| b.is_ascii_digit());
        Some(Token {
            producer: producer.to_owned(),
            position: position.parse().ok().filter(|_| ok)?,
        })
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.producer, self.position)
    }
}

/// How fresh a read model is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Its subscription.
    pub subscription: String,
    /// The producer position it reflects.
    pub position: u64,
    /// Milliseconds since that position was reached (how long it may have missed newer events).
    pub age_ms: u64,
}

impl Freshness {
    /// The `Seams-Freshness` header value.
    pub fn header(&self) -> String {
        format!(
            "subscription={}; position={}; age-ms={}",
            self.subscription, self.position, self.age_ms
        )
    }
}

struct Lags {
    /// `seams_event_lag_seconds` of this hop, looked up once: the key's
    /// label is a new string at every lookup.
    histogram: metrics::Histogram,
    samples: VecDeque<u64>,
    count: u64,
    max_us: u64,
    broken: bool,
    /// When the bounds were last checked against the window.
    checked: Option<Instant>,
}

/// How often, at most, a hop's recorded lags are checked against its bounds.
const CHECK_EVERY: Duration = Duration::from_millis(100);

struct Position {
    tx: watch::Sender<u64>,
    since: Instant,
}

#[derive(Default)]
struct Inner {
    lags: BTreeMap<String, Lags>,
    positions: BTreeMap<String, Position>,
    invariants: Vec<&'static Invariant>,
    /// The bounds declared on each measured lag, by its key: found when
    /// the invariants are declared, not for every recorded event.
    bounds: BTreeMap<String, Vec<Bound>>,
}

/// An eventual invariant's bound on one lag.
struct Bound {
    invariant: String,
    bound: Duration,
    percentile: f64,
}

impl Lags {
    fn new(key: &str) -> Lags {
        Lags {
            histogram: metrics::histogram!("seams_event_lag_seconds", "hop" => key.to_owned()),
            samples: VecDeque::new(),
            count: 0,
            max_us: 0,
            broken: false,
            checked: None,
        }
    }
}

/// The registry; cheap to clone.
#[derive(Clone, Default)]
pub struct Consistency {
    inner: Arc<Mutex<Inner>>,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// [`percentile`] of values in any order, which it reorders: selecting the
/// one value is linear, where sorting the window first cost most of what
/// checking a bound costs (it runs ten times a second under load).
fn percentile_of(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    *values
        .select_nth_unstable(rank.clamp(1, values.len()) - 1)
        .1
}

impl Consistency {
    /// An empty registry.
    pub fn new() -> Consistency {
        Consistency::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Declares invariants to report on.
    pub fn declare(&self, invariants: impl IntoIterator<Item = &'static Invariant>) {
        let mut inner = self.lock();
        for invariant in invariants {
            if let (
                Some(key),
                InvariantKind::Eventual {
                    bound, percentile, ..
                },
            ) = (invariant.measure_key(), invariant.kind)
            {
                inner.bounds.entry(key).or_default().push(Bound {
                    invariant: invariant.id(),
                    bound,
                    percentile,
                });
            }
            inner.invariants.push(invariant);
        }
    }

    /// Records a lag under `key` and checks the bounds declared on it.
    pub fn record(&self, key: &str, lag: Duration) {
        let mut inner = self.lock();
        let Inner { lags, bounds, .. } = &mut *inner;
        let lags = match lags.get_mut(key) {
            Some(lags) => lags,
            None => lags.entry(key.to_owned()).or_insert_with(|| Lags::new(key)),
        };
        lags.histogram.record(lag.as_secs_f64());
        let us = lag.as_micros().min(u64::MAX as u128) as u64;
        if lags.samples.len() == WINDOW {
            lags.samples.pop_front();
        }
        lags.samples.push_back(us);
        lags.count += 1;
        lags.max_us = lags.max_us.max(us);
        let Some(bounds) = bounds.get(key) else {
            return;
        };
        // Sorting the window on every event would cost more than applying
        // it; the log line may come up to CHECK_EVERY late instead.
        if lags.checked.is_some_and(|t| t.elapsed() < CHECK_EVERY) {
            return;
        }
        lags.checked = Some(Instant::now());
        let mut window: Vec<u64> = lags.samples.iter().copied().collect();
        for Bound {
            invariant: id,
            bound,
            percentile: p,
        } in bounds
        {
            let (bound, p) = (*bound, *p);
            let measured = Duration::from_micros(percentile_of(&mut window, p));
            let broken = measured > bound;
            if broken && !lags.broken {
                tracing::warn!(invariant = %id, ?measured, ?bound, percentile = p, "consistency bound broken");
            } else if !broken && lags.broken {
                tracing::info!(invariant = %id, ?measured, ?bound, percentile = p, "consistency bound holds again");
            }
            lags.broken = broken;
        }
    }

    /// Records the lag of `event_type` applied by `consumer`, from the event's RFC 3339 commit time.
    pub fn record_hop(&self, event_type: &str, consumer: &str, committed_at: &str) {
        let Ok(at) = time::OffsetDateTime::parse(
            committed_at,
            &time::format_description::well_known::Rfc3339,
        ) else {
            return;
        };
        let lag = time::OffsetDateTime::now_utc() - at;
        let lag = Duration::try_from(lag).unwrap_or(Duration::ZERO);
        self.record(&format!("{event_type}->{consumer}"), lag);
    }

    /// Records that `subscription` has applied its feed up to `position`.
    pub fn advance(&self, subscription: &str, position: u64) {
        let mut inner = self.lock();
        match inner.positions.get_mut(subscription) {
            Some(p) => {
                if position > *p.tx.borrow() {
                    p.tx.send_replace(position);
                    p.since = Instant::now();
                }
            }
            None => {
                let (tx, _) = watch::channel(position);
                inner.positions.insert(
                    subscription.to_owned(),
                    Position {
                        tx,
                        since: Instant::now(),
                    },
                );
            }
        }
    }

    /// How fresh `subscription` is.
    pub fn freshness(&self, subscription: &str) -> Option<Freshness> {
        let inner = self.lock();
        inner.positions.get(subscription).map(|p| Freshness {
            subscription: subscription.to_owned(),
            position: *p.tx.borrow(),
            age_ms: p.since.elapsed().as_millis() as u64,
        })
    }

    /// Waits until `subscription` reached `position`, at most `timeout`.
    /// `Err` carries the freshness it had when the wait gave up (stale).
    pub async fn wait_for(
        &self,
        subscription: &str,
        position: u64,
        timeout: Duration,
    ) -> Result<Freshness, Freshness> {
        let mut rx = {
            let mut inner = self.lock();
            let entry = inner
                .positions
                .entry(subscription.to_owned())
                .or_insert_with(|| Position {
                    tx: watch::channel(0).0,
                    since: Instant::now(),
                });
            entry.tx.subscribe()
        };
        let reached = tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position)).await;
        let fresh = self.freshness(subscription).unwrap_or(Freshness {
            subscription: subscription.to_owned(),
            position: 0,
            age_ms: 0,
        });
        match reached {
            Ok(Ok(_)) => Ok(fresh),
            _ => Err(fresh),
        }
    }

    /// The `/_seams/consistency` report: every declared invariant, with
    /// measurements against the bound for eventual ones, and every subscription's position.
    pub fn report(&self) -> Value {
        let inner = self.lock();
        let invariants: Vec<Value> = inner
            .invariants
            .iter()
            .map(|inv| match inv.kind {
                InvariantKind::Immediate { enforced_by } => json!({
                    "invariant": inv.id(), "kind": "immediate", "description": inv.description,
                    "enforced_by": enforced_by,
                }),
                InvariantKind::Eventual {
                    bound,
                    percentile: p,
                    ..
                } => {
                    let key = inv.measure_key().unwrap_or_default();
                    let (count, measured, p50, max) = match inner.lags.get(&key) {
                        Some(l) => {
                            let mut sorted: Vec<u64> = l.samples.iter().copied().collect();
                            sorted.sort_unstable();
                            (
                                l.count,
                                percentile(&sorted, p),
                                percentile(&sorted, 50.0),
                                l.max_us,
                            )
                        }
                        None => (0, 0, 0, 0),
                    };
                    let status = if count == 0 {
                        "no data"
                    } else if Duration::from_micros(measured) > bound {
                        "broken"
                    } else {
                        "holds"
                    };
                    json!({
                        "invariant": inv.id(), "kind": "eventual", "description": inv.description,
                        "measure": key, "bound_ms": bound.as_millis() as u64, "percentile": p,
                        "samples": count, "window": WINDOW,
                        "measured_ms": measured as f64 / 1000.0, "p50_ms": p50 as f64 / 1000.0,
                        "max_ms": max as f64 / 1000.0, "status": status,
                    })
                }
            })
            .collect();
        let lags: BTreeMap<&str, Value> = inner
            .lags
            .iter()
            .map(|(k, l)| {
                let mut sorted: Vec<u64> = l.samples.iter().copied().collect();
                sorted.sort_unstable();
                (
                    k.as_str(),
                    json!({
                        "samples": l.count,
                        "p50_ms": percentile(&sorted, 50.0) as f64 / 1000.0,
                        "p99_ms": percentile(&sorted, 99.0) as f64 / 1000.0,
                        "max_ms": l.max_us as f64 / 1000.0,
                    }),
                )
            })
            .collect();
        let positions: BTreeMap<&str, Value> = inner
            .positions
            .iter()
            .map(|(k, p)| (k.as_str(), json!({ "position": *p.tx.borrow(), "age_ms": p.since.elapsed().as_millis() as u64 })))
            .collect();
        json!({ "invariants": invariants, "lags": lags, "subscriptions": positions })
    }
}

#[cfg(test)]
mod tests;
