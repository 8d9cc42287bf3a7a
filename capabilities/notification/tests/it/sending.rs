//! Sending recorded deliveries: over real SMTP, with retries and backoff
//! against a relay that is down, giving up at once on an unusable address,
//! exactly one message after a crash between sending and recording, one
//! commit per batch of messages, and the worker waking as soon as a
//! delivery is recorded. Over STARTTLS: delivered when the relay's
//! certificate comes from the CA the channel trusts, and a recorded, retried
//! failed attempt when it does not.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use notification::channel::{Channel, Message, SmtpOptions, SmtpTls};
use notification::{ChannelOptions, MAILDIR_FROM};
use seams_core::decl::RetryPolicy;
use seams_testkit::smtp::{ServerTls, SmtpServer};
use seams_testkit::tls::TestCa;

use super::*;

fn smtp(port: u16) -> ChannelOptions {
    smtp_with(port, SmtpTls::None, None)
}

/// [`smtp`] over STARTTLS, trusting `ca`.
fn smtp_starttls(port: u16, ca: &TestCa) -> ChannelOptions {
    smtp_with(port, SmtpTls::StartTls, Some(ca.ca_file()))
}

fn smtp_with(port: u16, tls: SmtpTls, ca_file: Option<std::path::PathBuf>) -> ChannelOptions {
    ChannelOptions::Smtp(SmtpOptions {
        host: "127.0.0.1".into(),
        port,
        from: MAILDIR_FROM.into(),
        timeout: Duration::from_secs(5),
        tls,
        ca_file,
    })
}

/// A loopback port nothing listens on: bound by the OS, then released.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn smtp_hands_the_message_to_a_real_server() {
    let Some(server) = SmtpServer::start_or_skip() else {
        return;
    };
    let w = world_with(|opts| Options {
        channel: smtp(server.port()),
        ..opts
    })
    .await;
    let invoice = new_id();
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &invoice).await;
    w.deliver().await;

    assert_eq!(w.send().await, 1);

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let listed = w.deliveries("c-1").await;
    assert_eq!(listed[0]["status"], "delivered", "{}", listed[0]);
    assert_eq!(listed[0]["channel"], "smtp");
    let id = listed[0]["id"].as_str().unwrap();
    for line in [
        "X-RcptTo: alice@example.com".to_owned(),
        format!("Subject: Invoice {} for 12.50 EUR", short(&invoice)),
        format!("Message-ID: <{id}@seams.local>"),
    ] {
        assert!(
            messages[0].lines().any(|l| l.trim_end() == line),
            "no {line:?} in\n{}",
            messages[0]
        );
    }
}

