#!/usr/bin/env python3
"""Side-by-side benchmark: agentrace against the OpenTelemetry Collector (spanmetrics) and rotel.

Each system under test runs pinned to one core; the load generator and the counting sink share
the other (`--sut-cores` and `--load-cores` give other taskset lists: `bench/cores` runs the
comparison on 1, 4 and 16 cores of a larger machine). Systems are measured alternately, round after round, and the report gives medians
and the ratio agentrace / peer. Run through `bench/compare`, which builds and installs the
parts; this file only orchestrates processes and reads /proc.

Measures, all with the same workload and transport (W1 over OTLP/gRPC by default):
  saturation   the highest fixed rate at which the generator sends at its pace, every
               request is acknowledged, nothing is refused, the p99 acknowledgement latency
               stays under a second and every acknowledged span reaches the sink within a
               second of the last acknowledgement (searched per round from a closed-loop
               probe);
  cpu          CPU-seconds of the system per million spans at a fixed rate;
  rss          peak resident set (VmHWM) over the saturation search and at the fixed rate;
  latency      p99 acknowledgement latency at the fixed rate minus that of the generator
               sending straight to the sink (the same rate, same run);
  decode       agentrace's saturation as a share of prost decoding the same request bytes in a
               tight loop on the same core.

Besides agentrace, the OpenTelemetry Collector and rotel (each on one core, each forwarding
without compression), the agentrace variants in VARIANTS measure one thing each: two cores,
the persistent queue, and a sink that answers after 20 or 50 ms (a remote backend).
"""

