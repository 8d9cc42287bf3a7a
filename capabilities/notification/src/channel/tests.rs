//! Tests for the delivery channels: what a delivered message looks like, that
//! maildir redelivery is a no-op, and how SMTP failures are classified.
//!
//! The SMTP tests run against a real aiosmtpd process from `seams-testkit`
//! (skipped with a loud notice when it is not installed, failing under CI),
//! and against small scripted servers for replies aiosmtpd will not give.
//! Over TLS, aiosmtpd presents a certificate from a throwaway CA: a message
//! goes out over STARTTLS or implicit TLS trusting that CA; trusting another
//! CA it does not go out, and the failure is transient; a client without
//! TLS is refused by a server that requires STARTTLS.

use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use seams_testkit::smtp::{ServerTls, SmtpServer};
use seams_testkit::tls::TestCa;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::*;

const FROM: &str = "Seams Shop <shop@localhost>";

fn from() -> Mailbox {
    FROM.parse().unwrap()
}

fn message(id: &str) -> Message {
    Message {
        id: id.to_owned(),
        to_email: "alice@example.com".to_owned(),
        to_name: "Alice Liddell".to_owned(),
        subject: "Your order is confirmed".to_owned(),
        body: "Hi Alice,\n\nthank you for your order.\n".to_owned(),
    }
}

#[test]
fn the_envelope_is_the_sender_and_the_recipient() {
    let rendered = render(&message("d-1"), &from()).unwrap();
    let envelope = rendered.envelope();
    assert_eq!(
        envelope.from().map(ToString::to_string).as_deref(),
        Some("shop@localhost")
    );
    let to: Vec<String> = envelope.to().iter().map(ToString::to_string).collect();
    assert_eq!(to, ["alice@example.com"]);
}

fn maildir() -> (tempfile::TempDir, Maildir) {
    let dir = tempfile::tempdir().unwrap();
    let maildir = Maildir::new(dir.path().join("mail"), from()).unwrap();
    (dir, maildir)
}

/// Asserts the headers and body every channel must produce for `message(id)`.
fn check_rendered(raw: &str, id: &str) {
    for expected in [
        // lettre always quotes display names.
        "From: \"Seams Shop\" <shop@localhost>",
        "To: \"Alice Liddell\" <alice@example.com>",
        "Subject: Your order is confirmed",
        &format!("Message-ID: <{id}@seams.local>"),
        "Content-Type: text/plain; charset=utf-8",
        "thank you for your order.",
    ] {
        assert!(
            raw.lines().any(|line| line.trim_end() == expected),
            "missing line {expected:?} in:\n{raw}"
        );
    }
}

#[tokio::test]
async fn maildir_delivers_a_readable_rfc5322_message() {
    let (_dir, maildir) = maildir();

    maildir.deliver(&message("d-1")).await.unwrap();

    let files = maildir.delivered().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0], maildir.root().join("new").join("d-1.seams"));
    let raw = fs::read_to_string(&files[0]).unwrap();
    check_rendered(&raw, "d-1");
    assert!(!raw.contains('\r'), "maildir files use LF line endings");
    assert!(
        fs::read_dir(maildir.root().join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "nothing is left behind in tmp/"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files[0]), 0o600, "mail is its owner's alone");
        for sub in ["tmp", "new", "cur"] {
            assert_eq!(mode(&maildir.root().join(sub)), 0o700, "{sub}");
        }
    }
}

#[tokio::test]
async fn maildir_delivering_the_same_id_twice_writes_one_file() {
    let (_dir, maildir) = maildir();

    maildir.deliver(&message("d-1")).await.unwrap();
    maildir.deliver(&message("d-1")).await.unwrap();
    maildir.deliver(&message("d-2")).await.unwrap();

    assert_eq!(maildir.count_for("d-1").unwrap(), 1);
    assert_eq!(maildir.count_for("d-2").unwrap(), 1);
    assert_eq!(maildir.delivered().unwrap().len(), 2);
}

#[tokio::test]
async fn maildir_does_not_redeliver_a_message_a_reader_moved_to_cur() {
    let (_dir, maildir) = maildir();
    maildir.deliver(&message("d-1")).await.unwrap();
    // What a mail reader does when it shows the message: move it to cur/
    // and append the info suffix with the Seen flag.
    let seen = maildir.root().join("cur").join("d-1.seams:2,S");
    fs::rename(maildir.root().join("new").join("d-1.seams"), &seen).unwrap();

    maildir.deliver(&message("d-1")).await.unwrap();

    assert_eq!(maildir.delivered().unwrap(), vec![seen]);
}

