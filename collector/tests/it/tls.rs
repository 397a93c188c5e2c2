//! TLS on the receivers with client certificates required (mTLS), and TLS to the trace
//! endpoint: a certificate authority, server and client certificates made for the test; the
//! gRPC client is tonic, the HTTP client is curl; a second collector forwards over https.

use std::path::Path;
use std::process::Command;

use crate::common::{agent_trace, request, Collector};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL (curl) takes a leaf whose issuer name equals its own for
        // self-signed.
        ca_params.distinguished_name.push(DnType::CommonName, "agentrace test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
        let write =
            |name: &str, text: String| std::fs::write(dir.path().join(name), text).expect("write pem");
        write("ca.pem", ca.pem());
        for (name, names) in [
            ("server", vec!["localhost".to_owned(), "127.0.0.1".to_owned()]),
            ("client", vec!["agent".to_owned()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            let certificate = params.signed_by(&key, &ca).expect("sign");
            write(&format!("{name}.pem"), certificate.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().expect("utf-8 path").to_owned()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).expect("pem")
    }
}

async fn tls_collector(pki: &Pki, extra: &[&str]) -> Collector {
    let (certificate, key, ca) = (pki.path("server.pem"), pki.path("server.key"), pki.path("ca.pem"));
    let mut args = vec!["--tls-cert-file", &certificate, "--tls-key-file", &key, "--tls-client-ca-file", &ca];
    args.extend_from_slice(extra);
    Collector::start(&args).await
}

async fn grpc_export(pki: &Pki, collector: &Collector, with_client_certificate: bool) -> Result<(), String> {
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pki.read("ca.pem")))
        .domain_name("localhost");
    if with_client_certificate {
        tls = tls
            .identity(tonic::transport::Identity::from_pem(pki.read("client.pem"), pki.read("client.key")));
    }
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://127.0.0.1:{}", collector.grpc.port()))
            .expect("url")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .map_err(|error| format!("connect: {error:?}"))?;
    TraceServiceClient::new(channel)
        .export(request(vec![agent_trace("tls", [0xe0; 16])]))
        .await
        .map(|_| ())
        .map_err(|status| format!("{status:?}"))
}

/// `curl`'s HTTP status, or `None` when no HTTP exchange happened (refused handshake).
/// curl to `url`, trusting the test CA: a POST of `body` as OTLP protobuf, or a GET without
/// one. The status, if there was an exchange.
async fn curl(pki: &Pki, url: String, with_client_certificate: bool, body: Option<&Path>) -> Option<u16> {
    let mut command = tokio::process::Command::new("curl");
    command.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        "--cacert",
        &pki.path("ca.pem"),
    ]);
    if let Some(body) = body {
        command
            .args(["-H", "content-type: application/x-protobuf", "--data-binary"])
            .arg(format!("@{}", body.display()));
    }
    if with_client_certificate {
        command.args(["--cert", &pki.path("client.pem"), "--key", &pki.path("client.key")]);
    }
    let output = command.arg(url).output().await.expect("curl is installed");
    let code: u16 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0);
    (output.status.success() && code != 0).then_some(code)
}

