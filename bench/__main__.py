"""`make bench`: run every benchmark and record its figures in bench/results/.

Benchmarks measure; they never assert. Each writes ``results/<name>.json`` with the
machine, the date and the command that produced it, so figures can be compared over time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obeya.settings")
    import django

    django.setup()
    from bench import (
        board_flow,
        board_load,
        catalog_api,
        deploy_rollback,
        deploy_switch,
        event_log,
        metrics_room,
        ops_monitors,
        pipelines_logs,
        pipelines_overhead,
        pipelines_pickup,
    )

    suites = {
        "event_log": event_log.run,
        "catalog_api": catalog_api.run,
        "pipelines_overhead": pipelines_overhead.run,
        "pipelines_pickup": pipelines_pickup.run,
        "pipelines_logs": pipelines_logs.run,
        "board_flow": board_flow.run,
        "board_load": board_load.run,
        "deploy_switch": deploy_switch.run,
        "deploy_rollback": deploy_rollback.run,
        "ops_monitors": ops_monitors.run,
        "metrics_room": metrics_room.run,
    }
    chosen = args.names or list(suites)
    unknown = sorted(set(chosen) - set(suites))
    if unknown:
        print(
            f"bench: unknown benchmark {unknown[0]!r}; known: {', '.join(suites)}", file=sys.stderr
        )
        return 2
    RESULTS.mkdir(exist_ok=True)
    for name in chosen:
        figures = suites[name]()
        record = {
            "benchmark": name,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "command": f"make bench  (python -m bench {name})",
            "figures": figures,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"{name}: {json.dumps(figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