#[tokio::test]
async fn maildir_does_not_mistake_a_longer_id_for_a_delivered_one() {
    let (_dir, maildir) = maildir();
    maildir.deliver(&message("d-10")).await.unwrap();

    maildir.deliver(&message("d-1")).await.unwrap();

    assert_eq!(maildir.count_for("d-1").unwrap(), 1);
    assert_eq!(maildir.count_for("d-10").unwrap(), 1);
}

#[tokio::test]
async fn an_invalid_address_is_permanent_and_writes_nothing() {
    let (_dir, maildir) = maildir();
    let msg = Message {
        to_email: "not an address".to_owned(),
        ..message("d-1")
    };

    let err = maildir.deliver(&msg).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Permanent(_)), "{err:?}");
    assert!(maildir.delivered().unwrap().is_empty());
}

#[tokio::test]
async fn an_id_that_could_escape_the_maildir_is_permanent() {
    let (dir, maildir) = maildir();

    for id in ["../escape", "a/b", "", "a b", "x@y"] {
        let err = maildir.deliver(&message(id)).await.unwrap_err();
        assert!(
            matches!(err, DeliveryError::Permanent(_)),
            "{id:?}: {err:?}"
        );
    }

    assert!(maildir.delivered().unwrap().is_empty());
    assert!(!dir.path().join("escape.seams").exists());
}

