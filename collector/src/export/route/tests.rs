use super::*;
use crate::metrics::SeriesLimits;
use crate::receive::StoreAnswer;
use crate::wire::{InstrumentationScope, Resource, Span};

fn lanes(names: &[&str]) -> (Lanes, Vec<crate::export::queue::QueueReceiver>) {
    let registry = Arc::new(Registry::new(SeriesLimits::default()));
    let mut receivers = Vec::new();
    let lanes = names
        .iter()
        .map(|name| {
            let (sender, receiver, _) = queue::memory(registry.clone());
            receivers.push(receiver);
            Lane { seed: xxh3_64(name.as_bytes()), sender }
        })
        .collect();
    (Lanes { lanes }, receivers)
}

/// The lane of `trace_id` among endpoints named `names`: what a router with those lanes picks.
fn lane_of(names: &[&str], trace_id: &[u8]) -> usize {
    let scores = names.iter().map(|name| xxh3_64_with_seed(trace_id, xxh3_64(name.as_bytes())));
    scores.enumerate().max_by_key(|(_, score)| *score).map_or(0, |(index, _)| index)
}

fn trace(n: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[8..12].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
    id
}

#[test]
fn a_fourth_endpoint_takes_about_a_quarter_of_the_traces_and_moves_no_others() {
    let three = ["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"];
    let four = ["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317", "10.0.0.4:4317"];
    let traces = 20_000;
    let mut moved = 0;
    for n in 0..traces {
        let before = lane_of(&three, &trace(n));
        let after = lane_of(&four, &trace(n));
        if before != after {
            assert_eq!(after, 3, "a trace only ever moves to the new endpoint");
            moved += 1;
        }
    }
    let share = f64::from(moved) / f64::from(traces);
    assert!((0.22..0.28).contains(&share), "{share} of the traces moved");
    let (routed, _receivers) = lanes(&four);
    assert!((0..100).all(|n| routed.pick(&trace(n)) == lane_of(&four, &trace(n))), "the router picks alike");
}

fn encoded(trace_id: [u8; 16], span: u8) -> Bytes {
    let span = Span {
        trace_id: Bytes::copy_from_slice(&trace_id),
        span_id: vec![span; 8].into(),
        ..Default::default()
    };
    Bytes::from(span.encode_to_vec())
}

#[tokio::test]
async fn a_request_is_cut_by_trace_keeping_resource_and_scope_and_the_answer_waits_for_every_part() {
    let names = ["a:1", "b:1", "c:1"];
    let (lanes, _receivers) = lanes(&names);
    let traces: Vec<[u8; 16]> = (0..12).map(trace).collect();
    let resource = |name: &str| {
        Some(Resource {
            attributes: vec![crate::wire::KeyValue::string(
                Bytes::from_static(b"service.name"),
                name.to_owned(),
            )],
            ..Default::default()
        })
    };
    let scope = Some(InstrumentationScope { name: Bytes::from_static(b"scope"), ..Default::default() });
    let request = raw::ExportTraceServiceRequest {
        resource_spans: ["one", "two"]
            .iter()
            .enumerate()
            .map(|(r, name)| raw::ResourceSpans {
                resource: resource(name),
                scope_spans: vec![raw::ScopeSpans {
                    scope: scope.clone(),
                    spans: traces
                        .iter()
                        .enumerate()
                        .map(|(n, id)| encoded(*id, (r * 20 + n) as u8).into())
                        .collect(),
                    schema_url: Bytes::new(),
                }],
                schema_url: Bytes::new(),
            })
            .collect(),
    };
    let (answer, wait) = StoreAnswer::channel();
    let parts = split(Forward { request, spans: 24, stored: Some(answer) }, &lanes);
    assert!(parts.len() > 1, "twelve traces over three lanes");
    assert_eq!(parts.iter().map(|(_, part)| part.spans).sum::<usize>(), 24);
    for (lane, part) in &parts {
        for resource_spans in &part.request.resource_spans {
            assert!(resource_spans.resource.is_some(), "the resource goes with every part");
            for scope_spans in &resource_spans.scope_spans {
                assert_eq!(scope_spans.scope, scope, "the scope goes with every part");
                for span in &scope_spans.spans {
                    assert_eq!(
                        lane_of(&names, &trace_id(&span.encoded)),
                        *lane,
                        "each span in its trace's lane"
                    );
                }
            }
        }
    }
    let answers: Vec<StoreAnswer> = parts.into_iter().filter_map(|(_, part)| part.stored).collect();
    let count = answers.len();
    for answer in answers {
        answer.send(Ok(()));
    }
    assert!(count > 1);
    assert_eq!(wait.await.expect("answered"), Ok(()));
}

#[test]
fn a_trace_id_is_read_from_any_field_order() {
    let id = trace(7);
    assert_eq!(trace_id(&encoded(id, 1)).as_ref(), id.as_slice());
    // The span id first, then the trace id: found by decoding.
    let mut reordered = Vec::new();
    prost::encoding::bytes::encode(2, &vec![1u8; 8], &mut reordered);
    prost::encoding::bytes::encode(1, &id.to_vec(), &mut reordered);
    assert_eq!(trace_id(&Bytes::from(reordered)).as_ref(), id.as_slice());
}

#[tokio::test]
async fn a_dns_name_without_a_server_is_asked_of_the_systems_resolver_configuration() {
    let name = crate::export::args::DnsName {
        server: None,
        host: "localhost".to_owned(),
        port: 4317,
        every: std::time::Duration::from_secs(5),
    };
    let found = resolve::Resolver::new(&name).addresses().await.expect("localhost resolves");
    assert_eq!(found.get("127.0.0.1:4317").map(String::as_str), Some("http://127.0.0.1:4317"), "{found:?}");
}