import argparse
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The cores of the system under test, and of the load generator and its sink (`--sut-cores`,
# `--load-cores`).
SUT_CORE, LOAD_CORE = "0", "1"
BASE_SYSTEMS = ["agentrace", "otelcol", "rotel"]
# A step whose p99 acknowledgement latency is over this did not hold.
MAX_STEP_P99_MS = 1000.0
# agentrace run differently, one change each: `cores` pins it (and then the load generator and
# sink share those cores, there being no third), `args` are added flags ({dir}: a fresh empty
# directory per start), `sink_delay_ms` makes the sink answer each export that late.
VARIANTS = {
    "agentrace-2core": {"cores": "0,1", "load_cores": "0,1"},
    "agentrace-disk": {"args": ["--queue-dir", "{dir}"]},
    "agentrace-sink20": {"sink_delay_ms": 20},
    "agentrace-sink50": {"sink_delay_ms": 50},
    # The two tiers of a scale-out deployment, each on its own: the node tier samples GPUs (the
    # scripted libnvidia-ml.so, 2 GPUs every second) and enriches spans, deriving nothing; the
    # gateway tier derives everything and samples no GPU.
    "agentrace-node": {"args": ["--role", "node", "--nvml-lib", "{fake_nvml}"], "gpu": True},
    "agentrace-gateway": {"args": ["--role", "gateway"]},
    # The node tier routing by trace id over two endpoints (two names of the one sink): what
    # cutting each request in two costs.
    "agentrace-node-routed": {"args": ["--role", "node", "--nvml-lib", "{fake_nvml}"], "gpu": True,
                              "endpoints": ["127.0.0.1", "localhost"]},
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Sink:
    """The load generator's counting sink; its running count is read from its progress lines."""

    def __init__(self, loadgen, port, cores=None, delay_ms=0):
        cores = cores or LOAD_CORE
        self.port = port
        self.count = 0
        self.process = subprocess.Popen(
            ["taskset", "-c", cores, loadgen, "sink", "--listen", f"127.0.0.1:{port}",
             "--delay-ms", str(delay_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._follow, daemon=True).start()
        wait_port(port)

    def _follow(self):
        for line in self.process.stderr:
            if line.startswith("spans "):
                self.count = int(line.split()[1])

    def settle(self, expected, timeout):
        """Waits until the sink has `expected` spans (or the timeout); returns the count."""
        deadline = time.time() + timeout
        while self.count < expected and time.time() < deadline:
            time.sleep(0.1)
        return self.count

    def cpu_seconds(self):
        return process_cpu_seconds(self.process.pid)

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=10)
        return json.loads(out.strip().splitlines()[-1])


class System:
    """A system under test, started pinned to its core, forwarding to the sink."""

    def __init__(self, name, command, env, grpc_port, metrics=None, cores=None, scratch=None):
        cores = cores or SUT_CORE
        self.name, self.grpc_port, self.metrics, self.scratch = name, grpc_port, metrics, scratch
        self.process = subprocess.Popen(
            ["taskset", "-c", cores] + command, env={**os.environ, **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        try:
            wait_port(grpc_port)
        except RuntimeError:
            self.process.kill()
            raise RuntimeError(f"{name} did not start: {''.join(self.stderr)[-2000:]}")

    def cpu_seconds(self):
        return process_cpu_seconds(self.process.pid)

    def peak_rss_mib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def metrics_summary(self):
        """Series and exemplars of the span-metrics calls counter on its /metrics."""
        if self.metrics is None:
            return None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.metrics}/metrics",
            headers={"Accept": "application/openmetrics-text;version=1.0.0"})
        text = urllib.request.urlopen(request, timeout=10).read().decode()
        calls = [line for line in text.splitlines()
                 if re.match(r"traces_span_?metrics_calls_total\{", line)]
        return {"calls_series": len(calls), "calls_with_exemplar": sum(" # {" in line for line in calls),
                "exposition_bytes": len(text)}

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.scratch:
            self.scratch.cleanup()


def process_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, args):
        self.args = args
        self.spans_per_request = {"w0": 100, "w1": 512, "w2": 10}[args.workload]
        self.port = 25000
        # Each system's full command line, as last started (ports differ per start).
        self.commands = {}

    @staticmethod
    def variant(name):
        return VARIANTS.get(name, {})

    def load_cores(self, name):
        return self.variant(name).get("load_cores", LOAD_CORE)

    def sink(self, name):
        return Sink(self.args.loadgen, self.ports(1)[0], self.load_cores(name),
                    self.variant(name).get("sink_delay_ms", 0))

    def ports(self, count):
        self.port += 10
        return [self.port + index for index in range(count)]

    def send(self, endpoint, pace, seconds, cores=None):
        cores = cores or LOAD_CORE
        command = ["taskset", "-c", cores, self.args.loadgen, "send", "--endpoint", endpoint,
                   "--workload", self.args.workload, "--duration-secs", str(seconds),
                   "--pool", str(self.args.pool)] + pace
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    def rate_pace(self, spans_per_sec):
        return ["--rate", f"{spans_per_sec / self.spans_per_request:.3f}"]

    def start(self, name, sink_port):
        grpc, second, metrics = self.ports(3)
        variant = self.variant(name)
        cores = variant.get("cores", SUT_CORE)
        if name == "agentrace" or name in VARIANTS:
            scratch = tempfile.TemporaryDirectory(prefix="agentrace-bench-")
            extra = [word.replace("{dir}", scratch.name).replace("{fake_nvml}", self.args.fake_nvml or "")
                     for word in variant.get("args", [])]
            gpu = [] if variant.get("gpu") else ["--gpu", "off"]
            command = [self.args.agentrace, "--otlp-grpc-addr", f"127.0.0.1:{grpc}",
                       "--otlp-http-addr", f"127.0.0.1:{second}", "--metrics-addr", f"127.0.0.1:{metrics}",
                       "--traces-endpoint", ",".join(f"http://{host}:{sink_port}"
                                                     for host in variant.get("endpoints", ["127.0.0.1"]))] + gpu + extra
            env = {"AGENTRACE_LOG": "warn"}
            self.record(name, cores, env, command)
            if variant.get("sink_delay_ms"):
                self.commands[name] += f" (sink: --delay-ms {variant['sink_delay_ms']})"
            return System(name, command, env, grpc, metrics, cores, scratch)
        if name == "otelcol":
            command = [self.args.otelcol, "--config", os.path.join(ROOT, "bench/otelcol/config.yaml"),
                       "--feature-gates=-connector.spanmetrics.includeCollectorInstanceID"]
            env = {"OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}", "PROM_ENDPOINT": f"127.0.0.1:{metrics}",
                   "SINK_ENDPOINT": f"127.0.0.1:{sink_port}", "SINK_COMPRESSION": "none"}
            self.record(name, cores, env, command)
            return System(name, command, env, grpc, metrics, cores)
        if name == "rotel":
            state = os.path.join(ROOT, "target/bench/rotel-state")
            os.makedirs(state, exist_ok=True)
            # rotel compresses what it forwards with gzip unless told otherwise; the other two
            # forward uncompressed, so it does too.
            command = [self.args.rotel, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}",
                       "--otlp-http-endpoint", f"127.0.0.1:{second}", "--exporter", "otlp",
                       "--otlp-exporter-endpoint", f"http://127.0.0.1:{sink_port}",
                       "--otlp-exporter-compression", "none",
                       "--pid-file", os.path.join(state, f"rotel-{grpc}.pid"),
                       "--log-file", os.path.join(state, f"rotel-{grpc}.log")]
            self.record(name, cores, {}, command)
            return System(name, command, {}, grpc, None, cores)
        raise ValueError(name)

    def record(self, name, cores, env, command):
        words = [f"{key}={value}" for key, value in env.items()] + ["taskset", "-c", cores] + command
        self.commands[name] = shlex.join(words).replace(ROOT + "/", "")

    def step(self, system, sink, spans_per_sec):
        """One open-loop step at a fixed rate; True when the system kept up. Also notes how many
        cores the system and the load (generator and sink) kept busy during it."""
        before = sink.count
        cpu_before = (system.cpu_seconds(), children_cpu_seconds() + sink.cpu_seconds())
        report = self.send(f"http://127.0.0.1:{system.grpc_port}", self.rate_pace(spans_per_sec),
                           self.args.step_secs, self.load_cores(system.name))
        seconds = report["elapsed_secs"]
        report["system_cores"] = (system.cpu_seconds() - cpu_before[0]) / seconds
        report["load_cores"] = (children_cpu_seconds() + sink.cpu_seconds() - cpu_before[1]) / seconds
        time.sleep(1.0)
        exported_in_time = sink.count - before
        # Whatever is still queued drains before the next step (and is counted, not lost).
        sink.settle(before + report["spans_acknowledged"], timeout=30)
        # Keeping pace is judged on sending, and answering late by the p99 latency: judged on
        # the acknowledgements over the time until the last one came, a system that answers
        # once a request is stored (--queue-dir) failed on the tail of its last answers while
        # one that answers on enqueueing passed with its queues filling.
        report["sent_spans_per_sec"] = report["spans_sent"] / self.args.step_secs
        ok = (report["requests_refused"] == 0 and report["requests_failed"] == 0
              and report["sent_spans_per_sec"] >= 0.98 * spans_per_sec
              and report["spans_acknowledged"] == report["spans_sent"]
              and report["latency_ms_p99"] <= MAX_STEP_P99_MS
              and exported_in_time >= report["spans_acknowledged"])
        log(f"  {system.name}: {spans_per_sec:,.0f} spans/s offered -> "
            f"{report['sent_spans_per_sec']:,.0f} sent/s, "
            f"{report['acknowledged_spans_per_sec']:,.0f} acknowledged/s (p99 {report['latency_ms_p99']:,.0f} ms), "
            f"{report['requests_refused']} refused, {exported_in_time:,} of "
            f"{report['spans_acknowledged']:,} exported within 1 s, system {report['system_cores']:.2f} "
            f"cores, load {report['load_cores']:.2f}: {'ok' if ok else 'over'}")
        return ok, report

    def saturation(self, name):
        sink = self.sink(name)
        system = self.start(name, sink.port)
        steps = []
        try:
            # A short closed loop tells roughly where the limit is.
            before = sink.count
            probe = self.send(f"http://127.0.0.1:{system.grpc_port}", ["--in-flight", "16"], 3,
                              self.load_cores(name))
            rate = (sink.count - before) / probe["elapsed_secs"]
            sink.settle(before + probe["spans_acknowledged"], timeout=30)
            # Up by a quarter until a step fails, then halve the interval between the highest
            # rate that held and the lowest that did not.
            held, failed, best = None, None, None
            for _ in range(self.args.max_steps):
                ok, report = self.step(system, sink, rate)
                steps.append({"offered": rate, "ok": ok, "refused": report["requests_refused"],
                              "acknowledged_per_sec": report["spans_acknowledged"] / self.args.step_secs,
                              "p99_ms": report["latency_ms_p99"],
                              "system_cores": report["system_cores"], "load_cores": report["load_cores"]})
                if ok:
                    held = rate
                    best = max(best or 0.0, report["spans_acknowledged"] / self.args.step_secs)
                else:
                    failed = rate
                if held is not None and failed is not None:
                    if failed / held < 1.04:
                        break
                    rate = (held + failed) / 2
                else:
                    rate = rate * 1.25 if failed is None else rate * 0.8
            metrics = system.metrics_summary()
            rss = system.peak_rss_mib()
        finally:
            system.stop()
        final = sink.stop()
        held = [step for step in steps if step["ok"]]
        top = max(held, key=lambda step: step["acknowledged_per_sec"]) if held else None
        refusing = [step["system_cores"] for step in steps if step["refused"]]
        return {"spans_per_sec": best or 0.0, "peak_rss_mib": rss, "metrics": metrics,
                "sink_spans": final["spans"], "steps": steps,
                "system_cores_at_best": top and top["system_cores"],
                "load_cores_at_best": top and top["load_cores"],
                "least_system_cores_while_refusing": min(refusing) if refusing else None}

    def fixed(self, name, spans_per_sec):
        sink = self.sink(name)
        system = None if name == "direct" else self.start(name, sink.port)
        try:
            port = sink.port if system is None else system.grpc_port
            cpu_before = system.cpu_seconds() if system else 0.0
            before = sink.count
            report = self.send(f"http://127.0.0.1:{port}", self.rate_pace(spans_per_sec), self.args.fixed_secs,
                               self.load_cores(name))
            exported = sink.settle(before + report["spans_acknowledged"], timeout=30) - before
            time.sleep(0.5)
            result = {"p99_ms": report["latency_ms_p99"], "p50_ms": report["latency_ms_p50"],
                      "acknowledged": report["spans_acknowledged"], "exported": exported,
                      "refused": report["requests_refused"]}
            if system:
                cpu = system.cpu_seconds() - cpu_before
                result["cpu_s_per_million"] = cpu / max(report["spans_acknowledged"], 1) * 1e6
                result["peak_rss_mib"] = system.peak_rss_mib()
        finally:
            if system:
                system.stop()
            sink.stop()
        return result

    def decode_only(self):
        command = ["taskset", "-c", SUT_CORE, self.args.loadgen, "decode", "--workload", self.args.workload,
                   "--duration-secs", "3", "--pool", str(self.args.pool)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])["spans_per_sec"]


