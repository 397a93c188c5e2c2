//! Enrich: the span as it leaves the collector. What derive learned about a span is added to
//! it (`agentrace.cost.usd` on LLM calls, `agentrace.gpu.*` on LLM and model-load spans), so
//! Tempo shows it; and what must not leave is taken away: message content unless
//! `--keep-content` (the content keys of every dialect, and an LLM call's error texts, which
//! often quote the prompt), the attributes listed in `--redact-attributes`, and those in
//! `--hash-attributes` replaced by `hmac-sha256:<hex>` of their value under a secret key, so
//! equal values (a user id, a session id) still group in Tempo without being readable or
//! guessable from a dictionary of likely values. Keys ending in `.` match as prefixes.
//! Redaction applies to resource, span, event and link attributes, and inside map values
//! (by the nested key and by its dotted path).
//!
//! The result is the request's forwarding view (`wire::raw`): a span that nothing changed goes
//! out as the bytes it arrived in, fields this version of OTLP does not know included; a span
//! that redaction changed is re-encoded; added attributes are appended to the span's bytes (a
//! repeated field may come in several runs, and decoders join them in order). Next stop: the
//! export queue.

use agentrace_semconv::attr;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use prost::Message;
use sha2::Sha256;

use self::keys::Keys;
use crate::args::{self, ArgError};
use crate::derive::SpanFacts;
use crate::wire::{
    self, any_value, raw, AnyValue, ExportTraceServiceRequest, KeyValue, Received, SpanPos, Text,
};

#[derive(Clone, Debug, Default, clap::Args)]
#[command(next_help_heading = "Forwarded spans")]
#[group(id = "forwarded_spans")]
pub struct Args {
    /// Forward prompt and completion content (`gen_ai.input.messages` and the like). By
    /// default it is dropped before spans leave the collector.
    #[arg(long, env = "AGENTRACE_KEEP_CONTENT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub keep_content: Option<bool>,

    /// Attribute keys to drop from forwarded spans (comma-separated; `prefix.` matches a prefix).
    #[arg(long, env = "AGENTRACE_REDACT_ATTRIBUTES", value_delimiter = ',', value_name = "KEYS")]
    pub redact_attributes: Option<Vec<String>>,

    /// Attribute keys whose values are replaced by their HMAC-SHA-256 in forwarded spans.
    #[arg(long, env = "AGENTRACE_HASH_ATTRIBUTES", value_delimiter = ',', value_name = "KEYS")]
    pub hash_attributes: Option<Vec<String>>,

    /// File holding the secret key of --hash-attributes. Unset: a random key, kept in
    /// --queue-dir when there is one (so hashes stay equal across restarts), else new at each
    /// start.
    #[arg(long, env = "AGENTRACE_HASH_KEY_FILE", value_name = "PATH")]
    pub hash_key_file: Option<std::path::PathBuf>,
}

/// Where a random hash key is kept, in the persistent queue's directory.
const HASH_KEY_FILE: &str = "hash.key";

impl Args {
    /// `key_dir`: where a random hash key is kept between starts (the persistent queue's).
    pub fn validate(self, key_dir: Option<&std::path::Path>) -> Result<Enricher, ArgError> {
        let hashed = args::list(self.hash_attributes);
        let hash_key = match (&self.hash_key_file, key_dir) {
            _ if hashed.is_empty() => Vec::new(),
            (Some(path), _) => args::read_secret("hash-key-file", path)?.as_bytes().to_vec(),
            (None, Some(dir)) => kept_key(dir)?,
            (None, None) => rand::random::<[u8; 32]>().to_vec(),
        };
        let mut enricher =
            Enricher::new(self.keep_content.unwrap_or(false), args::list(self.redact_attributes), hashed);
        enricher.hash_key = hash_key.into();
        Ok(enricher)
    }
}

/// The random key kept in `dir`, made (readable by the owner only) the first time.
fn kept_key(dir: &std::path::Path) -> Result<Vec<u8>, ArgError> {
    let path = dir.join(HASH_KEY_FILE);
    if let Ok(key) = std::fs::read(&path) {
        return Ok(key);
    }
    let key = hex::encode(rand::random::<[u8; 32]>()).into_bytes();
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path)?.write_all(&key)
    });
    written.map_err(|source| ArgError::Read { path, source })?;
    Ok(key)
}

