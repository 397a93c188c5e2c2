//! The planner agent and its in-process writer. For each request the planner plans (one LLM
//! call), delegates research to the researcher process over HTTP (the trace continues there
//! through W3C headers), then hands the notes to the writer agent on another task.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::researcher::{Answer, Question, RESEARCH_PATH, SHUTDOWN_PATH};
use crate::sim::{self, Books, Settings, Tally};
use crate::{PLANNER_SERVICE, RESEARCHER_SERVICE};

pub const PLANNER_MODEL: &str = "llama-3.1-8b-instruct";
pub const WRITER_MODEL: &str = "llama-3.1-70b-instruct";
const QUESTIONS: [&str; 4] = [
    "How much GPU memory does a 70B model need in fp8?",
    "Compare vLLM and TGI batching",
    "Summarise this week's incidents",
    "Draft the release notes",
];

/// What the demo sent, for comparison with what the collector counted.
#[derive(Debug, Serialize)]
pub struct Report {
    pub requests: u64,
    pub elapsed_secs: f64,
    pub services: BTreeMap<String, Tally>,
    pub total: Tally,
}

pub struct Run {
    pub rate_per_sec: f64,
    pub duration: Duration,
    pub settings: Settings,
    pub seed: u64,
    /// Where the researcher process exports its spans.
    pub endpoint: Option<String>,
}

impl Run {
    pub async fn run(self) -> anyhow::Result<Report> {
        let started = Instant::now();
        let books = Arc::new(Books::default());
        load_model(self.settings).await;

        let (mut researcher, address) = self.spawn_researcher().await?;
        let client = reqwest::Client::new();
        let research_url = format!("http://{address}{RESEARCH_PATH}");

        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate_per_sec.max(0.01)));
        let mut requests = Vec::new();
        let deadline = Instant::now() + self.duration;
        let mut id = 0u64;
        while Instant::now() < deadline {
            ticks.tick().await;
            let request = Request {
                id,
                rng: StdRng::seed_from_u64(self.seed.wrapping_add(id)),
                settings: self.settings,
                books: books.clone(),
                client: client.clone(),
                research_url: research_url.clone(),
            };
            requests.push(tokio::spawn(request.handle()));
            id += 1;
        }
        for request in requests {
            request.await.context("request task")?;
        }

        let researcher_tally: Tally = client
            .post(format!("http://{address}{SHUTDOWN_PATH}"))
            .send()
            .await
            .context("stop the researcher")?
            .json()
            .await
            .context("researcher tally")?;
        let exit = tokio::time::timeout(Duration::from_secs(30), researcher.wait()).await;
        if !matches!(exit, Ok(Ok(status)) if status.success()) {
            tracing::warn!(?exit, "researcher did not exit cleanly");
        }

        let mut services = BTreeMap::new();
        services.insert(PLANNER_SERVICE.to_owned(), books.snapshot());
        services.insert(RESEARCHER_SERVICE.to_owned(), researcher_tally);
        let mut total = Tally::default();
        services.values().for_each(|tally| total.merge(tally));
        Ok(Report { requests: id, elapsed_secs: started.elapsed().as_secs_f64(), services, total })
    }

    /// Starts this binary again as the researcher service and reads back its address.
    async fn spawn_researcher(&self) -> anyhow::Result<(tokio::process::Child, String)> {
        let mut command =
            tokio::process::Command::new(std::env::current_exe().context("locate the demo binary")?);
        command
            .args(["researcher", "--listen", "127.0.0.1:0"])
            .args(["--failure-rate", &self.settings.failure_rate.to_string()])
            .args(["--latency-scale", &self.settings.latency_scale.to_string()])
            .args(["--seed", &self.seed.to_string()])
            .stdout(Stdio::piped())
            // The researcher stops when this pipe closes, that is when this process ends.
            .stdin(Stdio::piped())
            .kill_on_drop(true);
        if let Some(endpoint) = &self.endpoint {
            command.args(["--endpoint", endpoint]);
        }
        let mut child = command.spawn().context("start the researcher process")?;
        let stdout = child.stdout.take().context("researcher stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("researcher did not start within 30 s")??
            .context("researcher exited before listening")?;
        let address = first.strip_prefix("listening ").context("unexpected researcher output")?.to_owned();
        Ok((child, address))
    }
}

/// One simulated model load, as an inference server does at start.
async fn load_model(settings: Settings) {
    let load = agentrace::model_load(PLANNER_MODEL).provider(sim::PROVIDER);
    load.instrument(settings.pause(Duration::from_millis(1500))).await;
}

struct Request {
    id: u64,
    rng: StdRng,
    settings: Settings,
    books: Arc<Books>,
    client: reqwest::Client,
    research_url: String,
}

impl Request {
    async fn handle(mut self) {
        // Three requests in a row make one conversation.
        let planner = agentrace::agent("planner").conversation_id(&format!("conv-{}", self.id / 3));
        let ok = planner.instrument(self.plan_delegate_write()).await;
        if !ok {
            planner.fail(agentrace::ErrorKind::Other, "request not completed");
        }
    }

    async fn plan_delegate_write(&mut self) -> bool {
        let plan = agentrace::step("plan");
        if !plan.instrument(sim::chat(PLANNER_MODEL, &mut self.rng, self.settings, &self.books)).await {
            return false;
        }
        drop(plan);

        let delegate = agentrace::step("delegate");
        let researched = delegate.instrument(self.ask_researcher()).await;
        if !researched {
            delegate.fail(agentrace::ErrorKind::Other, "research failed");
        }
        drop(delegate);

        let writer = agentrace::agent("writer");
        let mut rng = StdRng::seed_from_u64(self.id.wrapping_mul(31));
        let (settings, books) = (self.settings, self.books.clone());
        let written = tokio::spawn(writer.instrument(async move {
            let draft = agentrace::step("draft");
            draft.instrument(sim::chat(WRITER_MODEL, &mut rng, settings, &books)).await
        }));
        written.await.unwrap_or(false) && researched
    }

    async fn ask_researcher(&self) -> bool {
        let mut headers = http::HeaderMap::new();
        agentrace::inject(&mut headers);
        let question = Question { id: self.id, text: QUESTIONS[(self.id % 4) as usize].to_owned() };
        let response = self.client.post(&self.research_url).headers(headers).json(&question).send().await;
        match response {
            Ok(response) => response.json::<Answer>().await.is_ok_and(|answer| answer.ok),
            Err(error) => {
                tracing::warn!(%error, "researcher call failed");
                false
            }
        }
    }
}