def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def facts(args):
    def first_line(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_gib = int(meminfo.readline().split()[1]) / 1024 / 1024
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{model}, {os.cpu_count()} cores", "memory": f"{memory_gib:.0f} GiB",
        "kernel": platform.release(),
        "agentrace": first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "rustc": first_line(["rustc", "--version"]),
        "otelcol": first_line([args.otelcol, "--version"]),
        "go": first_line(["go", "version"]),
        "rotel": first_line([args.rotel, "--version"]),
        "sut_cores": SUT_CORE, "load_cores": LOAD_CORE,
    }


def main():
    global SUT_CORE, LOAD_CORE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agentrace", required=True)
    parser.add_argument("--otelcol", required=True)
    parser.add_argument("--rotel", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--fake-nvml", help="the scripted libnvidia-ml.so, for the node-tier run")
    parser.add_argument("--workload", default="w1", choices=["w0", "w1", "w2"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--systems", default=",".join(BASE_SYSTEMS + list(VARIANTS)))
    parser.add_argument("--fixed-rate", type=float, default=20000.0, help="spans/s for the CPU and latency runs")
    parser.add_argument("--fixed-secs", type=float, default=15.0)
    parser.add_argument("--step-secs", type=float, default=5.0)
    parser.add_argument("--max-steps", type=int, default=9)
    parser.add_argument("--pool", type=int, default=256)
    parser.add_argument("--out", default=os.path.join(ROOT, "target/bench/compare.json"))
    parser.add_argument("--sut-cores", default=SUT_CORE, help="taskset list for each system under test")
    parser.add_argument("--load-cores", default=LOAD_CORE,
                        help="taskset list for the load generator and its sink")
    args = parser.parse_args()
    SUT_CORE, LOAD_CORE = args.sut_cores, args.load_cores
    if (os.cpu_count() or 1) < 2:
        sys.exit("compare: needs two cores (one for the system under test, one for the load)")

    bench = Bench(args)
    systems = args.systems.split(",")
    results = {"facts": facts(args), "workload": args.workload, "fixed_rate": args.fixed_rate,
               "rounds": args.rounds, "saturation": {name: [] for name in systems},
               "fixed": {name: [] for name in systems + ["direct"]}, "decode_only": []}
    log(f"machine: {results['facts']}")
    for round_number in range(1, args.rounds + 1):
        log(f"round {round_number}/{args.rounds}: saturation")
        results["decode_only"].append(bench.decode_only())
        for name in systems:
            results["saturation"][name].append(bench.saturation(name))
            log(f"{name}: {results['saturation'][name][-1]}")
        log(f"round {round_number}/{args.rounds}: fixed rate {args.fixed_rate:,.0f} spans/s")
        for name in ["direct"] + systems:
            results["fixed"][name].append(bench.fixed(name, args.fixed_rate))
            log(f"{name}: {results['fixed'][name][-1]}")
    results["commands"] = bench.commands
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(results, out, indent=1)
    print(table(results, systems))
    log(f"raw results: {args.out}")


def rows_of(results, systems):
    direct_p99 = median([run["p99_ms"] for run in results["fixed"]["direct"]])
    rows = {}
    for name in systems:
        saturation = results["saturation"][name]
        fixed = results["fixed"][name]
        p99 = median([run["p99_ms"] for run in fixed])
        rows[name] = {
            "saturation": median([run["spans_per_sec"] for run in saturation]),
            "cpu": median([run.get("cpu_s_per_million") for run in fixed]),
            "rss_saturation": median([run["peak_rss_mib"] for run in saturation]),
            "rss_fixed": median([run.get("peak_rss_mib") for run in fixed]),
            "added_p99": None if p99 is None else max(p99 - direct_p99, 0.0),
            "system_cores": median([run.get("system_cores_at_best") for run in saturation]),
            "load_cores": median([run.get("load_cores_at_best") for run in saturation]),
            "refusing_cores": min([run["least_system_cores_while_refusing"] for run in saturation
                                   if run.get("least_system_cores_while_refusing") is not None], default=None),
        }
    return rows, direct_p99


def table(results, systems):
    rows, direct_p99 = rows_of(results, systems)
    base = [name for name in systems if name in BASE_SYSTEMS]
    decode = median(results["decode_only"])
    metrics = [("saturation", "spans/s at saturation", "higher is better"),
               ("cpu", f"CPU-seconds per million spans at {results['fixed_rate']:,.0f} spans/s", "lower is better"),
               ("rss_saturation", "peak RSS over the saturation search (MiB)", "lower is better"),
               ("rss_fixed", f"peak RSS at {results['fixed_rate']:,.0f} spans/s (MiB)", "lower is better"),
               ("added_p99", "p99 added latency vs generator→sink (ms)", "lower is better"),
               ("system_cores", "cores busy at the highest rate that held", "")]
    peers = [name for name in base if name != "agentrace"]
    lines = [f"Workload {results['workload'].upper()} over OTLP/gRPC, medians of {results['rounds']} rounds; "
             f"each system pinned to cores {SUT_CORE} (the load on {LOAD_CORE}), forwarding uncompressed.", ""]
    columns = base + [f"agentrace / {peer}" for peer in peers]
    lines += ["| measure | " + " | ".join(columns) + " |", "|" + "---|" * (1 + len(columns))]
    for key, label, better in metrics:
        cells = [fmt(rows[name][key]) for name in base]
        cells += [ratio(rows.get("agentrace", {}).get(key), rows[peer][key]) for peer in peers]
        label = f"{label} ({better})" if better else label
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    variants = [name for name in systems if name in VARIANTS]
    if variants and "agentrace" in rows:
        lines += ["", variant_table(rows, ["agentrace"] + variants, results["fixed_rate"])]
    if decode and "agentrace" in rows and rows["agentrace"]["saturation"]:
        lines += ["", f"Decode only (prost, same request bytes, same core): {decode:,.0f} spans/s; "
                  f"agentrace at saturation = {100 * rows['agentrace']['saturation'] / decode:.0f} % of it."]
    lines += ["", f"Generator→sink p99 at the fixed rate: {fmt(direct_p99)} ms.", "", "Command lines:", ""]
    lines += [f"- {name}: `{results['commands'].get(name, 'n/a')}`" for name in systems]
    return "\n".join(lines)


def variant_table(rows, names, fixed_rate):
    """agentrace's variants against agentrace on one core. On two cores the load generator and
    sink share the system's cores; the corrected figure scales the measured one by the cores
    the system could have had (2) over those the load left it, assuming it would use them as
    it uses the ones it had."""
    one = rows["agentrace"]["saturation"]
    lines = ["| agentrace | spans/s at saturation | / 1 core | cores busy (system / load) | least cores busy "
             "while refusing | CPU-s per M spans at " + f"{fixed_rate:,.0f}" + " spans/s | peak RSS search / fixed (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        row = rows[name]
        share = ratio(row["saturation"], one)
        if name == "agentrace-2core" and row["load_cores"] is not None and row["saturation"]:
            corrected = row["saturation"] * 2 / max(2 - row["load_cores"], 0.1)
            share += f" (corrected for the load's {row['load_cores']:.2f} cores: {ratio(corrected, one)})"
        lines.append(f"| {name} | {fmt(row['saturation'])} | {share} | {fmt(row['system_cores'])} / "
                     f"{fmt(row['load_cores'])} | {fmt(row['refusing_cores'])} | {fmt(row['cpu'])} | "
                     f"{fmt(row['rss_saturation'])} / {fmt(row['rss_fixed'])} |")
    return "\n".join(lines)


def fmt(value):
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def ratio(ours, theirs):
    if ours is None or not theirs:
        return "n/a"
    return f"{ours / theirs:.2f}×"


if __name__ == "__main__":
    main()
