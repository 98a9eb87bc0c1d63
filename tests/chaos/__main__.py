"""`python -m tests.chaos --kills N [--seed S]`: see tests/chaos/__init__.py."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from tests.chaos import Plan, chaos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description="kill -9 obeya serve mid-pipeline, check"
    )
    parser.add_argument("--kills", type=int, default=200, help="how many (default 200)")
    parser.add_argument("--seed", type=int, help="of the kills' timing (default: new, printed)")
    parser.add_argument(
        "--max-delay", type=float, default=8.0, help="most seconds from a start to its kill"
    )
    args = parser.parse_args(argv)
    seed = random.SystemRandom().randrange(10**6) if args.seed is None else args.seed
    print(f"chaos: {args.kills} kills, seed {seed}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="obeya-chaos-"))
    try:
        report = chaos(Plan(args.kills, seed, args.max_delay), root, lambda s: print(s, flush=True))
    except RuntimeError as error:  # the server did not come back, say
        print(f"FAILED: {error}\nleft for a look: {root}; again: --seed {seed}")
        return 1
    print(report.summary())
    if report.violations:
        print(f"left for a look: {root} (serve.log, data/); again: --seed {seed}")
        return 1
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
