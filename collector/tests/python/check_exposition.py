"""Parses a /metrics page with prometheus_client's strict parsers and checks every value.

Usage: check_exposition.py openmetrics|classic < page

Exits non-zero, naming the sample, when the page does not parse or a value is not finite;
prints the number of samples otherwise.
"""

import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic


def main() -> int:
    parse = {"openmetrics": openmetrics, "classic": classic}[sys.argv[1]]
    samples = 0
    for family in parse(sys.stdin.read()):
        for sample in family.samples:
            if not math.isfinite(sample.value):
                print(f"not finite: {sample.name}{sample.labels} {sample.value}", file=sys.stderr)
                return 1
            if family.type in ("counter", "histogram") and not sample.name.endswith("_sum") and sample.value < 0:
                print(f"negative: {sample.name}{sample.labels} {sample.value}", file=sys.stderr)
                return 1
            samples += 1
    print(samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
