//! Delivery of committed events from a producer's outbox to a subscriber.
//!
//! One loop per subscription reads the producer's feed after the
//! subscriber's durable cursor, in commit order, and hands each event of a
//! handled type to its handler. The handler applies it in the consumer's own
//! transaction with the event id recorded in the inbox, so redelivery (after
//! a crash, a retry, or chaos) has no second effect. A failing handler is
//! retried with the backoff its event's contract declares (the bus owns
//! those retries), aside from the feed ([`seams_store::Retry`], the
//! `retries` module): the relay goes on with the other keys while the
//! event waits for its next attempt, and where the contract declares
//! per-key ordering, later events with the same key wait behind it. After
//! the last attempt, or at once for a permanent failure, the event is
//! parked as a dead letter with its error and attempts, and later events
//! with its key are parked behind it rather than overtaking it.
//!
//! In one process this is still asynchronous and at-least-once: the cursor is
//! saved after the batch, so a crash redelivers, and [`Chaos`] can add
//! duplicates and delays on purpose, so a consumer that depends on
//! exactly-once or immediate delivery fails in the monolith first.

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use rand::Rng;
use seams_core::decl::{Ordering, Retries, RetryPolicy};
use seams_core::{Envelope, TraceContext};
use seams_store::Db;
use seams_store::pipeline::{Applied, Turn};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::component::{HandlerError, Handles, Subscription};
use crate::consistency::Consistency;
use crate::consumer::Inbox;
use crate::feed::{InProcessFeed, SharedFeed};

/// Faults injected into delivery, for tests and `shop up --chaos`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    /// Probability that an event is delivered a second time.
    pub duplicate: f64,
    /// Lower bound of the random delay before each delivery (a slowed-down consumer).
    pub min_delay: Duration,
    /// Upper bound of the random delay before each delivery.
    pub max_delay: Duration,
}

impl Chaos {
    /// Duplicates a third of all deliveries and delays each by up to 50 ms.
    pub const DEFAULT: Chaos = Chaos {
        duplicate: 0.33,
        min_delay: Duration::ZERO,
        max_delay: Duration::from_millis(50),
    };
}

/// Tuning of delivery loops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelayOptions {
    /// Events read per batch.
    pub batch: u32,
    /// Longest wait for new events when no commit wakes the loop (a safety net).
    pub idle_poll: Duration,
    /// Injected faults, if any.
    pub chaos: Option<Chaos>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        RelayOptions {
            batch: 256,
            idle_poll: Duration::from_secs(1),
            chaos: None,
        }
    }
}

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (or skipped: not a handled type, or already in the inbox).
    Delivered,
    /// Parked as a dead letter.
    Parked,
    /// Set aside to be tried again (or to wait behind its key's), while the
    /// feed goes on.
    Deferred,
    /// Shutdown came first; the event stays undelivered.
    Interrupted,
}

/// One subscription's delivery loop.
pub struct Relay {
    sub: Subscription,
    name: String,
    /// Whether an event type of `sub` is ordered per key (parking applies).
    per_key: bool,
    /// Where the relay is, in memory and in the consumer's database.
    cursor: std::sync::Mutex<Cursor>,
    /// The dead-letter generation last looked at, and what it showed.
    dead_letters: std::sync::Mutex<Option<(u64, Aside)>>,
    /// When the earliest event set aside is due (ms since the epoch).
    next_retry: std::sync::Mutex<Option<i64>>,
    consumer: Db,
    /// Where `sub`'s handlers record what they applied.
    inbox: Inbox,
    producer: SharedFeed,
    options: RelayOptions,
    consistency: Consistency,
}

impl Relay {
    /// A loop delivering the events in `producer`'s outbox (in this process)
    /// to `sub`, whose state lives in `consumer`.
    pub fn new(sub: Subscription, consumer: Db, producer: Db, options: RelayOptions) -> Relay {
        Relay::with_feed(
            sub,
            consumer,
            Arc::new(InProcessFeed::new(producer)),
            options,
        )
    }