/// A POST of `body` to the collector's `/v1/traces` over `scheme`.
async fn curl_traces(
    pki: &Pki,
    collector: &Collector,
    with_client_certificate: bool,
    scheme: &str,
    body: &Path,
) -> Option<u16> {
    let url = format!("{scheme}://localhost:{}/v1/traces", collector.http.port());
    curl(pki, url, with_client_certificate, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_require_client_certificates_and_exports_go_over_tls() {
    let pki = Pki::new();
    let collector = tls_collector(&pki, &[]).await;

    grpc_export(&pki, &collector, true).await.expect("mTLS gRPC export accepted");
    assert!(grpc_export(&pki, &collector, false).await.is_err(), "no client certificate: refused");

    let body = pki.dir.path().join("body.pb");
    std::fs::write(&body, request(vec![agent_trace("tls", [0xe1; 16])]).encode_to_vec()).expect("body");
    assert_eq!(
        curl_traces(&pki, &collector, true, "https", &body).await,
        Some(200),
        "mTLS HTTP export accepted"
    );
    assert_eq!(
        curl_traces(&pki, &collector, false, "https", &body).await,
        None,
        "no client certificate: no exchange"
    );
    assert_eq!(
        curl_traces(&pki, &collector, true, "http", &body).await,
        None,
        "plain HTTP on the TLS port: no exchange"
    );

    // Two more collectors, plain on their receivers, forward to the first over https with a
    // client certificate: one over OTLP/gRPC, one over OTLP/HTTP.
    let (ca, certificate, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key"));
    let mut forwarders = Vec::new();
    for (port, protocol, trace) in
        [(collector.grpc.port(), "grpc", 0xe2), (collector.http.port(), "http/protobuf", 0xe3)]
    {
        let endpoint = format!("https://localhost:{port}");
        let forwarder = Collector::start(&[
            "--traces-endpoint",
            &endpoint,
            "--traces-protocol",
            protocol,
            "--traces-ca-file",
            &ca,
            "--traces-client-cert-file",
            &certificate,
            "--traces-client-key-file",
            &key,
        ])
        .await;
        let mut client = TraceServiceClient::connect(forwarder.grpc_url()).await.expect("connect");
        client.export(request(vec![agent_trace("tls-forwarded", [trace; 16])])).await.expect("accepted");
        forwarders.push(forwarder);
    }

    // 4 spans by tonic and 4 forwarded over gRPC; 4 by curl and 4 forwarded over HTTP.
    crate::common::eventually("the forwarded spans at the TLS collector", async || {
        let metrics = collector.scrape().await;
        let grpc = metrics.contains("agentrace_spans_received_total{transport=\"grpc\"} 8\n");
        let http = metrics.contains("agentrace_spans_received_total{transport=\"http\"} 8\n");
        (grpc && http).then_some(())
    })
    .await;
}

/// `GET /metrics` over `scheme`.
async fn curl_metrics(
    pki: &Pki,
    collector: &Collector,
    scheme: &str,
    client_certificate: bool,
) -> Option<u16> {
    let url = format!("{scheme}://localhost:{}/metrics", collector.metrics.port());
    curl(pki, url, client_certificate, None).await
}

#[tokio::test]
async fn the_metrics_port_serves_tls_and_client_certificates_when_configured() {
    let pki = Pki::new();
    let (certificate, key, ca) = (pki.path("server.pem"), pki.path("server.key"), pki.path("ca.pem"));
    let collector = Collector::start(&[
        "--metrics-tls-cert-file",
        &certificate,
        "--metrics-tls-key-file",
        &key,
        "--metrics-tls-client-ca-file",
        &ca,
    ])
    .await;
    assert_eq!(curl_metrics(&pki, &collector, "https", true).await, Some(200), "scraped over mTLS");
    assert_eq!(curl_metrics(&pki, &collector, "https", false).await, None, "no client certificate");
    assert_eq!(curl_metrics(&pki, &collector, "http", true).await, None, "plain HTTP: no exchange");
}

#[test]
fn half_a_tls_configuration_is_refused_at_startup() {
    let pki = Pki::new();
    let output = Command::new(env!("CARGO_BIN_EXE_agentrace-collector"))
        .args(["--tls-cert-file", &pki.path("server.pem")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-key-file"));
    let output = Command::new(env!("CARGO_BIN_EXE_agentrace-collector"))
        .args(["--tls-cert-file", &pki.path("server.key"), "--tls-key-file", &pki.path("server.key")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "a key is not a certificate");
    let output = Command::new(env!("CARGO_BIN_EXE_agentrace-collector"))
        .args(["--metrics-tls-cert-file", &pki.path("server.pem")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--metrics-tls-key-file"));
}