#[tokio::test]
async fn an_empty_name_renders_a_bare_address() {
    let (_dir, maildir) = maildir();
    let msg = Message {
        to_name: String::new(),
        ..message("d-1")
    };

    maildir.deliver(&msg).await.unwrap();

    let raw = fs::read_to_string(&maildir.delivered().unwrap()[0]).unwrap();
    assert!(raw.contains("To: alice@example.com\n"), "{raw}");
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server() {
    let Some(server) = SmtpServer::start_or_skip() else {
        return;
    };
    let smtp = Smtp::new(SmtpOptions {
        host: server.host().to_owned(),
        port: server.port(),
        from: FROM.to_owned(),
        timeout: Duration::from_secs(10),
        tls: SmtpTls::None,
        ca_file: None,
    })
    .unwrap();

    smtp.deliver(&message("d-1")).await.unwrap();

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    check_rendered(&messages[0], "d-1");
    // The envelope names the recipient of the `To` header.
    assert!(
        messages[0].contains("X-RcptTo: alice@example.com"),
        "{}",
        messages[0]
    );
}

#[tokio::test]
async fn smtp_with_nothing_listening_is_transient_and_quick() {
    // Bound and released: nothing listens on it afterwards.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let smtp = Smtp::new(SmtpOptions {
        host: "127.0.0.1".to_owned(),
        port,
        from: FROM.to_owned(),
        timeout: Duration::from_secs(2),
        tls: SmtpTls::None,
        ca_file: None,
    })
    .unwrap();
    let started = Instant::now();

    let err = smtp.deliver(&message("d-1")).await.unwrap_err();

    assert!(matches!(err, DeliveryError::Transient(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn smtp_5xx_is_permanent_and_4xx_is_transient() {
    for (rcpt_reply, permanent) in [
        ("550 5.1.1 no such user", true),
        ("451 4.3.0 try again later", false),
    ] {
        let port = scripted_server(rcpt_reply).await;
        let smtp = Smtp::new(SmtpOptions {
            host: "127.0.0.1".to_owned(),
            port,
            from: FROM.to_owned(),
            timeout: Duration::from_secs(5),
            tls: SmtpTls::None,
            ca_file: None,
        })
        .unwrap();

        let err = smtp.deliver(&message("d-1")).await.unwrap_err();

        assert_eq!(
            matches!(err, DeliveryError::Permanent(_)),
            permanent,
            "{rcpt_reply}: {err:?}"
        );
    }
}

#[tokio::test]
async fn smtp_rejects_an_invalid_from_at_startup() {
    let res = Smtp::new(SmtpOptions {
        host: "127.0.0.1".to_owned(),
        port: 25,
        from: "Seams Shop".to_owned(),
        timeout: Duration::from_secs(1),
        tls: SmtpTls::None,
        ca_file: None,
    });

    assert!(matches!(res, Err(smtp::OptionsError::InvalidFrom { .. })));
}

/// Options for `server`, secured as `tls` says, trusting `ca`.
fn tls_options(server: &SmtpServer, tls: SmtpTls, ca: &TestCa) -> SmtpOptions {
    SmtpOptions {
        host: server.host().to_owned(),
        port: server.port(),
        from: FROM.to_owned(),
        timeout: Duration::from_secs(10),
        tls,
        ca_file: Some(ca.ca_file()),
    }
}

#[tokio::test]
async fn smtp_delivers_over_starttls_and_implicit_tls_trusting_the_ca() {
    let ca = TestCa::new().unwrap();
    for (server_tls, tls) in [
        (ServerTls::StartTls(&ca), SmtpTls::StartTls),
        (ServerTls::Implicit(&ca), SmtpTls::Implicit),
    ] {
        let Some(server) = SmtpServer::start_with_or_skip(server_tls) else {
            return;
        };
        let smtp = Smtp::new(tls_options(&server, tls, &ca)).unwrap();

        smtp.deliver(&message("d-1")).await.unwrap();

        let messages = server.messages();
        assert_eq!(messages.len(), 1, "{tls:?}");
        check_rendered(&messages[0], "d-1");
    }
}

#[tokio::test]
async fn smtp_trusting_another_ca_sends_nothing_and_is_transient() {
    let ca = TestCa::new().unwrap();
    let other = TestCa::new().unwrap();
    for (server_tls, tls) in [
        (ServerTls::StartTls(&ca), SmtpTls::StartTls),
        (ServerTls::Implicit(&ca), SmtpTls::Implicit),
    ] {
        let Some(server) = SmtpServer::start_with_or_skip(server_tls) else {
            return;
        };
        let smtp = Smtp::new(tls_options(&server, tls, &other)).unwrap();

        let err = smtp.deliver(&message("d-1")).await.unwrap_err();

        assert!(
            matches!(err, DeliveryError::Transient(_)),
            "{tls:?}: {err:?}"
        );
        assert!(err.to_string().contains("UnknownIssuer"), "{tls:?}: {err}");
        assert!(server.messages().is_empty());
    }
}

#[tokio::test]
async fn a_server_requiring_starttls_refuses_a_client_without_tls() {
    let ca = TestCa::new().unwrap();
    let Some(server) = SmtpServer::start_with_or_skip(ServerTls::StartTls(&ca)) else {
        return;
    };
    let smtp = Smtp::new(SmtpOptions {
        ca_file: None,
        ..tls_options(&server, SmtpTls::None, &ca)
    })
    .unwrap();

    let err = smtp.deliver(&message("d-1")).await.unwrap_err();

    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(server.messages().is_empty());
}

#[test]
fn smtp_refuses_a_ca_file_it_cannot_use_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    fs::write(&empty, "").unwrap();
    let options = |tls, ca_file| SmtpOptions {
        host: "127.0.0.1".to_owned(),
        port: 25,
        from: FROM.to_owned(),
        timeout: Duration::from_secs(1),
        tls,
        ca_file: Some(ca_file),
    };
    let ca = TestCa::new().unwrap();

    let without_tls = Smtp::new(options(SmtpTls::None, ca.ca_file()));
    assert!(matches!(
        without_tls,
        Err(smtp::OptionsError::CaWithoutTls(_))
    ));
    let no_certificate = Smtp::new(options(SmtpTls::StartTls, empty));
    assert!(matches!(
        no_certificate,
        Err(smtp::OptionsError::NoCertificate(_))
    ));
    let missing = Smtp::new(options(SmtpTls::Implicit, dir.path().join("missing.pem")));
    assert!(matches!(missing, Err(smtp::OptionsError::CaFile { .. })));
}

/// A one-connection SMTP server that accepts everything but answers `RCPT`
/// with `rcpt_reply`: aiosmtpd's Mailbox handler never refuses a recipient.
async fn scripted_server(rcpt_reply: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 scripted ESMTP\r\n").await.unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" | "HELO" | "MAIL" | "RSET" | "NOOP" => "250 ok",
                "RCPT" => rcpt_reply,
                "QUIT" => "221 bye",
                _ => "502 not implemented",
            };
            if write
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .is_err()
                || verb == "QUIT"
            {
                break;
            }
        }
    });
    port
}

#[test]
fn a_maildir_file_has_lf_where_the_wire_has_crlf_and_nothing_else_changes() {
    let local = |wire: &[u8]| maildir::to_local_line_endings(wire);
    assert_eq!(local(b""), b"");
    assert_eq!(local(b"no line end"), b"no line end");
    assert_eq!(local(b"a\r\nb\r\n"), b"a\nb\n");
    assert_eq!(local(b"\r\n\r\n"), b"\n\n");
    // A CR alone, a LF alone and a CR before a CRLF stay as they are.
    assert_eq!(local(b"a\rb\nc\r"), b"a\rb\nc\r");
    assert_eq!(local(b"a\r\r\nb"), b"a\r\nb");
    assert_eq!(local("é\r\nü".as_bytes()), "é\nü".as_bytes());
}
