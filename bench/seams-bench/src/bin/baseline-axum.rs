//! The HTTP ceiling of this machine: a bare axum 0.8 server with one JSON GET
//! endpoint and nothing else (no middleware, no state).
//!
//! `GET /json` answers `{"status":"ok"}`, the same body as Seams' `/healthz`,
//! so the `bare` and `trivial` load-generator scenarios differ only by Seams'
//! HTTP stack (routing tree, body limit, panic catching, correlation and
//! tracing). It runs on the same multi-threaded tokio runtime as `shop`, and
//! prints the line `baseline-axum listening on http://ADDR` once bound (port
//! 0 picks a free port), then serves until SIGINT or SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context, ensure};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use serde_json::json;

/// Bare axum JSON endpoint, the HTTP baseline.
#[derive(Debug, Parser)]
#[command(name = "baseline-axum")]
struct Args {
    /// Loopback address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.addr.ip().is_loopback(),
        "the baseline listens on loopback only, not {}",
        args.addr
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args.addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new().route("/json", get(|| async { Json(json!({ "status": "ok" })) }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    // Scripts read this line to learn the port.
    println!(
        "baseline-axum listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
