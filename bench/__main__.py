"""``python -m bench [--quick] [--only NAME ...]``: run the scenarios, write bench/results/latest.{json,md}."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.env import STATE, Result, close_pool, machine
from bench.report import markdown

SCENARIOS = (
    "ingest",
    "matching",
    "delivery",
    "isolation",
    "slowdown",
    "latency",
    "notifications",
    "cost",
    "query",
    "hot_resource",
)
# Scenarios that run on one set of processes (bench.env.webhook_rig), kept while they run back to back.
POOLED = {"delivery", "isolation", "slowdown"}
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs (under a minute)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest.json and latest.md go")
    args = parser.parse_args(argv)
    # A SIGTERM (timeout, Ctrl-C from make) still stops the Azurite, devhost and receiver processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = args.only or list(SCENARIOS)
    started = time.monotonic()
    results: list[Result] = []
    for index, name in enumerate(names):
        print(f"bench: {name} …", flush=True)
        began = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        try:
            result: Result = asyncio.run(module.run(args.quick))
        except Exception as error:
            traceback.print_exc()
            result = Result(name, name, "failed", "", None, "", None, notes=[f"{type(error).__name__}: {error}"])
        finally:
            following = names[index + 1] if index + 1 < len(names) else None
            if name not in POOLED or following not in POOLED:
                close_pool()  # nothing of one scenario keeps running under the next
        result.seconds = time.monotonic() - began
        results.append(result)
        ratio = f"{result.ratio:.2f}" if result.ratio is not None else "-"
        print(f"bench: {name}: {result.figure} | baseline {result.baseline} | ratio {ratio} | {result.seconds:.0f} s")
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "scenarios": [dataclasses.asdict(r) for r in results],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    (args.out / "latest.md").write_text(markdown(document))
    if not os.environ.get("HERALD_BENCH_KEEP"):  # keep devhost logs and state for a look afterwards
        shutil.rmtree(STATE, ignore_errors=True)
    print(f"bench: wrote {args.out / 'latest.json'} and latest.md in {document['seconds']:.0f} s")
    return 1 if any(r.figure == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
