"""Measures two collector binaries against each other on this machine, alternating them, for
the effect of one change: each run pins the collector to core 0 and the load generator and its
counting sink to core 1, and sends W1 over OTLP/gRPC.

- fixed rate: `--rate` requests/s (512 spans each) for `--secs`, after a warm-up; CPU time of
  the collector process (utime + stime from /proc/PID/stat) per million acknowledged spans,
  and its peak resident set (VmHWM);
- closed loop: `--in-flight` requests at a time for `--secs`; acknowledged spans/s.

`--paired` runs the two collectors at once instead, both on core 0, each sent `--rate` by a
load generator of its own: whatever the machine does during a round (another guest's load,
the clock's speed) falls on both, so their CPU per span compares within the round. It
measures the fixed rate only (at saturation the two would share the core), and reports each
round's after / before ratio as well as the medians.

usage: ab.py --before BINARY --after BINARY --loadgen BINARY [--rounds 3] [--rate 60]
             [--sink-delay-ms 0] [--extra-args "--export-concurrency 4"] [--paired]
Prints medians per binary and after / before ratios as JSON. `--sink-delay-ms` makes the sink
answer each export after that long (a remote trace backend's round trip); `--extra-args` go to
both binaries, `--before-args` and `--after-args` to one each (the same binary with two
settings measures a flag). `{dir}` in any of them becomes a fresh empty directory for each
run (`--after-args "--queue-dir {dir}"`).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")


def started(command, pattern):
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = process.stderr.readline()
        if not line:
            raise SystemExit(f"{command[0]} exited: {process.stderr.read()}")
        found = re.search(pattern, line)
        if found:
            return process, found


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as file:
        kilobytes = int(re.search(r"VmHWM:\s+(\d+)", file.read()).group(1))
    return kilobytes / 1024


def send(loadgen, endpoint, secs, pace):
    command = ["taskset", "-c", "1", loadgen, "send", "--endpoint", endpoint, "--duration-secs", str(secs), *pace]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def start_sink(loadgen, args):
    sink, found = started(["taskset", "-c", "1", loadgen, "sink", "--listen", "127.0.0.1:0",
                           "--delay-ms", str(args.sink_delay_ms)], r"listening (\S+)")
    return sink, found.group(1)


def start_collector(binary, sink_address, extra):
    collector, found = started(
        ["taskset", "-c", "0", binary, "--traces-endpoint", f"http://{sink_address}", "--gpu", "off",
         "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
         *extra],
        r"otlp_grpc=(\S+)")
    return collector, f"http://{found.group(1)}"


def stop(*processes):
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def one_run(binary, loadgen, args, extra):
    sink, sink_address = start_sink(loadgen, args)
    collector, endpoint = start_collector(binary, sink_address, extra)
    try:
        send(loadgen, endpoint, 2, ["--rate", str(args.rate)])
        before = cpu_seconds(collector.pid)
        fixed = send(loadgen, endpoint, args.secs, ["--rate", str(args.rate)])
        cpu = cpu_seconds(collector.pid) - before
        rss = peak_rss_mib(collector.pid)
        closed = send(loadgen, endpoint, args.secs, ["--in-flight", str(args.in_flight)])
        rss_closed = peak_rss_mib(collector.pid)
    finally:
        stop(collector, sink)
    return {
        "cpu_s_per_million_spans": cpu / fixed["spans_acknowledged"] * 1e6,
        "fixed_rate_refused_requests": fixed["requests_refused"],
        "peak_rss_mib": rss,
        "closed_loop_spans_per_s": closed["spans_acknowledged"] / args.secs,
        "peak_rss_mib_with_closed_loop": rss_closed,
    }


def flags(args, name, directory):
    """The flags for the `name` collector (before or after), `{dir}` made `directory`."""
    words = args.extra_args.split() + getattr(args, f"{name}_args").split()
    return [word.replace("{dir}", directory) for word in words]


def send_both(args, collectors, secs):
    """Sends `--rate` to each collector for `secs`, both at once; each one's load report."""
    results = {}

    def one(name):
        results[name] = send(args.loadgen, collectors[name][1], secs, ["--rate", str(args.rate)])

    threads = [threading.Thread(target=one, args=(name,)) for name in collectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def paired_run(args, extras, order):
    """Both collectors at once, one sink, a load generator for each, started in `order`; fixed
    rate only."""
    sink, sink_address = start_sink(args.loadgen, args)
    collectors = {}
    try:
        for name in order:
            collectors[name] = start_collector(getattr(args, name), sink_address, extras[name])
        send_both(args, collectors, 2)
        before = {name: cpu_seconds(process.pid) for name, (process, _) in collectors.items()}
        results = send_both(args, collectors, args.secs)
        run = {}
        for name, (process, _) in collectors.items():
            cpu = cpu_seconds(process.pid) - before[name]
            run[name] = {
                "cpu_s_per_million_spans": cpu / results[name]["spans_acknowledged"] * 1e6,
                "fixed_rate_refused_requests": results[name]["requests_refused"],
                "peak_rss_mib": peak_rss_mib(process.pid),
            }
        return run
    finally:
        stop(*(process for process, _ in collectors.values()), sink)


def paired(args):
    runs = {"before": [], "after": []}
    for round_number in range(args.rounds):
        order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
        with tempfile.TemporaryDirectory(prefix="agentrace-ab-") as scratch:
            for name in runs:
                os.mkdir(f"{scratch}/{name}")
            extras = {name: flags(args, name, f"{scratch}/{name}") for name in runs}
            run = paired_run(args, extras, order)
        for name in runs:
            runs[name].append(run[name])
        time.sleep(1)
    key = "cpu_s_per_million_spans"
    per_round = [after[key] / before[key] for before, after in zip(runs["before"], runs["after"])]
    medians = {name: {field: statistics.median(run[field] for run in results) for field in results[0]}
               for name, results in runs.items()}
    print(json.dumps({"rounds": args.rounds, "paired": True, "rate_spans_per_s": args.rate * 512,
                      "medians": medians, "cpu_per_span_after_over_before_by_round": per_round,
                      "cpu_per_span_after_over_before_median": statistics.median(per_round),
                      "runs": runs}, indent=1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=60.0, help="W1 requests/s (512 spans each)")
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--sink-delay-ms", type=int, default=0)
    parser.add_argument("--extra-args", default="", help="flags for both collectors")
    parser.add_argument("--before-args", default="", help="flags for the before collector only")
    parser.add_argument("--after-args", default="", help="flags for the after collector only")
    parser.add_argument("--paired", action="store_true", help="both collectors at once, fixed rate only")
    args = parser.parse_args()
    if args.paired:
        paired(args)
        return
    runs = {"before": [], "after": []}
    for round_number in range(args.rounds):
        order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="agentrace-ab-") as scratch:
                extra = flags(args, name, scratch)
                runs[name].append(one_run(getattr(args, name), args.loadgen, args, extra))
            time.sleep(1)
    medians = {name: {key: statistics.median(run[key] for run in results) for key in results[0]}
               for name, results in runs.items()}
    ratios = {key: medians["after"][key] / medians["before"][key]
              for key in medians["before"] if medians["before"][key]}
    print(json.dumps({"rounds": args.rounds, "rate_spans_per_s": args.rate * 512,
                      "sink_delay_ms": args.sink_delay_ms, "medians": medians,
                      "after_over_before": ratios, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
