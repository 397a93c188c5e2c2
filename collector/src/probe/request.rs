//! One probe: a Chat Completions request to a target, streamed when the target says so, timed
//! to its first token and its end, inside an LLM-call span of the agentrace SDK. The span goes
//! through the collector's own pipeline like any other; the outcome also sets the probe gauges.

use std::time::{Duration, Instant};

use agentrace_semconv::ErrorType;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::config::Target;

/// The most of an error answer read to classify it.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub type Client = crate::export::otlp::HttpClient;

/// A client for http:// and https:// targets (the system's roots).
pub fn client() -> anyhow::Result<Client> {
    Ok(crate::export::otlp::system_http_client()?)
}

/// What one probe found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub first_token: Option<Duration>,
    pub total: Duration,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// The error type (by the same normaliser as spans) and what was seen.
    pub error: Option<(ErrorType, String)>,
}

impl Outcome {
    /// Output tokens per second after the first token (the decode rate).
    pub fn tokens_per_second(&self) -> Option<f64> {
        let decoding = self.total.checked_sub(self.first_token?)?.as_secs_f64();
        let tokens = self.output_tokens? as f64;
        (decoding > 0.0 && tokens > 1.0).then(|| (tokens - 1.0) / decoding)
    }
}

fn body(target: &Target) -> Value {
    let mut body = json!({
        "model": target.model,
        "messages": [{"role": "user", "content": target.prompt}],
        "max_tokens": target.max_tokens,
        "stream": target.stream,
    });
    if target.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// Runs one probe of `target` within its timeout, inside an SDK span.
pub async fn probe(client: &Client, target: &Target) -> Outcome {
    let call = agentrace::chat(&target.model)
        .provider(&target.provider)
        .max_tokens(target.max_tokens)
        .streaming(target.stream)
        .attribute(opentelemetry::KeyValue::new("agentrace.probe.target", target.name.clone()))
        .start();
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let result =
        tokio::time::timeout(target.timeout, exchange(client, target, &call, started, &mut outcome)).await;
    outcome.total = started.elapsed();
    let error = match result {
        Err(_) => Some((ErrorType::Timeout, format!("no answer within {:?}", target.timeout))),
        Ok(Err((kind, message))) => Some((kind, message)),
        Ok(Ok(())) => None,
    };
    if let (Some(input), Some(output)) = (outcome.input_tokens, outcome.output_tokens) {
        call.record_usage(input, output);
    }
    if let Some((kind, message)) = &error {
        call.fail(*kind, message);
    }
    outcome.error = error;
    outcome
}

type Failure = (ErrorType, String);

/// Sends the request and reads the answer into `outcome`.
async fn exchange(
    client: &Client,
    target: &Target,
    call: &agentrace::LlmCall,
    started: Instant,
    outcome: &mut Outcome,
) -> Result<(), Failure> {
    let key = target.api_key().map_err(|reason| (ErrorType::InvalidRequest, reason))?;
    let mut request = http::Request::post(format!("{}/chat/completions", target.url))
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body(target).to_string())))
        .map_err(|error| (ErrorType::InvalidRequest, error.to_string()))?;
    let response = client.request(request).await.map_err(|error| {
        let text = format!("{error:?}");
        (ErrorType::classify(&text).unwrap_or(ErrorType::Unavailable), error.to_string())
    })?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let mut text = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                text.extend_from_slice(
                    &data[..data.len().min(MAX_ERROR_BODY - text.len().min(MAX_ERROR_BODY))],
                );
            }
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        let code = status.as_u16().to_string();
        let kind = ErrorType::classify_all([code.as_str(), text.as_str()]).unwrap_or(ErrorType::Other);
        return Err((kind, format!("HTTP {code}: {}", text.chars().take(200).collect::<String>())));
    }
    let mut reader = Answer { stream: target.stream, ..Answer::default() };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| (ErrorType::Unavailable, error.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if reader.read(&data) && outcome.first_token.is_none() {
            outcome.first_token = Some(started.elapsed());
            call.first_token();
        }
    }
    reader.finish();
    if !target.stream && reader.content_chunks > 0 {
        outcome.first_token = Some(started.elapsed());
    }
    outcome.input_tokens = reader.input_tokens;
    outcome.output_tokens =
        reader.output_tokens.or((reader.content_chunks > 0).then_some(reader.content_chunks));
    match reader.error {
        Some(message) => Err((ErrorType::classify(&message).unwrap_or(ErrorType::Other), message)),
        None if reader.content_chunks == 0 => {
            Err((ErrorType::Other, "the answer held no content".to_owned()))
        }
        None => Ok(()),
    }
}

