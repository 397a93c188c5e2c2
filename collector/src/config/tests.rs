use super::*;

fn parse(args: &[&str]) -> Result<Config, String> {
    let argv = std::iter::once("agentrace-collector").chain(args.iter().copied());
    Options::load(argv).and_then(Options::validate).map_err(|error| first_line(&error.to_string()))
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
    file
}

#[test]
fn defaults_bind_loopback_and_forward_nothing() {
    let config = parse(&[]).expect("defaults are valid");
    assert_eq!(config.receive.grpc_addr.to_string(), "127.0.0.1:4317");
    assert_eq!(config.receive.http_addr.to_string(), "127.0.0.1:4318");
    assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:9101");
    assert!(config.export.is_none());
    assert_eq!(config.series.max_series_per_metric, SeriesLimits::default().max_series_per_metric);
    assert_eq!(config.graph.wait_secs, GraphConfig::default().wait_secs);
}

#[test]
fn flags_override_the_file() {
    let file = file(
        "otlp-grpc-addr = \"0.0.0.0:14317\"\nmetrics-addr = \"127.0.0.1:19101\"\ntraces-endpoint = \"http://tempo:4317\"\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let config = parse(&["--config", path, "--metrics-addr", "127.0.0.1:29101"]).expect("valid");
    assert_eq!(config.receive.grpc_addr.to_string(), "0.0.0.0:14317");
    assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:29101");
    assert_eq!(config.export.expect("export").endpoint, "http://tempo:4317");
}

#[test]
fn every_kind_of_file_value_reaches_its_flag() {
    let file = file(
        "queue-capacity = 12\ngraph-wait-secs = 2.5\nkeep-content = true\nredact-attributes = [\"a\", \"b.\"]\n\
         memory-limit = \"64MiB\"\nqueue-fsync = false\ntraces-endpoint = \"http://sink:4317\"\nqueue-dir = \"/tmp/q\"\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let config = parse(&["--config", path]).expect("valid");
    assert_eq!(config.receive.queue_capacity, 12);
    assert_eq!(config.graph.wait_secs, 2.5);
    assert_eq!(config.receive.memory_limit_bytes, Some(64 << 20));
    let export = config.export.expect("export");
    assert!(!export.persistent.expect("persistent").fsync);
    assert_eq!(export.max_retry, None, "with the persistent queue a batch waits on disk");
}

#[test]
fn bad_values_name_their_flag_or_file_line() {
    let error = parse(&["--otlp-grpc-addr", "nowhere"]).expect_err("invalid");
    assert!(error.contains("--otlp-grpc-addr"), "{error}");
    let error = parse(&["--traces-endpoint", "tempo:4317"]).expect_err("invalid");
    assert!(error.contains("--traces-endpoint"), "{error}");
    let error = parse(&["--queue-capacity", "0"]).expect_err("invalid");
    assert!(error.contains("--queue-capacity"), "{error}");
    let error = parse(&["--gpu", "maybe"]).expect_err("invalid");
    assert!(error.contains("--gpu"), "{error}");
    assert!(!parse(&["--gpu", "off"]).expect("valid").gpu.enabled);

    let unknown = file("metrics-addr = \"127.0.0.1:1\"\nqueue-capacty = 3\n");
    let path = unknown.path().to_str().expect("utf-8 path");
    let error = parse(&["--config", path]).expect_err("unknown key");
    assert!(error.contains(path) && error.contains("line 2") && error.contains("queue-capacty"), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");

    let wrong_type = file("\nqueue-capacity = \"many\"\n");
    let path = wrong_type.path().to_str().expect("utf-8 path");
    let error = parse(&["--config", path]).expect_err("not a number");
    assert!(
        error.contains(path) && error.contains("line 2") && error.contains("--queue-capacity"),
        "{error}"
    );

    let not_toml = file("queue-capacity = [\n");
    let path = not_toml.path().to_str().expect("utf-8 path");
    let error = parse(&["--config", path]).expect_err("not TOML");
    assert!(error.contains(path) && error.contains("line "), "{error}");
}

#[test]
fn connection_limits_have_defaults_flags_and_a_budget_sized_from_the_memory_limit() {
    let config = parse(&[]).expect("defaults are valid");
    let otlp = config.connections.otlp;
    assert_eq!(otlp.header_read.as_secs(), 10);
    assert_eq!(otlp.idle.as_secs(), 90);
    assert_eq!((otlp.body_window.as_secs(), otlp.min_body_rate), (10, 1024));
    assert_eq!(otlp.max_streams, 32);
    assert!(otlp.max_connections >= 16);
    assert_eq!(config.connections.metrics.max_connections, 64);
    assert_eq!(config.connections.max_inflight_bytes, 256 << 20);
    assert_eq!(config.metrics_endpoint.max_bytes, 64 << 20);
    assert!(config.metrics_endpoint.token.is_none() && config.metrics_endpoint.tls.is_none());

    let config = parse(&["--memory-limit", "1GiB", "--min-body-rate", "4KiB", "--max-connections", "100"])
        .expect("valid");
    assert_eq!(config.connections.max_inflight_bytes, 256 << 20, "a quarter of the memory limit");
    assert_eq!(config.connections.otlp.min_body_rate, 4096);
    assert_eq!(config.connections.otlp.max_connections, 100);
    let config = parse(&["--memory-limit", "1GiB", "--max-inflight-bytes", "32MiB"]).expect("valid");
    assert_eq!(config.connections.max_inflight_bytes, 32 << 20, "the flag wins");

    assert!(parse(&["--idle-timeout-secs", "0"]).expect_err("zero").contains("--idle-timeout-secs"));
    assert!(parse(&["--min-body-rate", "fast"]).expect_err("not a size").contains("--min-body-rate"));
    assert!(parse(&["--max-streams-per-connection", "0"]).expect_err("zero").contains("--max-streams"));
}

#[test]
fn the_ingest_queues_hold_512_requests_in_all_by_default_and_256_each_at_least() {
    let capacity = |workers: &str| parse(&["--workers", workers]).expect("valid").receive.queue_capacity;
    assert_eq!(capacity("1"), 512);
    assert_eq!(capacity("2"), 256);
    assert_eq!(capacity("3"), 256);
    assert_eq!(capacity("16"), 256);
    let given = parse(&["--workers", "1", "--queue-capacity", "64"]).expect("valid");
    assert_eq!(given.receive.queue_capacity, 64, "a given capacity stands");
}