    /// A loop delivering the events of `feed` (wherever it is) to `sub`.
    pub fn with_feed(
        sub: Subscription,
        consumer: Db,
        feed: SharedFeed,
        options: RelayOptions,
    ) -> Relay {
        let name = sub.name();
        Relay {
            inbox: Inbox::new(consumer.clone(), &name),
            name,
            per_key: sub
                .handles
                .iter()
                .any(|h| matches!(h.event.ordering, Ordering::PerKey { .. })),
            cursor: std::sync::Mutex::new(Cursor::default()),
            dead_letters: std::sync::Mutex::new(None),
            next_retry: std::sync::Mutex::new(None),
            sub,
            consumer,
            producer: feed,
            options,
            consistency: Consistency::new(),
        }
    }

    /// Records lags and positions in `consistency` (the system's registry).
    pub fn with_consistency(mut self, consistency: Consistency) -> Relay {
        self.consistency = consistency;
        self
    }

    /// Delivers everything currently in the feed, batch after batch; returns
    /// how many events were read (0 means idle). Tests drive this instead of
    /// sleeping. The cursor it moved is durable when it returns.
    pub async fn try_run_once(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let read = self.step(shutdown, Duration::ZERO).await?;
            total += read;
            if shutdown.is_cancelled() {
                break;
            }
            if read == 0 {
                // Events set aside are part of "everything": wait for the
                // next one due, as a running loop would.
                match self.until_next_retry() {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => break,
                }
            }
        }
        self.save_cursor().await?;
        Ok(total)
    }

    /// Writes the position in memory to the database, durably.
    async fn save_cursor(&self) -> anyhow::Result<()> {
        let (position, written) = {
            let c = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
            (c.position, c.written)
        };
        if let Some(position) = position
            && written != Some(position)
        {
            self.consumer.set_cursor(&self.name, position).await?;
            self.cursor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .written = Some(position);
        } else {
            // `written` counts an eventual write as soon as it is released;
            // it may still wait for its group commit.
            self.consumer.flush().await?;
        }
        Ok(())
    }

    /// One batch: replays first, then the feed after the cursor, waiting up to
    /// `wait` for new events. Only the wait is cut short by `shutdown`; an
    /// event in hand is finished.
    ///
    /// The batch's events are applied back to back ([`seams_store::pipeline`]):
    /// the next one starts once the previous one's transaction has written
    /// everything, not once it is durable, so a batch usually shares its
    /// commits. The position only moves past an event once its effects are
    /// durable, and the feed is only acknowledged up to that position.
    async fn step(&self, shutdown: &CancellationToken, wait: Duration) -> anyhow::Result<usize> {
        // Dead letters only change through this process (the database's one
        // writer): look at them again only when they did.
        let generation = self.consumer.dead_letter_generation();
        let seen = *self
            .dead_letters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (replayed, aside) = match seen {
            Some((g, aside)) if g == generation => (0, aside),
            _ => {
                let replayed = self.try_replay(shutdown).await?;
                let aside = Aside {
                    parked: self.per_key && self.consumer.any_parked(&self.name).await?,
                    retrying: self.consumer.any_retrying(&self.name).await?,
                };
                *self
                    .dead_letters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((generation, aside));
                (replayed, aside)
            }
        };
        let retried = if aside.retrying {
            self.try_retries(shutdown).await?
        } else {
            *self
                .next_retry
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
            0
        };
        let replayed = replayed + retried;
        // A retry falling due ends the wait for new events.
        let wait = self.until_next_retry().map_or(wait, |due| wait.min(due));
        let cursor = self.position().await?;
        let batch = tokio::select! {
            batch = self.producer.read(&self.name, cursor, self.options.batch, wait) => batch?,
            _ = shutdown.cancelled() => return Ok(replayed),
        };
        // Each envelope is shared with its handler's task, not copied.
        let batch: Vec<Arc<Envelope>> = batch.into_iter().map(Arc::new).collect();
        let mut position = cursor;
        let mut read = 0;
        let mut window = VecDeque::new();
        let applied = self
            .apply(
                &batch,
                aside,
                &mut window,
                &mut position,
                &mut read,
                shutdown,
            )
            .await;
        if applied.is_err() {
            // No handler may still run when the batch is read again.
            self.consumer.request_commit();
            for e in window.drain(..) {
                if let State::Running(task) = e.state {
                    let _ = task.await;
                }
            }
        }
        applied?;
        // The next read after `position` acknowledges it to the producer.
        // The cursor in the database may lag a little behind: after a crash
        // that only redelivers what the inbox has already recorded.
        let save = {
            let mut c = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
            c.position = Some(position);
            let due = c.saved_at.is_none_or(|at| at.elapsed() >= CURSOR_EVERY);
            let save = due && c.written != Some(position);
            if save {
                c.saved_at = Some(std::time::Instant::now());
                c.written = Some(position);
            }
            save
        };
        if save {
            self.consumer
                .set_cursor_eventually(&self.name, position)
                .await?;
        }
        self.consistency.advance(&self.name, position);
        Ok(read + replayed)
    }

    /// Applies `batch` in order, moving `position` past each event once it
    /// is durably applied (or parked).
    async fn apply<'a>(
        &'a self,
        batch: &'a [Arc<Envelope>],
        aside: Aside,
        window: &mut VecDeque<InFlight<'a>>,
        position: &mut u64,
        read: &mut usize,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut after: Option<Applied> = None;
        let mut stopped = false;
        for shared in batch {
            let env: &Envelope = shared;
            if shutdown.is_cancelled() {
                break;
            }
            let Some(handles) = self.handles_for(env) else {
                window.push_back(InFlight::done(env, None, Ok(Outcome::Delivered)));
                continue;
            };
            let per_key = matches!(handles.event.ordering, Ordering::PerKey { .. });
            if per_key
                && aside.parked
                && let Some(blocker) = self
                    .consumer
                    .parked_for_subject(&self.name, &env.subject)
                    .await?
            {
                let reason = seams_store::behind_reason(blocker);
                tracing::warn!(subscription = %self.name, event = %env.id, %reason, "parking");
                self.consumer.park(&self.name, env, &reason, 0).await?;
                window.push_back(InFlight::done(env, None, Ok(Outcome::Parked)));
                continue;
            }
            if per_key
                && aside.retrying
                && self
                    .consumer
                    .retrying_for_subject(&self.name, &env.subject)
                    .await?
            {
                // Behind an earlier event of its key that waits for its
                // next attempt: it waits too, due once that one is delivered.
                self.consumer
                    .defer(&self.name, env, 0, 0, WAITS_FOR_ITS_KEY)
                    .await?;
                window.push_back(InFlight::done(env, None, Ok(Outcome::Deferred)));
                continue;
            }
            if let Some(chaos) = self.options.chaos {
                let delay =
                    chaos.min_delay + random_delay(chaos.max_delay.saturating_sub(chaos.min_delay));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            let (turn, mut released) = Turn::after(after.clone());
            // An event that ends without a transaction (applied before)
            // leaves `after` as it was: the next one still follows the last
            // transaction in flight.
            let (span, own) = self.traced(env);
            let handed = match own {
                None => Arc::clone(shared),
                own => handed(env, own),
            };
            let handler = (handles.handler)(handed, self.inbox.in_turn(turn)).instrument(span);
            let mut task = tokio::spawn(handler);
            // The next event may start once this one's transaction has
            // released; if the handler ends without one, once it ends.
            let entry = match released.wait().await {
                Some(applied) => {
                    after = Some(applied);
                    InFlight::running(env, handles, task)
                }
                None => {
                    let first = joined((&mut task).await);
                    let failed = first.is_err();
                    let entry =
                        InFlight::done(env, Some(handles), first.map(|()| Outcome::Delivered));
                    if failed {
                        // Retries go one at a time, in order: nothing starts after a failure.
                        stopped = true;
                    }
                    entry
                }
            };
            window.push_back(entry);
            if stopped {
                break;
            }
            // A full window is settled whole: settling its oldest asks for
            // one commit that covers every transaction in it, so the rest
            // cost nothing more. Settling one to make room for the next
            // would commit each later event of a long batch on its own.
            if window.len() >= WINDOW && !self.settle_all(window, position, read, shutdown).await? {
                return Ok(());
            }
        }
        self.settle_all(window, position, read, shutdown)
            .await
            .map(drop)
    }

    /// Settles the window, oldest first; `false` if the batch must stop.
    async fn settle_all(
        &self,
        window: &mut VecDeque<InFlight<'_>>,
        position: &mut u64,
        read: &mut usize,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        while let Some(oldest) = window.pop_front() {
            if !self
                .settle(oldest, window, position, read, shutdown)
                .await?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Where this relay is in the feed: kept in memory between batches,
    /// read from the consumer's database at first and after a failure.
    async fn position(&self) -> anyhow::Result<u64> {
        let cached = self
            .cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .position;
        match cached {
            Some(position) => Ok(position),
            None => {
                let position = self.consumer.cursor(&self.name).await?;
                let mut c = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
                c.position = Some(position);
                c.written = Some(position);
                Ok(position)
            }
        }
    }

    /// Finishes the oldest event in flight: records it if it was applied;
    /// if it failed, lets everything after it end (they are undone or were
    /// no-ops), then gives it its remaining attempts one at a time. Returns
    /// `false` when the batch must stop here (the rest is read again).
    async fn settle(
        &self,
        entry: InFlight<'_>,
        window: &mut VecDeque<InFlight<'_>>,
        position: &mut u64,
        read: &mut usize,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let InFlight {
            env,
            handles,
            state,
        } = entry;
        // Everything started so far joins the group this asks for.
        self.consumer.request_commit();
        let result = match state {
            State::Done(result) => result,
            State::Running(task) => joined(task.await).map(|()| Outcome::Delivered),
        };
        let mut fell_back = false;
        let outcome = match (result, handles) {
            (Ok(outcome), Some(handles)) if outcome == Outcome::Delivered => {
                self.applied(handles, env).await;
                outcome
            }
            (Ok(outcome), _) => outcome,
            (Err(first), Some(handles)) => {
                fell_back = true;
                for later in window.drain(..) {
                    if let State::Running(task) = later.state {
                        let _ = task.await;
                    }
                }
                let policy = retry_policy(handles);
                match first {
                    // Tried again later, aside: the other keys go on.
                    HandlerError::Transient(reason)
                        if policy.max_attempts > 1 && self.consumer.reachable().await =>
                    {
                        self.set_aside(env, &policy, &reason)
                            .instrument(self.span(env))
                            .await?
                    }
                    // Permanent (parked at once), a single attempt, or the
                    // consumer's own database down (it waits, here).
                    first => {
                        self.attempt_all(handles, policy, env, shutdown, Some(first))
                            .instrument(self.span(env))
                            .await?
                    }
                }
            }
            (Err(e), None) => anyhow::bail!("an unhandled event failed: {e}"),
        };
        match outcome {
            Outcome::Interrupted => {
                window.clear();
                Ok(false)
            }
            Outcome::Delivered | Outcome::Parked | Outcome::Deferred => {
                *position = env.sequence.unwrap_or(*position);
                *read += 1;
                // After a failure the rest of the batch is read again.
                Ok(!fell_back)
            }
        }
    }

    /// What follows a durable application: metrics, the lag, and chaos's duplicate.
    async fn applied(&self, handles: &Handles, env: &Envelope) {
        metrics::counter!("seams_events_applied_total", "subscription" => self.name.clone())
            .increment(1);
        self.consistency
            .record_hop(&env.event_type, self.sub.consumer, &env.time);
        if let Some(chaos) = self.options.chaos
            && rand::rng().random_bool(chaos.duplicate.clamp(0.0, 1.0))
        {
            // The duplicate must be a no-op thanks to the inbox; its result is only logged.
            let dup = (handles.handler)(Arc::new(env.clone()), self.inbox.clone()).await;
            tracing::debug!(result = ?dup, "chaos: delivered a duplicate");
        }
    }

    fn handles_for(&self, env: &Envelope) -> Option<&Handles> {
        self.sub
            .handles
            .iter()
            .find(|h| h.event.event_type == env.event_type)
    }

    fn span(&self, env: &Envelope) -> tracing::Span {
        self.traced(env).0
    }

    /// The span an event's delivery runs in, continuing the producer's
    /// span its `traceparent` names, and that span's own context when it
    /// is exported (for [`handed`]). An event without a valid
    /// `traceparent` starts a new trace in each handling, which no id here
    /// could name unless the span is exported.
    fn traced(&self, env: &Envelope) -> (tracing::Span, Option<TraceContext>) {
        let parent = env.traceparent.as_deref().and_then(TraceContext::parse);
        // A span that continues a parent is in the parent's trace, so its
        // trace id is known before the span is made; recording it later
        // formats the span's fields a second time.
        let parent_trace = parent.as_ref().map(TraceContext::trace_id_hex);
        let span = tracing::info_span!(
            "deliver",
            subscription = %self.name,
            event_type = %env.event_type,
            event_id = %env.id,
            trace_id = parent_trace.as_deref(),
            correlation_id = %env.correlationid,
            otel.kind = "consumer",
            otel.name = tracing::field::Empty,
        );
        let own = seams_telemetry::continue_named(&span, parent.as_ref(), || {
            format!("{} deliver", self.name)
        });
        if parent.is_none()
            && let Some(t) = own
        {
            span.record("trace_id", t.trace_id_hex());
        }
        (span, own)
    }

    /// Runs until `shutdown`, finishing the event in hand.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            // An empty read waits (long-polls) up to `idle_poll` for new events.
            if let Err(e) = self.step(&shutdown, self.options.idle_poll).await {
                // The position in memory stays: it only ever moved past
                // events that were durably applied, and going back to the
                // older cursor row would hand a feed positions it has
                // already acknowledged past. Dead letters are looked at again.
                *self
                    .dead_letters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                tracing::warn!(subscription = %self.name, error = format!("{e:#}"), "delivery loop failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
        if let Err(e) = self.save_cursor().await {
            tracing::warn!(subscription = %self.name, error = format!("{e:#}"), "saving the cursor at shutdown failed; the inbox absorbs the redelivery");
        }
        match self.position().await {
            Ok(applied) => {
                if let Err(e) = self.producer.release(&self.name, applied).await {
                    tracing::warn!(subscription = %self.name, error = format!("{e:#}"), "giving back unapplied events at shutdown failed; they come back after the feed's timeout");
                }
            }
            Err(e) => {
                tracing::warn!(subscription = %self.name, error = format!("{e:#}"), "no position to release the feed at")
            }
        }
        tracing::debug!(subscription = %self.name, "delivery stopped");
    }

    /// Delivers the dead letters whose replay was requested, oldest first; a
    /// letter still behind an older undelivered one with the same key waits.
    /// Returns how many were delivered.
    pub async fn try_replay(&self, shutdown: &CancellationToken) -> anyhow::Result<usize> {
        let mut delivered = 0;
        loop {
            let mut progressed = false;
            for dl in self.consumer.replay_requested(&self.name).await? {
                let env = &dl.envelope;
                if self
                    .consumer
                    .parked_before(&self.name, &env.subject, dl.id)
                    .await?
                    .is_some()
                {
                    continue;
                }
                let outcome = match self.handles_for(env) {
                    Some(handles) => self.attempt(handles, env, shutdown).await?,
                    None => Outcome::Delivered,
                };
                match outcome {
                    Outcome::Delivered => {
                        tracing::info!(subscription = %self.name, dead_letter = dl.id, event = %env.id, "replayed");
                        self.consumer.mark_replayed(dl.id).await?;
                        delivered += 1;
                        progressed = true;
                    }
                    Outcome::Parked | Outcome::Deferred => {}
                    Outcome::Interrupted => return Ok(delivered),
                }
            }
            // A delivered replay queues the letters parked behind it; go again for those.
            if !progressed {
                return Ok(delivered);
            }
        }
    }

    /// Every attempt the event's contract allows, in the event's span.
    async fn attempt(
        &self,
        handles: &Handles,
        env: &Envelope,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Outcome> {
        self.attempt_all(handles, retry_policy(handles), env, shutdown, None)
            .instrument(self.span(env))
            .await
    }

    /// Attempts until one succeeds, the failure is permanent, or the
    /// policy's attempts are spent; `first` is the outcome of a first
    /// attempt already made (in a pipelined batch).
    async fn attempt_all(
        &self,
        handles: &Handles,
        policy: RetryPolicy,
        env: &Envelope,
        shutdown: &CancellationToken,
        mut first: Option<HandlerError>,
    ) -> anyhow::Result<Outcome> {
        let mut last_error = String::new();
        let mut attempt = 0;
        // Run in the delivery's span (`traced`), as a first try is.
        let handed = handed(
            env,
            seams_telemetry::continue_from(&tracing::Span::current(), None),
        );
        while attempt < policy.max_attempts {
            attempt += 1;
            let result = match first.take() {
                Some(failed) => Err(failed),
                None => {
                    let mut wait = policy.backoff(attempt);
                    if let Some(chaos) = self.options.chaos {
                        wait += chaos.min_delay
                            + random_delay(chaos.max_delay.saturating_sub(chaos.min_delay));
                    }
                    if !wait.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.cancelled() => return Ok(Outcome::Interrupted),
                        }
                    }
                    (handles.handler)(handed.clone(), self.inbox.clone()).await
                }
            };
            match result {
                Ok(()) => {
                    self.applied(handles, env).await;
                    return Ok(Outcome::Delivered);
                }
                Err(HandlerError::Permanent(reason)) => {
                    tracing::error!(%reason, attempt, "event rejected; dead-lettered");
                    metrics::counter!("seams_events_dead_lettered_total", "subscription" => self.name.clone())
                        .increment(1);
                    self.consumer
                        .park(&self.name, env, &reason, attempt)
                        .await?;
                    return Ok(Outcome::Parked);
                }
                Err(HandlerError::Transient(reason)) if !self.consumer.reachable().await => {
                    // The consumer's own database is down (a PostgreSQL
                    // restart): not the event's fault, and no attempt is
                    // spent on it; the event waits, then is tried again.
                    tracing::warn!(%reason, "the consumer's database is unreachable; waiting for it");
                    if !self.wait_reachable(shutdown).await {
                        return Ok(Outcome::Interrupted);
                    }
                    attempt -= 1;
                }
                Err(HandlerError::Transient(reason)) => {
                    tracing::warn!(%reason, attempt, max = policy.max_attempts, "delivery failed");
                    metrics::counter!("seams_event_failures_total", "subscription" => self.name.clone())
                        .increment(1);
                    last_error = reason;
                }
            }
        }
        tracing::error!(error = %last_error, attempts = policy.max_attempts, "retries exhausted; dead-lettered");
        metrics::counter!("seams_events_dead_lettered_total", "subscription" => self.name.clone())
            .increment(1);
        self.consumer
            .park(&self.name, env, &last_error, policy.max_attempts)
            .await?;
        Ok(Outcome::Parked)
    }
}

impl Relay {
    /// Waits until the consumer's database answers again; `false` if
    /// shutdown came first.
    async fn wait_reachable(&self, shutdown: &CancellationToken) -> bool {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.cancelled() => return false,
            }
            if self.consumer.reachable().await {
                return true;
            }
        }
    }
}

