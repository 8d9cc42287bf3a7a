//! Consuming identity's, billing's and fulfillment's events: the contact
//! projection and its address changes, one delivery per event under
//! duplicates, an invoice that overtakes its customer's contact, every kind
//! of message, and an event that can never become a message.

use std::sync::Arc;
use std::time::Duration;

use notification::store::Store;
use seams_runtime::relay::{Chaos, RelayOptions};
use seams_runtime::{EventHandler, HandlerError};

use super::*;

#[tokio::test]
async fn an_invoice_for_a_known_contact_is_mailed_once_and_listed() {
    let w = world().await;
    let invoice = new_id();
    w.register("c-1", "alice@example.com", "Alice Liddell")
        .await;
    let created = w.invoice_created("c-1", &invoice).await;

    w.deliver().await;

    let contact = Store::new(w.n.component.db.clone())
        .contact("c-1")
        .await
        .unwrap()
        .expect("contact projected");
    assert_eq!(
        (contact.email.as_str(), contact.name.as_str()),
        ("alice@example.com", "Alice Liddell")
    );
    let pending = w.deliveries("c-1").await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"], "pending");
    assert!(w.mail().is_empty(), "recorded, not yet sent");

    assert_eq!(w.send().await, 1);
    assert_eq!(w.send().await, 0, "nothing left to send");

    let listed = w.deliveries("c-1").await;
    assert_eq!(listed.len(), 1);
    let d = &listed[0];
    let id = d["id"].as_str().unwrap();
    assert_eq!(d["status"], "delivered", "{d}");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_error"], Value::Null);
    assert!(d["delivered_at"].is_string(), "{d}");
    assert_eq!(d["customer_id"], "c-1");
    assert_eq!(d["event_id"], created.id);
    assert_eq!(d["event_type"], "billing.invoice-created");
    assert_eq!(d["channel"], "maildir");
    assert_eq!(d["recipient"], "alice@example.com");
    let subject = format!("Invoice {} for 12.50 EUR", short(&invoice));
    assert_eq!(d["subject"], subject.as_str());

    let mail = w.mail();
    assert_eq!(mail.len(), 1);
    assert_eq!(w.maildir().count_for(id).unwrap(), 1, "file named by id");
    for line in [
        "To: \"Alice Liddell\" <alice@example.com>".to_owned(),
        format!("Subject: {subject}"),
        format!("Message-ID: <{id}@seams.local>"),
        "  2 x Green tea (TEA-1) at 6.25 EUR = 12.50 EUR".to_owned(),
    ] {
        assert!(
            mail[0].lines().any(|l| l == line),
            "no {line:?} in\n{}",
            mail[0]
        );
    }
}

#[tokio::test]
async fn a_changed_email_readdresses_later_deliveries_only() {
    let w = world().await;
    let (first, second) = (new_id(), new_id());
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &first).await;
    w.deliver().await;
    assert_eq!(w.send().await, 1);

    w.change_email("c-1", "alice@example.org").await;
    w.invoice_created("c-1", &second).await;
    w.deliver().await;
    assert_eq!(w.send().await, 1);

    let contact = Store::new(w.n.component.db.clone())
        .contact("c-1")
        .await
        .unwrap()
        .expect("contact projected");
    assert_eq!(
        (contact.email.as_str(), contact.name.as_str()),
        ("alice@example.org", "Alice"),
        "the name is kept"
    );
    let listed = w.deliveries("c-1").await;
    let recipients: Vec<&str> = listed
        .iter()
        .map(|d| d["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(
        recipients,
        ["alice@example.com", "alice@example.org"],
        "a recorded delivery keeps the address it was recorded with"
    );
    let mut to: Vec<String> = w
        .mail()
        .iter()
        .map(|m| {
            m.lines()
                .find(|l| l.starts_with("To: "))
                .unwrap()
                .to_owned()
        })
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "To: Alice <alice@example.com>",
            "To: Alice <alice@example.org>"
        ]
    );
}

