//! The researcher agent, a separate process: an HTTP service that continues the caller's
//! trace from the request headers, searches the web, calculates and summarises.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::sim::{self, Books, Settings, Tally};

pub const RESEARCH_PATH: &str = "/research";
pub const SHUTDOWN_PATH: &str = "/shutdown";
pub const MODEL: &str = "qwen2.5-7b-instruct";

#[derive(Debug, Serialize, Deserialize)]
pub struct Question {
    pub id: u64,
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
}

#[derive(Clone)]
struct Researcher {
    settings: Settings,
    seed: u64,
    books: Arc<Books>,
    stop: Arc<Notify>,
}

/// Serves until `POST /shutdown`, which answers with everything this process sent, or until
/// its standard input closes: the planner holds the other end, so a planner that dies (even
/// by SIGKILL) takes the researcher with it.
pub async fn serve(listen: SocketAddr, settings: Settings, seed: u64) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    // The parent reads this line to find the port.
    println!("listening {}", listener.local_addr()?);
    let state =
        Researcher { settings, seed, books: Arc::new(Books::default()), stop: Arc::new(Notify::new()) };
    let stop = state.stop.clone();
    let orphaned = state.stop.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink).await;
        orphaned.notify_one();
    });
    let app = Router::new()
        .route(RESEARCH_PATH, post(research))
        .route(SHUTDOWN_PATH, post(shutdown))
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(async move { stop.notified().await }).await?;
    Ok(())
}

async fn research(
    State(state): State<Researcher>,
    headers: HeaderMap,
    Json(question): Json<Question>,
) -> Json<Answer> {
    let mut rng = StdRng::seed_from_u64(state.seed ^ question.id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let researcher = agentrace::agent("researcher").continue_from(&headers);
    let settings = state.settings;
    let books = &state.books;
    let ok = researcher
        .instrument(async {
            tracing::debug!(question = %question.text, "researching");
            // One question in twenty sends the researcher round in circles: the same search
            // six times over, a loop the collector reports.
            let searches = if rng.random_bool(0.05) { 6 } else { 1 };
            for _ in 0..searches {
                sim::tool("web_search", Duration::from_millis(60), &mut rng, settings, books).await;
            }
            sim::tool("calculator", Duration::from_millis(2), &mut rng, settings, books).await;
            sim::chat(MODEL, &mut rng, settings, books).await
        })
        .await;
    if !ok {
        researcher.fail(agentrace::ErrorKind::Other, "summary failed");
    }
    Json(Answer { ok })
}

async fn shutdown(State(state): State<Researcher>) -> Json<Tally> {
    state.stop.notify_one();
    Json(state.books.snapshot())
}
