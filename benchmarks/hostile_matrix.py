"""Run the hostile-input matrix and print it as a markdown table: scenario | command | exit | seconds.

The same cases as ``tests/test_hostile_matrix.py`` (``benchmarks/hostile_cases.py``), here with
how long each took: every one should end in about the CLI's start-up time, none near the timeout.

    .venv/bin/python -m benchmarks.hostile_matrix [--only COMMAND] [--scenario NAME]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.hostile_cases import CASES, TIMEOUT_SECONDS, expected_exit, run_case

RESULTS = Path(__file__).resolve().parent / "results" / "hostile_matrix.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one command (as in the table)")
    parser.add_argument("--scenario", help="one scenario")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    seconds: list[float] = []
    print("| scenario | command | exit code | expected | seconds |")
    print("|---|---|---:|---:|---:|")
    for command, scenario in CASES:
        if args.only not in (None, command) or args.scenario not in (None, scenario):
            continue
        with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
            outcome = run_case(command, scenario, Path(tmp))
        code = "timeout" if outcome.code is None else str(outcome.code)
        want = expected_exit(command, scenario)
        mark = "" if outcome.code == want else " **!**"
        print(f"| {scenario} | `{command}` | {code}{mark} | {want} | {outcome.seconds:.2f} |")
        seconds.append(outcome.seconds)
        rows.append(
            {
                "scenario": scenario,
                "command": command,
                "exit_code": outcome.code,
                "expected": want,
                "seconds": round(outcome.seconds, 3),
                "stderr": outcome.stderr.strip()[-300:],
            }
        )
    worst = max(seconds, default=0.0)
    print(f"\n{len(rows)} cases; slowest {worst:.2f} s (timeout {TIMEOUT_SECONDS:g} s)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
