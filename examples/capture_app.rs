//! A tiny axum app wired with the capture layer: every request it serves becomes an API reading on
//! a timebucket collector.
//!
//! ```text
//! cargo run --example capture_app -- --push http://127.0.0.1:8080 --listen 127.0.0.1:3000
//! curl localhost:3000/users/42; curl -X POST localhost:3000/orders; curl localhost:3000/nope/7
//! ```
//!
//! The layer is added with `Router::layer`, so it sees each route's template: `/users/42` and
//! `/users/7` are both recorded as `/users/{id}`. Ctrl-C stops the app and pushes what is left.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde_json::{json, Value};
use timebucket::capture::{Capture, CaptureConfig, Mode};

/// Flags of the example app.
#[derive(Debug, Parser)]
struct Args {
    /// Where the app listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The timebucket collector (`timebucket serve`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    push: String,
    /// The service name of the readings.
    #[arg(long, default_value = "demo-app")]
    service: String,
    /// The instance name of the readings (default: the listen address).
    #[arg(long)]
    instance: Option<String>,
    /// How often readings are pushed (and aggregated over).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Send one reading per request instead of per-interval summaries.
    #[arg(long)]
    raw: bool,
}

async fn user(Path(id): Path<u64>) -> Result<Json<Value>, StatusCode> {
    if id > 1000 {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(json!({"id": id, "name": format!("user {id}")})))
}

async fn create_order() -> (StatusCode, Json<Value>) {
    tokio::time::sleep(Duration::from_millis(3)).await;
    (
        StatusCode::CREATED,
        Json(json!({"order": uuid::Uuid::new_v4()})),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let instance = args.instance.unwrap_or_else(|| args.listen.to_string());
    let mut config = CaptureConfig::new(&args.service, &instance, &args.push)?;
    config.interval = args.interval;
    if args.raw {
        config.mode = Mode::Raw;
    }
    let capture = Capture::start(config)?;

    let app = Router::new()
        .route("/users/{id}", get(user))
        .route("/orders", post(create_order))
        .route("/healthz", get(|| async { "ok" }))
        .layer(capture.layer());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(listen = %args.listen, push = %args.push, service = %args.service, %instance, "capture_app up");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;

    let stats = capture.shutdown(Duration::from_secs(5)).await;
    tracing::info!(?stats, "capture_app stopped");
    Ok(())
}