#[derive(Clone, Debug, Default)]
pub struct Enricher {
    dropped: Keys,
    hashed: Keys,
    /// The secret key of hashed values.
    hash_key: std::sync::Arc<[u8]>,
    /// Without `--keep-content`: an LLM call's error texts (status message, exception message)
    /// are dropped too (except on the node tier, whose gateway reads them to type the error).
    drop_error_texts: bool,
    keep_content: bool,
}

impl Enricher {
    pub fn new(keep_content: bool, dropped: Vec<String>, hashed: Vec<String>) -> Self {
        let mut all_dropped: Vec<String> = dropped;
        if !keep_content {
            all_dropped.extend(attr::CONTENT_KEYS.iter().map(|key| (*key).to_owned()));
        }
        Self {
            dropped: Keys::new(all_dropped),
            hashed: Keys::new(hashed),
            hash_key: std::sync::Arc::from(Vec::new()),
            drop_error_texts: !keep_content,
            keep_content,
        }
    }

    /// The same, forwarding error texts: what the node tier sends its gateway, which types the
    /// error from them and then drops them itself.
    pub fn keeping_error_texts(self) -> Self {
        Self { drop_error_texts: false, ..self }
    }

    /// Whether an attribute is removed (or hashed) in what is forwarded; forwarded logs drop
    /// what spans would hash.
    pub fn redacts(&self, key: &[u8]) -> bool {
        self.dropped.matches(key) || self.hashed.matches(key)
    }

    /// Whether prompt and completion content is forwarded (`--keep-content`).
    pub fn keeps_content(&self) -> bool {
        self.keep_content
    }

    /// The request as it is forwarded: redacted, with `facts` added to their spans. `request`
    /// must still be what `encoded` holds; it is redacted in place.
    pub fn outgoing(
        &self,
        request: &mut ExportTraceServiceRequest,
        received: Received,
        facts: &[SpanFacts],
    ) -> raw::ExportTraceServiceRequest {
        let mut changed = self.redact_request(request);
        if self.drop_error_texts {
            changed.extend(
                facts
                    .iter()
                    .filter(|facts| facts.llm)
                    .filter_map(|facts| drop_error_texts(request, facts.pos)),
            );
            changed.sort_unstable();
            changed.dedup();
        }
        let added = self.additions(request, facts);
        forwarding_view(request, received, &changed, added)
    }

    fn is_noop(&self) -> bool {
        self.dropped.is_empty() && self.hashed.is_empty()
    }

    /// Redacts every attribute list of the request in place. Returns the positions of the spans
    /// it changed.
    fn redact_request(&self, request: &mut ExportTraceServiceRequest) -> Vec<SpanPos> {
        if self.is_noop() {
            return Vec::new();
        }
        for resource in
            request.resource_spans.iter_mut().filter_map(|resource_spans| resource_spans.resource.as_mut())
        {
            self.redact(&mut resource.attributes);
        }
        let mut changed = Vec::new();
        for (pos, span) in request.spans_mut() {
            let mut redacted = self.redact(&mut span.attributes);
            for event in &mut span.events {
                redacted |= self.redact(&mut event.attributes);
            }
            for link in &mut span.links {
                redacted |= self.redact(&mut link.attributes);
            }
            if redacted {
                changed.push(pos);
            }
        }
        changed
    }

    /// Applies the rules to one attribute list; returns whether anything was dropped or hashed.
    fn redact(&self, attributes: &mut Vec<KeyValue>) -> bool {
        self.redact_in(attributes, None)
    }

