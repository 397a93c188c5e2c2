#!/usr/bin/env python3
"""What one collector does inside each step of a load, sample by sample: to see why a step
near saturation refuses requests while the step's average says the core had time to spare.

The collector runs pinned to core 0, the load generator and its counting sink to core 1, as in
`bench/compare`. After a warm-up (3 s at 51 200 spans/s), each step of `--steps` sends W1 over
OTLP/gRPC at that many requests/s (512 spans each) for `--secs`, one second apart. Every
`--period` seconds it prints the ingest queue's depth (`agentrace_queue_depth`), the spans
refused so far in the step, and each thread's share of the core over the period, from
`/proc/PID/task/TID/schedstat` (nanoseconds on the CPU, not clock ticks). After each step: what
the generator reports, the whole process's CPU from the same counters over the step's wall time
(which includes the generator's start, about 0.15 s, where `bench/compare` divides by the
generator's sending time), and its minor page faults. With `--only-refusing`, the samples of steps that refused nothing are left
out.

usage: timeline.py --collector BINARY --loadgen BINARY [--steps 200,300,300] [--secs 5]
                   [--period 0.1] [--in-flight N] [--only-refusing] [-- COLLECTOR FLAGS...]
`--in-flight N` makes each step a closed loop of N requests at a time instead of a rate.
"""

import argparse
import json
import os
import re
import subprocess
import threading
import time
import urllib.request

SUT_CORE, LOAD_CORE = "0", "1"


def started(command, patterns, env=None):
    """Starts `command` and reads its stderr until every pattern has matched; returns the
    process and the first group of each."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    found = {}
    while len(found) < len(patterns):
        line = process.stderr.readline()
        if not line:
            raise RuntimeError(f"{command[0]} exited before it said where it listens")
        for pattern in patterns:
            match = re.search(pattern, line)
            if match and pattern not in found:
                found[pattern] = match.group(1)
    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
    return process, [found[pattern] for pattern in patterns]


def threads(pid):
    """Nanoseconds each thread name has run, and the process's minor page faults."""
    run, faults = {}, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            nanos = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        run[name] = run.get(name, 0) + nanos
        faults += int(stat[stat.rindex(")") + 2:].split()[7])
    return run, faults


def scrape(address):
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    total = lambda prefix: sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))
    return total('agentrace_queue_depth{queue="ingest"'), total("agentrace_spans_refused_total")


def send(loadgen, endpoint, pace, seconds):
    command = ["taskset", "-c", LOAD_CORE, loadgen, "send", "--endpoint", f"http://{endpoint}",
               "--duration-secs", str(seconds)] + pace
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def step(args, collector, grpc, metrics, pace):
    before_run, before_faults = threads(collector.pid)
    _, refused_before = scrape(metrics)
    start = last = time.time()
    previous = before_run
    sender = send(args.loadgen, grpc, pace, args.secs)
    samples = []
    while sender.poll() is None:
        time.sleep(args.period)
        run, _ = threads(collector.pid)
        depth, refused = scrape(metrics)
        now = time.time()
        shares = {name: (run[name] - previous.get(name, 0)) / 1e9 / (now - last) for name in run}
        previous, last = run, now
        busy = " ".join(f"{name}={share:.2f}" for name, share in sorted(shares.items()) if share >= 0.005)
        samples.append(f"  {now - start:5.2f} s  depth {depth:4.0f}  refused {refused - refused_before:8.0f}  "
                       f"{busy}  all={sum(shares.values()):.2f}")
    report = json.loads(sender.stdout.read().strip().splitlines()[-1])
    run, faults = threads(collector.pid)
    wall = time.time() - start
    cpu = (sum(run.values()) - sum(before_run.values())) / 1e9
    print(f"{' '.join(pace)}: {report['acknowledged_spans_per_sec']:,.0f} spans/s acknowledged, "
          f"{report['requests_refused']} requests refused, p99 {report['latency_ms_p99']:,.0f} ms; "
          f"collector {cpu:.2f} CPU-s over {wall:.2f} s ({cpu / wall:.2f} of the core), "
          f"{faults - before_faults} minor faults", flush=True)
    if report["requests_refused"] or not args.only_refusing:
        print("\n".join(samples), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collector", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--steps", default="200,300,300", help="requests/s of each step")
    parser.add_argument("--secs", type=float, default=5.0)
    parser.add_argument("--period", type=float, default=0.1)
    parser.add_argument("--in-flight", type=int)
    parser.add_argument("--only-refusing", action="store_true")
    parser.add_argument("flags", nargs="*", help="more collector flags, after --")
    args = parser.parse_args()
    sink, (sink_address,) = started(["taskset", "-c", LOAD_CORE, args.loadgen, "sink", "--listen", "127.0.0.1:0"],
                                    [r"listening (\S+)"])
    env = {**os.environ, "AGENTRACE_LOG": "info"}
    collector, (grpc, metrics) = started(
        ["taskset", "-c", SUT_CORE, args.collector, "--traces-endpoint", f"http://{sink_address}", "--gpu", "off",
         "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"]
        + args.flags, [r"otlp_grpc=(\S+)", r"metrics=(\S+)"], env)
    try:
        send(args.loadgen, grpc, ["--rate", "100"], 3).wait()
        time.sleep(1.0)
        for rate in args.steps.split(","):
            pace = ["--in-flight", str(args.in_flight)] if args.in_flight else ["--rate", rate]
            step(args, collector, grpc, metrics, pace)
            time.sleep(1.0)
        peak = [line for line in open(f"/proc/{collector.pid}/status") if line.startswith("VmHWM")]
        print(f"collector peak RSS: {int(peak[0].split()[1]) / 1024:.0f} MiB")
    finally:
        collector.terminate()
        sink.terminate()
        collector.wait()
        sink.wait()


if __name__ == "__main__":
    main()
