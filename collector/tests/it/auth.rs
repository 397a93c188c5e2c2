//! Bearer-token authentication on both receivers: a request without the token, or with a
//! wrong one, is refused (HTTP 401 with `WWW-Authenticate`, gRPC UNAUTHENTICATED) and counted;
//! with it, the request is accepted, whatever the case of the scheme (`bearer` too).

use crate::common::{agent_trace, request, Collector};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

const TOKEN: &str = "b3f1c0de-token";

async fn http_status(collector: &Collector, authorization: Option<&str>) -> (u16, Option<String>) {
    let mut post = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", collector.http))
        .header("content-type", "application/x-protobuf")
        .body(request(vec![agent_trace("auth", [0x81; 16])]).encode_to_vec());
    if let Some(authorization) = authorization {
        post = post.header("authorization", authorization);
    }
    let response = post.send().await.expect("http request");
    let challenge =
        response.headers().get("www-authenticate").map(|value| value.to_str().unwrap_or_default().to_owned());
    (response.status().as_u16(), challenge)
}

async fn grpc_code(collector: &Collector, authorization: Option<&str>) -> tonic::Code {
    let mut client = TraceServiceClient::connect(collector.grpc_url()).await.expect("connect");
    let mut call = tonic::Request::new(request(vec![agent_trace("auth", [0x82; 16])]));
    if let Some(authorization) = authorization {
        call.metadata_mut().insert("authorization", authorization.parse().expect("ascii"));
    }
    match client.export(call).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn requests_need_the_bearer_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    let collector = Collector::start(&["--auth-token-file", token_file.to_str().expect("utf-8 path")]).await;
    let good = format!("Bearer {TOKEN}");

    for wrong in [None, Some("Bearer nope"), Some(TOKEN)] {
        assert_eq!(http_status(&collector, wrong).await, (401, Some("Bearer".to_owned())), "{wrong:?}");
        assert_eq!(grpc_code(&collector, wrong).await, tonic::Code::Unauthenticated, "{wrong:?}");
    }
    assert_eq!(http_status(&collector, Some(&good)).await.0, 200);
    assert_eq!(grpc_code(&collector, Some(&good)).await, tonic::Code::Ok);
    let lowercase = format!("bearer {TOKEN}");
    assert_eq!(http_status(&collector, Some(&lowercase)).await.0, 200, "RFC 7235: the scheme has no case");
    assert_eq!(grpc_code(&collector, Some(&lowercase)).await, tonic::Code::Ok);

    let metrics = collector.scrape().await;
    for line in [
        "agentrace_requests_unauthenticated_total{transport=\"http\"} 3\n",
        "agentrace_requests_unauthenticated_total{transport=\"grpc\"} 3\n",
        "agentrace_spans_received_total{transport=\"http\"} 8\n",
        "agentrace_spans_received_total{transport=\"grpc\"} 8\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}