/// How often a running relay writes its cursor at most.
const CURSOR_EVERY: Duration = Duration::from_millis(250);

/// A relay's position.
#[derive(Debug, Default)]
struct Cursor {
    /// After the last batch; `None` until read from the database.
    position: Option<u64>,
    /// What was last written to (or read from) the database.
    written: Option<u64>,
    /// When it was last written.
    saved_at: Option<std::time::Instant>,
}

/// Events of one batch in flight at most: each holds its handler task until
/// its group commit is durable.
const WINDOW: usize = 64;

/// One event of a batch, in feed order.
struct InFlight<'a> {
    env: &'a Envelope,
    /// `None` for an event type this subscription does not handle.
    handles: Option<&'a Handles>,
    state: State,
}

enum State {
    /// The handler still runs (its transaction waits for its group commit).
    Running(JoinHandle<Result<(), HandlerError>>),
    /// Finished: skipped, parked, or the handler's first attempt ended.
    Done(Result<Outcome, HandlerError>),
}

impl<'a> InFlight<'a> {
    fn running(
        env: &'a Envelope,
        handles: &'a Handles,
        task: JoinHandle<Result<(), HandlerError>>,
    ) -> Self {
        InFlight {
            env,
            handles: Some(handles),
            state: State::Running(task),
        }
    }

