//! Whether the processing workers contend on the metrics registry they share: two threads,
//! each a worker of its own (normalize, derive, its own agent-graph window) running W1
//! requests of its own traces, writing to one registry with one lock per family, to one
//! registry with a stripe per worker (as the collector runs them), and to a registry each
//! (no sharing at all: the bound). Both name the same services, agents and models, so they
//! hit the same series, as workers sharing a trace load do. Throughput in spans per second of
//! both threads together; `one_thread` is one worker alone.
//!
//! Run with `cargo bench -p agentrace-loadgen --bench workers` on a machine with two free
//! cores; on one core the threads take turns and the comparison says nothing.

use std::time::{Duration, Instant};

use agentrace_collector::harness::Pipeline;
use agentrace_collector::GraphConfig;
use agentrace_loadgen::{Generator, Workload};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const THREADS: usize = 2;
/// Requests each thread runs per timed iteration.
const REQUESTS: usize = 8;
const START_UNIX_NANOS: u64 = 1_700_000_000_000_000_000;

/// Distinct requests per thread (seeds differ: distinct trace ids, the same label values).
fn bodies(thread: usize) -> Vec<Bytes> {
    let mut generator = Generator::new(Workload::W1, 100 + thread as u64, START_UNIX_NANOS);
    (0..REQUESTS as u64).map(|sequence| Bytes::from(generator.request(sequence).encode_to_vec())).collect()
}

/// Runs `iterations` rounds of every thread's requests on `THREADS` threads at once; the
/// time until the last thread is done.
fn run(pipelines: &mut [Pipeline], bodies: &[Vec<Bytes>], iterations: u64, clock: &mut f64) -> Duration {
    let step_secs = GraphConfig::default().wait_secs;
    let start_clock = *clock;
    *clock += step_secs * iterations as f64;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (pipeline, bodies) in pipelines.iter_mut().zip(bodies) {
            scope.spawn(move || {
                let mut now = start_clock;
                for _ in 0..iterations {
                    now += step_secs;
                    pipeline.tick(now);
                    for body in bodies {
                        assert!(pipeline.request(body.clone(), now), "W1 decodes");
                    }
                }
            });
        }
    });
    started.elapsed()
}

fn workers(criterion: &mut Criterion) {
    let bodies: Vec<Vec<Bytes>> = (0..THREADS).map(bodies).collect();
    let spans = (THREADS * REQUESTS * Workload::W1.spans_per_request()) as u64;
    let mut group = criterion.benchmark_group("workers_w1");
    group.throughput(Throughput::Elements(spans));

    let mut one_lock = Pipeline::sharing_a_registry(THREADS, false);
    let mut clock = START_UNIX_NANOS as f64 / 1e9;
    group.bench_function("one_registry_one_lock", |bencher| {
        bencher.iter_custom(|iterations| run(&mut one_lock, &bodies, iterations, &mut clock));
    });

    let mut striped = Pipeline::sharing_a_registry(THREADS, true);
    let mut clock = START_UNIX_NANOS as f64 / 1e9;
    group.bench_function("one_registry_a_stripe_each", |bencher| {
        bencher.iter_custom(|iterations| run(&mut striped, &bodies, iterations, &mut clock));
    });

    let mut apart: Vec<Pipeline> = (0..THREADS).map(|_| Pipeline::default()).collect();
    let mut clock = START_UNIX_NANOS as f64 / 1e9;
    group.bench_function("a_registry_each", |bencher| {
        bencher.iter_custom(|iterations| run(&mut apart, &bodies, iterations, &mut clock));
    });

    let mut alone = vec![Pipeline::default()];
    let mut clock = START_UNIX_NANOS as f64 / 1e9;
    group.throughput(Throughput::Elements(spans / THREADS as u64));
    group.bench_function("one_thread", |bencher| {
        bencher.iter_custom(|iterations| run(&mut alone, &bodies[..1], iterations, &mut clock));
    });
    group.finish();
}

criterion_group!(benches, workers);
criterion_main!(benches);