#[tokio::test]
async fn over_starttls_the_message_goes_out_only_to_the_relay_the_ca_vouches_for() {
    let ca = TestCa::new().unwrap();
    let Some(server) = SmtpServer::start_with_or_skip(ServerTls::StartTls(&ca)) else {
        return;
    };
    let other = TestCa::new().unwrap();
    let w = world_with(|opts| Options {
        channel: smtp_starttls(server.port(), &other),
        ..opts
    })
    .await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;

    // Another CA's relay: nothing sent, an attempt recorded, retried later.
    assert_eq!(w.send().await, 1);
    let d = w.deliveries("c-1").await.remove(0);
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_u64()),
        (Some("pending"), Some(1)),
        "{d}"
    );
    let error = d["last_error"].as_str().expect("the error is recorded");
    assert!(error.starts_with("transient: SMTP 127.0.0.1:"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(server.messages().is_empty());

    // Trusting the relay's own CA, the same delivery goes out.
    let w = world_with(|opts| Options {
        channel: smtp_starttls(server.port(), &ca),
        ..opts
    })
    .await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;
    assert_eq!(w.send().await, 1);
    assert_eq!(w.deliveries("c-1").await[0]["status"], "delivered");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_relay_that_is_down_is_retried_with_backoff_then_the_delivery_fails_visibly() {
    let w = world_with(|opts| Options {
        channel: smtp(dead_port()),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        },
        ..opts
    })
    .await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;
    let state = || async {
        let d = w.deliveries("c-1").await.remove(0);
        (
            d["status"].as_str().unwrap().to_owned(),
            d["attempts"].as_u64().unwrap(),
            d,
        )
    };

    assert_eq!(w.send().await, 1);
    let (status, attempts, d) = state().await;
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    let error = d["last_error"].as_str().expect("the error is recorded");
    assert!(error.starts_with("transient: SMTP 127.0.0.1:"), "{error}");

    // Not due again until the backoff has passed.
    assert_eq!(w.send().await, 0);
    w.clock.advance(Duration::from_millis(199));
    assert_eq!(w.send().await, 0);
    w.clock.advance(Duration::from_millis(1));
    assert_eq!(w.send().await, 1);
    assert_eq!(state().await.1, 2);

    // The backoff doubles.
    w.clock.advance(Duration::from_millis(399));
    assert_eq!(w.send().await, 0);
    w.clock.advance(Duration::from_millis(1));
    assert_eq!(w.send().await, 1);

    let (status, attempts, d) = state().await;
    assert_eq!((status.as_str(), attempts), ("failed", 3));
    let error = d["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("gave up after 3 attempts: transient:"),
        "{error}"
    );
    assert_eq!(d["delivered_at"], Value::Null);

    // Failed is final, and kept.
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(w.send().await, 0);
    assert_eq!(w.deliveries("c-1").await.len(), 1);
}

#[tokio::test]
async fn an_unusable_address_fails_at_once_without_retrying() {
    let w = world().await;
    w.register("c-1", "not an address", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;

    assert_eq!(w.send().await, 1);

    let d = w.deliveries("c-1").await.remove(0);
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_u64()),
        (Some("failed"), Some(1))
    );
    let error = d["last_error"].as_str().unwrap();
    assert!(error.starts_with("permanent: invalid recipient"), "{error}");
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(w.send().await, 0);
    assert!(w.mail().is_empty());
}

#[tokio::test]
async fn a_crash_between_sending_and_recording_still_leaves_one_message() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;
    w.deliver().await;
    let d = w.deliveries("c-1").await.remove(0);
    let id = d["id"].as_str().unwrap();
    // The first send reached the Maildir, then the process died before
    // recording it: the row is still pending.
    w.maildir()
        .deliver(&Message {
            id: id.to_owned(),
            to_email: "alice@example.com".into(),
            to_name: "Alice".into(),
            subject: d["subject"].as_str().unwrap().to_owned(),
            body: "sent before the crash".into(),
        })
        .await
        .unwrap();
    assert_eq!(w.deliveries("c-1").await[0]["status"], "pending");

    assert_eq!(w.send().await, 1);

    assert_eq!(w.deliveries("c-1").await[0]["status"], "delivered");
    assert_eq!(w.maildir().count_for(id).unwrap(), 1);
    assert_eq!(w.mail().len(), 1);
}

#[tokio::test]
async fn the_worker_sends_as_soon_as_a_delivery_is_recorded() {
    // A poll interval no test would wait for: only the wake-up can send in time.
    let mut w = world_with(|opts| Options {
        poll: Duration::from_secs(3600),
        ..opts
    })
    .await;
    let worker = w.n.component.workers.pop().unwrap();
    let running = tokio::spawn((worker.run)(w.shutdown.clone()));
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &new_id()).await;

    w.deliver().await;

    let deadline = Instant::now() + Duration::from_secs(10);
    while w.mail().is_empty() {
        assert!(Instant::now() < deadline, "the worker was not woken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
    assert_eq!(w.deliveries("c-1").await[0]["status"], "delivered");
}

#[tokio::test]
async fn a_batch_of_messages_is_recorded_in_one_commit() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    for _ in 0..5 {
        w.invoice_created("c-1", &new_id()).await;
    }
    w.deliver().await;
    let db = &w.n.component.db;
    // The relays leave their cursor writes to a later commit: make it now.
    db.flush().await.unwrap();
    let before = db.commits();

    assert_eq!(w.send().await, 5);

    assert_eq!(db.commits() - before, 1, "one commit for the batch");
    let deliveries = w.deliveries("c-1").await;
    assert_eq!(deliveries.len(), 5);
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{deliveries:?}"
    );
    assert_eq!(w.mail().len(), 5);
}