/// Reads an answer as it arrives: server-sent events when streamed, one JSON document when not.
#[derive(Debug, Default)]
struct Answer {
    stream: bool,
    pending: Vec<u8>,
    content_chunks: u64,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    error: Option<String>,
}

impl Answer {
    /// Takes a piece of the body; true once content has arrived.
    fn read(&mut self, data: &[u8]) -> bool {
        self.pending.extend_from_slice(data);
        if !self.stream {
            return false;
        }
        while let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(event) = line.trim().strip_prefix("data:") else { continue };
            let event = event.trim();
            if event == "[DONE]" {
                continue;
            }
            if let Ok(document) = serde_json::from_str::<Value>(event) {
                self.document(&document);
            }
        }
        self.content_chunks > 0
    }

    fn finish(&mut self) {
        if self.stream {
            return;
        }
        match serde_json::from_slice::<Value>(&self.pending) {
            Ok(document) => self.document(&document),
            Err(error) => self.error = Some(format!("the answer is not JSON: {error}")),
        }
    }

    /// One chunk (streamed) or the whole answer: content, usage, or an error object.
    fn document(&mut self, document: &Value) {
        if let Some(error) = document.get("error") {
            self.error = Some(
                error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned),
            );
        }
        let choice = &document["choices"][0];
        let content = choice["delta"]["content"].as_str().or_else(|| choice["message"]["content"].as_str());
        if content.is_some_and(|content| !content.is_empty()) {
            self.content_chunks += 1;
        }
        if let Some(usage) = document.get("usage").filter(|usage| usage.is_object()) {
            self.input_tokens = usage["prompt_tokens"].as_u64().or(self.input_tokens);
            self.output_tokens = usage["completion_tokens"].as_u64().or(self.output_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_chunks_count_content_and_read_usage_across_frame_boundaries() {
        let mut answer = Answer { stream: true, ..Answer::default() };
        assert!(!answer.read(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n"));
        assert!(!answer.read(b"data: {\"choices\":[{\"delta\":{\"cont"));
        assert!(answer.read(b"ent\":\"O\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"K\"}}]}\n\n"));
        answer.read(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        answer.finish();
        assert_eq!(
            (answer.content_chunks, answer.input_tokens, answer.output_tokens),
            (2, Some(12), Some(2))
        );
        assert!(answer.error.is_none());
    }

    #[test]
    fn a_whole_answer_and_an_error_in_the_stream_are_read() {
        let mut whole = Answer::default();
        whole.read(br#"{"choices":[{"message":{"content":"OK"}}],"usage":{"prompt_tokens":9,"completion_tokens":1}}"#);
        whole.finish();
        assert_eq!((whole.content_chunks, whole.output_tokens), (1, Some(1)));
        let mut failed = Answer { stream: true, ..Answer::default() };
        failed.read(
            b"data: {\"error\":{\"message\":\"This model's maximum context length is 4096 tokens\"}}\n\n",
        );
        assert_eq!(
            ErrorType::classify(failed.error.as_deref().expect("an error")),
            Some(ErrorType::ContextLengthExceeded)
        );
    }

    #[test]
    fn the_decode_rate_counts_the_tokens_after_the_first() {
        let outcome = Outcome {
            first_token: Some(Duration::from_millis(200)),
            total: Duration::from_millis(1200),
            output_tokens: Some(51),
            ..Outcome::default()
        };
        assert_eq!(outcome.tokens_per_second(), Some(50.0));
    }
}
