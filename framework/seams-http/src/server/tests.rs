//! The edge's limits against real sockets on loopback: silent and slow
//! clients, too many connections, too many requests, slow handlers, and a
//! shutdown a client would hold up.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::*;

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: Limits) -> Running {
    let app = Router::new()
        .route("/fast", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
    let app = limited(app, &limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, app, limits, None, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        done,
    }
}

/// Sends `request` raw and reads the answer until the server closes.
async fn raw(addr: SocketAddr, request: String) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

fn get_req(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
}

/// Whether the server closes `s` within `within` (reads end of file or an error).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_closed_after_the_header_timeout() {
    let r = start(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut silent = TcpStream::connect(r.addr).await.unwrap();
    let mut half = TcpStream::connect(r.addr).await.unwrap();
    half.write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(closed_within(&mut half, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    // A kept-alive connection idle after its answer is closed the same way.
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    idle.write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await);
    // Meanwhile everyone else is served.
    assert!(
        raw(r.addr, get_req("/fast"))
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_one() {
    let r = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let a = TcpStream::connect(r.addr).await.unwrap();
    let _b = TcpStream::connect(r.addr).await.unwrap();
    // Give the server time to take both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(raw(r.addr, get_req("/fast")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "served past the cap");
    drop(a);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn requests_over_the_limit_are_shed_and_slow_ones_time_out() {
    let r = start(Limits {
        max_in_flight: 1,
        request_timeout: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let slow = tokio::spawn(raw(r.addr, get_req("/slow")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let shed = raw(r.addr, get_req("/fast")).await;
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(shed.contains("urn:seams:problem:overloaded"), "{shed}");
    assert!(
        shed.to_ascii_lowercase().contains("retry-after: 1"),
        "{shed}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "shed at once, not queued"
    );
    let timed_out = slow.await.unwrap();
    assert!(timed_out.starts_with("HTTP/1.1 503"), "{timed_out}");
    assert!(
        timed_out.contains("urn:seams:problem:request-timeout"),
        "{timed_out}"
    );
    // Room again: the next one goes through.
    assert!(
        raw(r.addr, get_req("/fast"))
            .await
            .starts_with("HTTP/1.1 200")
    );
}

#[tokio::test]
async fn handlers_see_the_peer_s_address() {
    let r = start(Limits::default()).await;
    let answer = raw(r.addr, get_req("/peer")).await;
    assert!(answer.ends_with("127.0.0.1"), "{answer}");
}

#[tokio::test]
async fn a_slow_client_holds_shutdown_only_until_the_drain_deadline() {
    let mut r = start(Limits {
        drain_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let slow = tokio::spawn(raw(r.addr, get_req("/slow")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    r.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut r.done)
        .await
        .expect("serve returns after the drain deadline")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The slow request's connection was closed, not answered.
    let answer = slow.await.unwrap();
    assert!(answer.is_empty(), "{answer}");
    // And nothing is accepted any more.
    assert!(TcpStream::connect(r.addr).await.is_err());
}

#[tokio::test]
async fn a_quick_request_in_flight_is_finished_before_shutdown_returns() {
    let app = Router::new().route(
        "/brief",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(serve(listener, app, Limits::default(), None, async move {
        let _ = stopped.await;
    }));
    let brief = tokio::spawn(raw(addr, get_req("/brief")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    done.await.unwrap().unwrap();
    let answer = brief.await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
        "{answer}"
    );
}

#[test]
fn the_connection_cap_leaves_room_in_the_descriptor_limit() {
    assert_eq!(Limits::for_fd_limit(1024, 256).max_connections, 768);
    assert_eq!(Limits::for_fd_limit(1 << 20, 256).max_connections, 10_000);
    assert_eq!(Limits::for_fd_limit(100, 256).max_connections, 64);
}

/// Reads one whole answer to a `/fast` request (its body is `ok`).
async fn read_answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while !out.ends_with(b"\r\n\r\nok") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn in_its_lame_duck_a_stopping_server_answers_open_connections_telling_them_to_close() {
    let mut r = start(Limits {
        lame_duck: Duration::from_millis(400),
        ..Limits::default()
    })
    .await;
    let keep_alive = "GET /fast HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut busy = TcpStream::connect(r.addr).await.unwrap();
    busy.write_all(keep_alive.as_bytes()).await.unwrap();
    let before = read_answer(&mut busy).await;
    assert!(
        !before.to_ascii_lowercase().contains("connection: close"),
        "{before}"
    );
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    idle.write_all(keep_alive.as_bytes()).await.unwrap();
    read_answer(&mut idle).await;

    let started = Instant::now();
    r.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Nothing new is accepted, but a kept-alive connection is still served,
    // and told to close once answered.
    busy.write_all(keep_alive.as_bytes()).await.unwrap();
    let during = read_answer(&mut busy).await;
    assert!(during.starts_with("HTTP/1.1 200"), "{during}");
    assert!(
        during.to_ascii_lowercase().contains("connection: close"),
        "{during}"
    );
    assert!(closed_within(&mut busy, Duration::from_secs(2)).await);
    // A connection that stayed idle is closed once the lame duck is over.
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await);
    tokio::time::timeout(Duration::from_secs(5), &mut r.done)
        .await
        .expect("serve returns")
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the lame duck lasted {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_a_lame_duck_idle_connections_close_at_once() {
    let mut r = start(Limits::default()).await;
    let mut idle = TcpStream::connect(r.addr).await.unwrap();
    idle.write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    read_answer(&mut idle).await;
    r.stop.take().unwrap().send(()).unwrap();
    assert!(closed_within(&mut idle, Duration::from_millis(300)).await);
    (&mut r.done).await.unwrap().unwrap();
}
