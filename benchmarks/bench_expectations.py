"""Expectations benchmark (issue 5): what the Great Expectations stage costs per dataset, and a rerun.

Over one full-scale generated chat file (run ``python -m benchmarks.generate`` first), in one process:
- a bare ``msgspec.json.decode`` of the file into the loader's typed records (the floor),
- building the per-record table from those records,
- importing great_expectations (once per process),
- running the kind's shipped suite with Data Docs (a fresh cache: GX runs),
- running it again on the unchanged table (the nightly rerun: the cache answers, GX does not run).
Ratios are against the bare decode, and rerun / first run.

    python -m benchmarks.bench_expectations                 # CC-3M chat.json, 595,375 records
    python -m benchmarks.bench_expectations --file lcs      # LCS-558K
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import msgspec

from audit.models import ChatRecord
from audit.probes.expectations import default_suites_dir, run_expectations
from audit.probes.record_table import record_table
from benchmarks import generate
from benchmarks.harness import Bench

FILES = {
    "cc3m": (generate.CC3M_CHAT, "cc3m-chat"),
    "lcs": (generate.LCS_CHAT, "lcs-chat"),
    "instruct": (generate.INSTRUCT, "instruct"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", choices=sorted(FILES), default="cc3m")
    parser.add_argument("--data", type=Path, default=generate.DEFAULT_OUT)
    args = parser.parse_args()
    relative, kind = FILES[args.file]
    path = args.data / relative
    if not path.is_file():
        raise SystemExit(f"{path}: missing; run `python -m benchmarks.generate` first")
    raw = path.read_bytes()
    bench = Bench(f"expectations-{args.file}", params={"file": relative, "kind": kind})
    records: list[ChatRecord] = []

    def decode() -> dict[str, int]:
        records[:] = msgspec.json.decode(raw, type=list[ChatRecord])
        return {"records": len(records)}

    decoded = bench.call("bare typed decode", decode)
    table = record_table(records)  # warm-up: pandas import is start-up, not the table
    built = bench.call("per-record table", lambda: record_table(records))
    gx_import = bench.call("import great_expectations", _import_gx)
    with tempfile.TemporaryDirectory() as tmp:

        def run(docs: str) -> dict[str, object]:
            result = run_expectations(
                table,
                kind,
                suites_dir=default_suites_dir(),
                docs_dir=Path(tmp) / docs,
                dataset=args.file,
                file=str(path),
                cache_dir=Path(tmp) / "cache",
            )
            return {"cached": result.cached, "failed": result.failed}

        first = bench.call("suite run with Data Docs (GX)", lambda: run("first"))
        rerun = bench.call("rerun on unchanged table (cache)", lambda: run("second"))
    bench.ratio("table / typed decode", built.wall_s, decoded.wall_s)
    bench.ratio("GX suite run / typed decode", first.wall_s, decoded.wall_s)
    bench.ratio("GX import / typed decode", gx_import.wall_s, decoded.wall_s)
    bench.ratio("rerun / first run", rerun.wall_s, first.wall_s + gx_import.wall_s, target=0.1)
    bench.finish()


def _import_gx() -> None:
    import great_expectations  # noqa: F401  (the cost measured here)


if __name__ == "__main__":
    main()
