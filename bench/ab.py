"""Measures two collector binaries against each other on this machine, alternating them, for
the effect of one change: each run pins the collector to core 0 and the load generator and its
counting sink to core 1, and sends W1 over OTLP/gRPC.

- fixed rate: `--rate` requests/s (512 spans each) for `--secs`, after a warm-up; CPU time of
  the collector process (utime + stime from /proc/PID/stat) per million acknowledged spans,
  and its peak resident set (VmHWM);
- closed loop: `--in-flight` requests at a time for `--secs`; acknowledged spans/s.

usage: ab.py --before BINARY --after BINARY --loadgen BINARY [--rounds 3] [--rate 60]
             [--sink-delay-ms 0] [--extra-args "--export-concurrency 4"]
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


def one_run(binary, loadgen, args, extra):
    sink, _ = started(["taskset", "-c", "1", loadgen, "sink", "--listen", "127.0.0.1:0",
                       "--delay-ms", str(args.sink_delay_ms)], r"listening (\S+)")
    sink_address = _.group(1)
    collector, found = started(
        ["taskset", "-c", "0", binary, "--traces-endpoint", f"http://{sink_address}", "--gpu", "off",
         "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
         *extra],
        r"otlp_grpc=(\S+)")
    endpoint = f"http://{found.group(1)}"
    try:
        send(loadgen, endpoint, 2, ["--rate", str(args.rate)])
        before = cpu_seconds(collector.pid)
        fixed = send(loadgen, endpoint, args.secs, ["--rate", str(args.rate)])
        cpu = cpu_seconds(collector.pid) - before
        rss = peak_rss_mib(collector.pid)
        closed = send(loadgen, endpoint, args.secs, ["--in-flight", str(args.in_flight)])
        rss_closed = peak_rss_mib(collector.pid)
    finally:
        collector.terminate()
        collector.wait(timeout=30)
        sink.terminate()
        sink.wait(timeout=30)
    return {
        "cpu_s_per_million_spans": cpu / fixed["spans_acknowledged"] * 1e6,
        "fixed_rate_refused_requests": fixed["requests_refused"],
        "peak_rss_mib": rss,
        "closed_loop_spans_per_s": closed["spans_acknowledged"] / args.secs,
        "peak_rss_mib_with_closed_loop": rss_closed,
    }


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
    args = parser.parse_args()
    runs = {"before": [], "after": []}
    for round_number in range(args.rounds):
        order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="agentrace-ab-") as scratch:
                extra = [word.replace("{dir}", scratch)
                         for word in args.extra_args.split() + getattr(args, f"{name}_args").split()]
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