    /// Applies the rules to an attribute list, nested under `parent` (a map value's dotted
    /// path): a nested key matches by itself and by its path.
    fn redact_in(&self, attributes: &mut Vec<KeyValue>, parent: Option<&[u8]>) -> bool {
        let path = |key: &[u8]| parent.map(|parent| [parent, b".", key].concat());
        let listed =
            |keys: &Keys, key: &[u8]| keys.matches(key) || path(key).is_some_and(|path| keys.matches(&path));
        let before = attributes.len();
        if !self.dropped.is_empty() {
            attributes.retain(|kv| !listed(&self.dropped, &kv.key));
        }
        let mut redacted = attributes.len() != before;
        for kv in attributes.iter_mut() {
            if !self.hashed.is_empty() && listed(&self.hashed, &kv.key) {
                redacted = true;
                let hashed = self.hash(&canonical_text(kv.value.as_ref()));
                kv.value = Some(AnyValue { value: Some(any_value::Value::StringValue(hashed.into())) });
                continue;
            }
            // Only maps and arrays have keys inside; the path is built for them alone.
            let Some(value) = kv.value.as_mut().filter(|value| has_keys_inside(value)) else { continue };
            let nested = path(&kv.key).unwrap_or_else(|| kv.key.to_vec());
            redacted |= self.redact_value(value, &nested);
        }
        redacted
    }

    /// Redacts inside a map value, or the maps of an array value.
    fn redact_value(&self, value: &mut AnyValue, path: &[u8]) -> bool {
        match &mut value.value {
            Some(any_value::Value::KvlistValue(map)) => self.redact_in(&mut map.values, Some(path)),
            Some(any_value::Value::ArrayValue(array)) => {
                array.values.iter_mut().fold(false, |redacted, item| self.redact_value(item, path) | redacted)
            }
            _ => false,
        }
    }