#[tokio::test]
async fn an_email_change_before_its_contact_is_refused_as_transient() {
    let w = world().await;
    let (changed, _) = w.change_email("c-1", "alice@example.org").await;

    let res = w.handle(&changed).await;

    assert_eq!(
        res,
        Err(HandlerError::Transient("contact c-1 not yet known".into()))
    );
    assert!(
        !w.n.component
            .db
            .inbox_contains("notification<-identity", &changed.id)
            .await
            .unwrap(),
        "rolled back: the event counts as not applied"
    );
    let store = Store::new(w.n.component.db.clone());
    assert_eq!(
        store.contact("c-1").await.unwrap(),
        None,
        "nothing invented"
    );

    let registered = w.register("c-1", "alice@example.com", "Alice").await;
    w.handle(&registered).await.unwrap();
    w.handle(&changed).await.unwrap();
    // A duplicate of the change is a no-op, thanks to the inbox.
    w.handle(&changed).await.unwrap();

    let contact = store.contact("c-1").await.unwrap().unwrap();
    assert_eq!(contact.email, "alice@example.org");
}

#[tokio::test]
async fn voided_refunded_and_shipped_invoices_are_mailed() {
    let w = world().await;
    let (voided, refunded, shipped) = (new_id(), new_id(), new_id());
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_voided("c-1", &voided).await;
    w.invoice_refunded("c-1", &refunded).await;
    w.shipment_dispatched("c-1", &shipped).await;

    w.deliver().await;
    assert_eq!(w.send().await, 3);

    let listed = w.deliveries("c-1").await;
    let got: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|d| {
            (
                d["event_type"].as_str().unwrap(),
                d["subject"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    let subjects = [
        format!("Invoice {} cancelled", short(&voided)),
        format!("Refund of 12.50 EUR for invoice {}", short(&refunded)),
        format!("Invoice {} has shipped", short(&shipped)),
    ];
    assert_eq!(
        got,
        [
            ("billing.invoice-voided", subjects[0].as_str(), "delivered"),
            (
                "billing.invoice-refunded",
                subjects[1].as_str(),
                "delivered"
            ),
            (
                "fulfillment.shipment-dispatched",
                subjects[2].as_str(),
                "delivered"
            ),
        ]
    );
    let mail = w.mail();
    assert_eq!(mail.len(), 3);
    // Bodies are quoted-printable, which folds long lines: look for the
    // start of each message's first line.
    for (subject, says) in subjects.iter().zip([
        format!("your invoice {} has been cancelled: some", short(&voided)),
        "we refunded your payment of 12.50 EUR".to_owned(),
        format!("the items of invoice {} are on their way.", short(&shipped)),
    ]) {
        let message = mail
            .iter()
            .find(|m| m.lines().any(|l| l == format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("no message {subject:?}"));
        assert!(message.contains(&says), "{says:?} not in\n{message}");
        assert!(
            message.contains("To: Alice <alice@example.com>"),
            "{message}"
        );
    }
    assert!(w.n.component.db.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_shipment_before_its_contact_waits_like_an_invoice() {
    let w = world().await;
    let shipped = w.shipment_dispatched("c-1", &new_id()).await;

    let res = w.handle(&shipped).await;

    assert_eq!(
        res,
        Err(HandlerError::Transient("contact c-1 not yet known".into()))
    );
    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;
    let listed = w.deliveries("c-1").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["event_id"], shipped.id);
}

#[tokio::test]
async fn an_invoice_and_its_payment_are_two_messages_oldest_first() {
    let w = world().await;
    let invoice = new_id();
    w.register("c-1", "alice@example.com", "Alice").await;
    w.invoice_created("c-1", &invoice).await;
    w.invoice_paid("c-1", &invoice).await;

    w.deliver().await;
    assert_eq!(w.send().await, 2);

    let listed = w.deliveries("c-1").await;
    let types: Vec<&str> = listed
        .iter()
        .map(|d| d["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["billing.invoice-created", "billing.invoice-paid"]);
    assert_eq!(
        listed[1]["subject"],
        format!("Payment received for invoice {}", short(&invoice))
    );
    assert!(listed.iter().all(|d| d["status"] == "delivered"));
    assert_eq!(w.mail().len(), 2);
}

#[tokio::test]
async fn a_duplicated_event_records_one_delivery_and_writes_one_file() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    let created = w.invoice_created("c-1", &new_id()).await;
    let chaos = RelayOptions {
        chaos: Some(Chaos {
            duplicate: 1.0,
            min_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }),
        ..RelayOptions::default()
    };

    // Every event is delivered twice by the bus...
    for producer in ["identity", "billing"] {
        w.relay(producer, chaos)
            .try_run_once(&w.shutdown)
            .await
            .unwrap();
    }
    // ...and once more, as after a crash before the cursor was saved...
    w.handle(&created).await.unwrap();
    // ...and again after the inbox forgot it, which only a redelivery past
    // the inbox's horizon could meet: the delivery log's unique event id
    // refuses it (a permanent error, so a dead letter, never a second mail).
    w.n.component.db.prune(&[], 0, i64::MAX, 0).await.unwrap();
    assert!(
        !w.n.component
            .db
            .inbox_contains("notification<-billing", &created.id)
            .await
            .unwrap(),
        "the inbox row is gone"
    );
    let res = w.handle(&created).await;
    assert!(
        matches!(&res, Err(HandlerError::Permanent(m)) if m.contains("UNIQUE")),
        "{res:?}"
    );

    assert_eq!(w.deliveries("c-1").await.len(), 1);
    assert_eq!(w.send().await, 1);
    assert_eq!(w.send().await, 0);
    assert_eq!(w.mail().len(), 1);
}

#[tokio::test]
async fn an_invoice_before_its_contact_is_refused_as_transient_then_delivered() {
    let w = world().await;
    let created = w.invoice_created("c-1", &new_id()).await;

    let res = w.handle(&created).await;

    assert_eq!(
        res,
        Err(HandlerError::Transient("contact c-1 not yet known".into()))
    );
    assert!(
        !w.n.component
            .db
            .inbox_contains("notification<-billing", &created.id)
            .await
            .unwrap(),
        "rolled back: the event counts as not applied"
    );
    assert!(w.deliveries("c-1").await.is_empty());
    assert_eq!(w.send().await, 0);

    w.register("c-1", "alice@example.com", "Alice").await;
    w.deliver().await;

    let listed = w.deliveries("c-1").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["event_id"], created.id);
    assert_eq!(w.send().await, 1);
    assert_eq!(w.mail().len(), 1);
    assert!(
        w.n.component.db.dead_letters().await.unwrap().is_empty(),
        "nothing was given up on"
    );
}

#[tokio::test]
async fn the_bus_redelivers_an_early_invoice_until_the_contact_arrives() {
    let w = world().await;
    w.invoice_created("c-1", &new_id()).await;
    // The billing subscription, with every handler result reported to the
    // test, so it can wait for the first refusal instead of sleeping.
    let (results, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let mut sub = w.subscription("billing");
    for h in &mut sub.handles {
        let inner = h.handler.clone();
        let results = results.clone();
        let observed: EventHandler = Arc::new(move |env, inbox| {
            let inner = inner.clone();
            let results = results.clone();
            Box::pin(async move {
                let res = inner(env, inbox).await;
                let _ = results.send(res.clone());
                res
            })
        });
        h.handler = observed;
    }
    // The contract's own policy applies: billing's events are retried by the
    // bus with backoff from 100 ms.
    let relay = Arc::new(seams_runtime::relay::Relay::new(
        sub,
        w.n.component.db.clone(),
        w.billing.clone(),
        RelayOptions::default(),
    ));
    let running = tokio::spawn(relay.run(w.shutdown.clone()));

    let first = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("a first attempt")
        .unwrap();
    assert!(
        matches!(first, Err(HandlerError::Transient(_))),
        "{first:?}"
    );
    w.register("c-1", "alice@example.com", "Alice").await;
    w.relay("identity", RelayOptions::default())
        .try_run_once(&w.shutdown)
        .await
        .unwrap();
    let applied = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(res) = seen.recv().await {
            if res.is_ok() {
                return true;
            }
        }
        false
    })
    .await
    .expect("a redelivery within the contract's retry horizon");
    assert!(applied);
    w.shutdown.cancel();
    running.await.unwrap();

    assert_eq!(w.deliveries("c-1").await.len(), 1);
    assert!(w.n.component.db.dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_event_that_cannot_become_a_message_is_dead_lettered() {
    let w = world().await;
    w.register("c-1", "alice@example.com", "Alice").await;
    let mut ev = invoice_created("c-1", &new_id());
    ev.total.currency = "EURO".into();
    let env = publish(&w.billing, &ev).await;
    w.relay("identity", RelayOptions::default())
        .try_run_once(&w.shutdown)
        .await
        .unwrap();

    let res = w.handle(&env).await;
    assert!(
        matches!(&res, Err(HandlerError::Permanent(reason)) if reason.contains("total")),
        "{res:?}"
    );
    w.deliver().await;

    let dead = w.n.component.db.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.id, env.id);
    assert!(dead[0].error.contains("EURO"), "{}", dead[0].error);
    assert!(w.deliveries("c-1").await.is_empty());
}

#[tokio::test]
async fn the_component_declares_what_it_serves_consumes_and_runs() {
    let w = world().await;
    let c = &w.n.component;

    assert_eq!(c.name, "notification");
    let public: Vec<String> = c.public().iter().map(|op| op.id()).collect();
    assert_eq!(
        public,
        [
            notification_contract::LIST_DELIVERIES.id(),
            notification_contract::GET_CONTACT.id()
        ]
    );
    assert!(c.serves.is_empty());
    assert!(c.publishes.is_empty(), "notification publishes nothing yet");
    // One line per subscription: its name, then each handled type and the
    // versions it accepts.
    let subs: Vec<String> = c
        .subscriptions
        .iter()
        .map(|s| {
            let handles: Vec<String> = s
                .handles
                .iter()
                .map(|h| format!("{} {:?}", h.event.event_type, h.accepts))
                .collect();
            format!("{}: {}", s.name(), handles.join(", "))
        })
        .collect();
    assert_eq!(
        subs,
        [
            "notification<-identity: identity.customer-registered [1], \
             identity.customer-email-changed [1]",
            "notification<-billing: billing.invoice-created [1, 2], billing.invoice-paid [1], \
             billing.invoice-voided [1], billing.invoice-refunded [1]",
            "notification<-fulfillment: fulfillment.shipment-dispatched [1]",
        ]
    );
    assert_eq!(
        c.subscriptions[0].name(),
        notification::service::CONTACTS_SUBSCRIPTION,
        "freshness is read under the contacts' subscription name"
    );
    let invariants: Vec<String> = c.invariants.iter().map(|i| i.id()).collect();
    assert_eq!(
        invariants,
        [
            "notification.contacts-follow-identity",
            "notification.email-change-reaches-contacts",
            "notification.invoice-notice-recorded",
        ]
    );
    assert_eq!(
        notification::EMAIL_CHANGE_REACHES_CONTACTS
            .measure_key()
            .as_deref(),
        Some("identity.customer-email-changed->notification")
    );
    let workers: Vec<&str> = c.workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(workers, ["notification.sender"]);
    assert_eq!(w.n.sender.channel(), "maildir");
}
