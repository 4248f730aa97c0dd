"""Structure-audit benchmark (issue 2): ``llava-audit check`` against a bare msgspec decode, in ONE run.

Measured back to back on the same files with a warm page cache, each as its own process:
  (a)  bare single-process msgspec typed decode (read + decode into Structs, default GC); the
       figure is the decode time the child reports, so (b)/(a) is a strict bound;
  (a') the same with the cyclic GC disabled (what an optimised loader can reach);
  (b)  ``llava-audit check <all files> --findings F``, whole-process wall time, peak RSS of the
       process tree, CPU (user+sys of all descendants) / wall = cores used;
  (c)  naive json.load + Python loop + pandas baseline checking a few of the same rules.
Ratios: (b)/(a) <= 1.5, (c)/(b), (b) peak RSS <= 1.5 GB, (b) cores used (both cores).

    python -m benchmarks.bench_structure                 # full scale (generates data if missing)
    python -m benchmarks.bench_structure --scale 0.05    # quick run on a 5% copy
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from benchmarks import generate
from benchmarks.harness import Bench, warm_page_cache

GB = 1e9
FILES = (
    generate.INSTRUCT,
    generate.CC3M_CHAT,
    generate.CC3M_META,
    generate.LCS_CHAT,
    generate.LCS_META,
)


class Turn(msgspec.Struct):
    from_: str = msgspec.field(name="from")
    value: str | None  # None: generated data with --defects has null values (a salvage case)


class Record(msgspec.Struct):
    id: str
    image: str
    conversations: list[Turn]


class Meta(msgspec.Struct):
    id: str
    image: str
    url: str = ""
    caption: str | None = None
    blip_caption: str | None = None


def is_metadata(path: Path) -> bool:
    return path.name == "metadata.json" or path.stem.endswith("_meta")


# ---- workers (run in child processes) ---------------------------------------------------------------
def decode_worker(paths: list[Path], disable_gc: bool) -> dict[str, Any]:
    """(a): read each file and decode it into typed Structs, one file at a time."""
    chat, meta = msgspec.json.Decoder(list[Record]), msgspec.json.Decoder(list[Meta])
    records, started = 0, time.perf_counter()
    if disable_gc:
        gc.disable()
    for path in paths:
        decoded = (meta if is_metadata(path) else chat).decode(path.read_bytes())
        records += len(decoded)
        del decoded
    return {"decode_s": time.perf_counter() - started, "records": records}


_ID_PATTERNS = {"instruct": r"\d{12}", "cc3m": r"GCC_train_\d{9}", "lcs": r"\d{9}"}


def _kind(path: Path) -> str:
    return (
        "cc3m"
        if "CC3M" in str(path) or "GCC" in path.name
        else "lcs"
        if "558k" in path.name
        else "instruct"
    )


def naive_worker(paths: list[Path]) -> dict[str, Any]:
    """(c): what a user writes first: json.load, a Python loop over turns, pandas for columns."""
    import pandas as pd

    errors, records, started = 0, 0, time.perf_counter()
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
        records += len(data)
        pattern = _ID_PATTERNS[_kind(path)]
        if is_metadata(path):
            frame = pd.DataFrame(data)
            errors += int((~frame["url"].fillna("").str.startswith("http")).sum())
        else:
            rows = []
            for rec in data:
                conv = rec.get("conversations")
                if not isinstance(conv, list) or not conv:
                    errors += 1
                    continue
                tokens = 0
                for position, turn in enumerate(conv):
                    role, value = turn.get("from"), turn.get("value")
                    errors += role != ("human" if position % 2 == 0 else "gpt")
                    if not isinstance(value, str) or not value.strip():
                        errors += 1
                        continue
                    tokens += value.count("<image>")
                    errors += "</s>" in value
                errors += tokens != 1 or len(conv) % 2 == 1
                rows.append((rec.get("id"), rec.get("image"), len(conv)))
            frame = pd.DataFrame(rows, columns=["id", "image", "turns"])
            expected = frame["id"] + ".jpg"
            if _kind(path) == "lcs":
                expected = frame["id"].str.slice(0, 5) + "/" + expected
            errors += int((frame["image"] != expected).sum())
        errors += int((~frame["id"].astype(str).str.fullmatch(pattern)).sum())
        del data, frame
    return {"seconds": time.perf_counter() - started, "records": records, "errors": errors}


# ---- the benchmark ----------------------------------------------------------------------------------
def ensure_data(data: Path, scale: float, defects: int) -> list[Path]:
    """Generate the data once (it is git-ignored and reused by every later run)."""
    paths = [data / name for name in FILES]
    if not all(p.is_file() for p in paths):
        print(f"generating scale={scale} data into {data} ...", file=sys.stderr)
        generate.generate(data, scale=scale, defects=defects)
    return paths


def defect_recall(data: Path, findings_path: Path) -> tuple[int, int, int]:
    """(caught, injected, unexpected errors): injected defects reported at their index with their
    codes, and error findings at records where nothing was injected (false alarms on clean data)."""
    manifest_path = data / "defects.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else []
    found: set[tuple[str, int | None, str]] = set()
    errors_at: set[tuple[str, int | None]] = set()
    if findings_path.is_file():
        for line in findings_path.read_text(encoding="utf-8").splitlines():
            finding = json.loads(line)
            try:
                key = str(Path(finding["file"]).resolve().relative_to(data.resolve()))
            except ValueError:
                continue
            found.add((key, finding["index"], finding["code"]))
            if finding["severity"] == "error":
                errors_at.add((key, finding["index"]))
    expected = [(d["file"], d["index"], code) for d in manifest for code in d["codes"]]
    injected_at = {(d["file"], d["index"]) for d in manifest}
    caught = sum(item in found for item in expected)
    return caught, len(expected), len(errors_at - injected_at)


def _worker_cmd(mode: str, paths: list[Path]) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bench_structure", "--worker", mode, *map(str, paths)]


def run_benchmark(args: argparse.Namespace) -> int:
    full = args.scale == 1.0
    data = args.data or (
        generate.DEFAULT_OUT if full else generate.DEFAULT_OUT / f"scale-{args.scale:g}"
    )
    paths = ensure_data(data, args.scale, args.defects)
    size = sum(p.stat().st_size for p in paths)
    name = "structure" if full else f"structure-scale-{args.scale:g}"
    bench = Bench(
        name, params={"scale": args.scale, "data": str(data), "bytes": size, "files": FILES}
    )
    warm_page_cache(paths)

    a = bench.run("(a) msgspec typed decode", _worker_cmd("decode", paths))
    a_nogc = bench.run("(a') msgspec decode, GC off", _worker_cmd("decode-nogc", paths))
    with tempfile.TemporaryDirectory() as tmp:
        findings = Path(tmp) / "findings.jsonl"
        exe = Path(sys.executable).with_name("llava-audit")
        cmd = args.cmd.split() if args.cmd else [str(exe), "check"]
        b = bench.run(
            "(b) llava-audit check", [*cmd, *map(str, paths), "--findings", str(findings)]
        )
        checked = b.exit_code in (0, 1)
        caught, injected, false_alarms = defect_recall(data, findings) if checked else (0, 0, 0)
    c = (
        None
        if args.skip_naive
        else bench.run("(c) json.load + loop + pandas", _worker_cmd("naive", paths))
    )

    decode_s = a.extra.get("decode_s", a.wall_s)
    bench.figure("(a) decode MB/s", size / 1e6 / decode_s)
    bench.ratio("(a') GC off / (a)", a_nogc.extra.get("decode_s", a_nogc.wall_s), decode_s)
    if checked:
        bench.ratio("(b) check wall / (a) decode", b.wall_s, decode_s, target=1.5)
        bench.ratio(
            "(b) check wall / (a') decode GC off", b.wall_s, a_nogc.extra.get("decode_s", 1.0)
        )
        bench.ratio("(b) cpu / (a) cpu (work done, robust to load)", b.cpu_s, a.cpu_s)
        bench.figure("(b) peak RSS, GB", b.peak_rss / GB, target=1.5)
        bench.ratio("(b) peak RSS / (a) peak RSS", b.peak_rss, a.peak_rss)
        bench.figure(
            "(b) cores used, average (cpu/wall)", b.cores, target=1.0, higher_is_better=True
        )
        bench.figure(
            "(b) cores used, peak 0.5 s window", b.peak_cores, target=1.8, higher_is_better=True
        )
        bench.figure(
            "(b) CPU share outside the busiest process", b.spread, target=0.3, higher_is_better=True
        )
        if injected:
            bench.figure(
                "(b) injected defects caught", caught / injected, target=1.0, higher_is_better=True
            )
        bench.figure("(b) error records where nothing was injected", false_alarms, target=0)
        if c is not None:
            bench.ratio(
                "(c) naive wall / (b) check wall",
                c.wall_s,
                b.wall_s,
                target=1.0,
                higher_is_better=True,
            )
    else:
        bench.console.print(
            f"[yellow](b) did not run (exit {b.exit_code}): {b.extra.get('stderr_tail')}[/]"
        )
        if c is not None:
            bench.ratio("(c) naive wall / (a) decode", c.wall_s, decode_s)
    bench.finish()
    return 0 if checked else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of full size (data cached per scale)"
    )
    parser.add_argument("--data", type=Path, help="data folder (default benchmarks/data[/scale-S])")
    parser.add_argument("--defects", type=int, default=0, help="defects per file when generating")
    parser.add_argument("--skip-naive", action="store_true", help="skip the slow (c) baseline")
    parser.add_argument(
        "--cmd", help="command for (b) instead of 'llava-audit check' (files appended)"
    )
    parser.add_argument(
        "--worker", choices=("decode", "decode-nogc", "naive"), help=argparse.SUPPRESS
    )
    parser.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker == "naive":
            result = naive_worker(args.paths)
        else:
            result = decode_worker(args.paths, disable_gc=args.worker == "decode-nogc")
        print(json.dumps(result))
        return 0
    return run_benchmark(args)


if __name__ == "__main__":
    raise SystemExit(main())