    /// `hmac-sha256:<hex>` of `text` under the hash key.
    fn hash(&self, text: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.hash_key) else {
            return String::from("hmac-sha256:");
        };
        mac.update(text.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Each span's facts as attribute fields to append to its encoded bytes, except those the
    /// span already carries (an upstream agentrace collector computed them) and those the
    /// redaction rules drop; hashed ones are hashed.
    fn additions(
        &self,
        request: &ExportTraceServiceRequest,
        all_facts: &[SpanFacts],
    ) -> Vec<(SpanPos, Bytes)> {
        // Every span's fields encoded one after the other in one buffer, each span's a slice of
        // it: one allocation for the request instead of one per span.
        let mut encoded = Vec::new();
        let mut ends = Vec::with_capacity(all_facts.len());
        let mut added = Vec::new();
        for facts in all_facts {
            let Some(span) = request.span_at(facts.pos) else {
                debug_assert!(false, "facts for a span position not in the request");
                continue;
            };
            added.clear();
            attributes(facts, &mut added);
            added.retain(|attribute: &KeyValue| !span.attributes.iter().any(|kv| kv.key == attribute.key));
            self.redact(&mut added);
            if !added.is_empty() {
                encode_span_attributes(&added, &mut encoded);
                ends.push((facts.pos, encoded.len()));
            }
        }
        slices(Bytes::from(encoded), ends)
    }
}

/// `(pos, end)` pairs as slices of `buffer`, each from the previous one's end.
fn slices(buffer: Bytes, ends: Vec<(SpanPos, usize)>) -> Vec<(SpanPos, Bytes)> {
    let mut start = 0;
    ends.into_iter()
        .map(|(pos, end)| {
            let slice = buffer.slice(start..end);
            start = end;
            (pos, slice)
        })
        .collect()
}

/// Drops an LLM call's error texts (its status message, the message of its exception events),
/// which often quote the prompt; returns its position when anything was dropped.
fn drop_error_texts(request: &mut ExportTraceServiceRequest, pos: SpanPos) -> Option<SpanPos> {
    let span = request.span_at_mut(pos)?;
    let mut dropped = false;
    if let Some(status) = span.status.as_mut().filter(|status| !status.message.is_empty()) {
        status.message = Bytes::new();
        dropped = true;
    }
    for event in span.events.iter_mut().filter(|event| event.name == attr::EXCEPTION_EVENT) {
        let before = event.attributes.len();
        event.attributes.retain(|kv| kv.key != attr::EXCEPTION_MESSAGE);
        dropped |= event.attributes.len() != before;
    }
    dropped.then_some(pos)
}

/// Whether a value is a map, or an array (which may hold maps).
fn has_keys_inside(value: &AnyValue) -> bool {
    matches!(value.value, Some(any_value::Value::KvlistValue(_) | any_value::Value::ArrayValue(_)))
}

/// A stable text form of a value to hash.
fn canonical_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.text().to_owned(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => hex::encode(bytes),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn key(name: &'static str) -> Bytes {
    Bytes::from_static(name.as_bytes())
}

fn double(name: &'static str, value: f64) -> KeyValue {
    KeyValue::new(key(name), any_value::Value::DoubleValue(value))
}

/// Adds the attributes that carry a span's facts to `attributes`.
fn attributes(facts: &SpanFacts, attributes: &mut Vec<KeyValue>) {
    if let Some(usd) = facts.cost_usd {
        attributes.push(double(attr::AGENTRACE_COST_USD, usd));
    }
    if let Some(gpu) = &facts.gpu {
        attributes.push(KeyValue::string(key(attr::AGENTRACE_GPU_UUID), gpu.uuids.join(",")));
        attributes.push(double(attr::AGENTRACE_GPU_UTILIZATION_AVG, gpu.utilization_avg));
        attributes.push(double(attr::AGENTRACE_GPU_UTILIZATION_MAX, gpu.utilization_max));
        attributes.push(KeyValue::new(
            key(attr::AGENTRACE_GPU_MEMORY_USED_MAX_BYTES),
            any_value::Value::IntValue(i64::try_from(gpu.memory_used_max_bytes).unwrap_or(i64::MAX)),
        ));
        attributes.push(double(attr::AGENTRACE_GPU_POWER_AVG_WATTS, gpu.power_avg_watts));
        attributes.push(double(attr::AGENTRACE_GPU_SECONDS, gpu.gpu_seconds));
        attributes.push(double(attr::AGENTRACE_GPU_ENERGY_JOULES, gpu.energy_joules));
        let names: Vec<&str> = gpu.gpu_seconds_by_name.iter().map(|(name, _)| name.as_str()).collect();
        attributes.push(KeyValue::string(key(attr::AGENTRACE_GPU_NAME), names.join(",")));
    }
}

/// The forwarding view of `request`, which must still be the request `encoded` holds but for
/// the spans at `changed` and any resource or scope attributes: those are taken from
/// `request`. `added` holds, for some spans, encoded attribute fields to append to them.
/// Should `encoded` not decode, which cannot happen to bytes that decoded once, the whole
/// request is encoded from `request`.
fn forwarding_view(
    request: &ExportTraceServiceRequest,
    received: Received,
    changed: &[SpanPos],
    added: Vec<(SpanPos, Bytes)>,
) -> raw::ExportTraceServiceRequest {
    let mut view = received.into_view().unwrap_or_else(|| wire::convert(request).unwrap_or_default());
    for (raw_resource, resource) in view.resource_spans.iter_mut().zip(&request.resource_spans) {
        raw_resource.resource.clone_from(&resource.resource);
        for (raw_scope, scope) in raw_resource.scope_spans.iter_mut().zip(&resource.scope_spans) {
            raw_scope.scope.clone_from(&scope.scope);
        }
    }
    for pos in changed.iter().copied() {
        let encoded = request.span_at(pos).map(|span| Bytes::from(span.encode_to_vec()));
        if let (Some(encoded), Some(slot)) = (encoded, view.span_at_mut(pos)) {
            *slot = encoded.into();
        }
    }
    // The fields go beside the span's bytes, which are not copied; they follow them on the wire.
    // Each span is named once (`additions` goes through the facts in the request's order, one
    // each): a second would replace the first's fields.
    debug_assert!(added.windows(2).all(|pair| pair[0].0 < pair[1].0), "fields added to a span twice");
    for (pos, fields) in added {
        if let Some(slot) = view.span_at_mut(pos) {
            slot.appended = fields;
        }
    }
    view
}

/// `attributes` encoded as the attribute fields of a span (to append to its bytes), after what
/// `fields` holds.
fn encode_span_attributes(attributes: &[KeyValue], fields: &mut Vec<u8>) {
    for attribute in attributes {
        prost::encoding::message::encode(SPAN_ATTRIBUTES_FIELD, attribute, fields);
    }
}

/// `Span.attributes`' field number.
const SPAN_ATTRIBUTES_FIELD: u32 = 9;

mod keys;
#[cfg(test)]
mod tests;