    fn done(
        env: &'a Envelope,
        handles: Option<&'a Handles>,
        result: Result<Outcome, HandlerError>,
    ) -> Self {
        InFlight {
            env,
            handles,
            state: State::Done(result),
        }
    }
}

/// A handler task's result; a panic is a transient failure (it is retried,
/// then dead-lettered), not the end of the delivery loop.
fn joined(
    result: Result<Result<(), HandlerError>, tokio::task::JoinError>,
) -> Result<(), HandlerError> {
    result.unwrap_or_else(|e| Err(HandlerError::Transient(format!("handler panicked: {e}"))))
}

/// The attempts the bus owes an event: its contract's, or one.
fn retry_policy(handles: &Handles) -> RetryPolicy {
    match handles.event.retries {
        Retries::Bus(p) => p,
        Retries::Caller(_) | Retries::Nobody => RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::STANDARD
        },
    }
}

fn random_delay(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_micros(rand::rng().random_range(0..=max.as_micros() as u64))
}

/// The event as a handler gets it, a copy: with the `traceparent` of the
/// delivery span `own` when that span is exported, so that what the
/// handler does (`CallContext::caused_by_event`) is part of the delivery in
/// the trace; as it came otherwise. A first attempt without an exported
/// span is handed the relay's shared envelope instead, uncopied.
fn handed(env: &Envelope, own: Option<TraceContext>) -> Arc<Envelope> {
    Arc::new(match own {
        Some(own) => Envelope {
            traceparent: Some(own.to_traceparent()),
            ..env.clone()
        },
        None => env.clone(),
    })
}
/// What the relay knows is set aside for its subscription, as of a
/// dead-letter generation.
#[derive(Debug, Clone, Copy, Default)]
struct Aside {
    /// Dead letters not yet delivered (per-key parking applies).
    parked: bool,
    /// Events waiting for their next attempt (or behind one of their key).
    retrying: bool,
}

/// Why an event waits in the retries behind an earlier one of its key.
const WAITS_FOR_ITS_KEY: &str =
    "waiting behind an earlier event with the same key that is being retried (per-key ordering)";

mod retries;
#[cfg(test)]
mod tests;
