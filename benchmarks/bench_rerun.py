"""Re-run benchmark (issue 5): a second scheduled ``llava-audit run`` on unchanged data takes <= 10%
of the first, because the image and URL probe caches answer what has not changed.

One run builds a CC-3M-shaped dataset (``chat.json`` + ``metadata.json`` from the generator, one
~11 KB JPEG per record in an image folder, every source URL pointing at the loopback latency server
of ``benchmarks/latency_server.py`` spread over several 127.0.0.x hosts), writes its ``audit.toml``
(fresh state store and reports folder), then times ``llava-audit run --config`` twice in a row.
Ratios: second/first for the whole process (target <= 0.10) and per stage from the published
``report.json`` (where the caches must show).

    python -m benchmarks.bench_rerun --records 2000       # quick
    python -m benchmarks.bench_rerun                        # 20,000 records (default)
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter

from benchmarks import generate
from benchmarks.harness import ROOT, Bench

LATENCY_SERVER = Path(__file__).resolve().parent / "latency_server.py"


def jpeg_variants(count: int = 16) -> list[bytes]:
    """Blurred-noise JPEGs of about 11 KB: the average file size in LLaVA's CC-3M images.zip."""
    variants = []
    for _ in range(count):
        bands = [
            Image.effect_noise((336, 252), 50).filter(ImageFilter.GaussianBlur(1.4))
            for _ in range(3)
        ]
        buf = io.BytesIO()
        Image.merge("RGB", bands).save(buf, "JPEG", quality=75)
        variants.append(buf.getvalue())
    return variants


def build_dataset(folder: Path, records: int, port: int, hosts: int) -> dict[str, str]:
    """CC-3M chat + metadata with local images and loopback URLs; returns the dataset's config."""
    if folder.exists():
        shutil.rmtree(folder)
    generate.pretrain_files("cc3m", folder, records, seed=5, n_defects=0, log=[])
    chat_path, meta_path = folder / generate.CC3M_CHAT, folder / generate.CC3M_META
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    for i, record in enumerate(metadata):
        record["url"] = f"http://127.0.0.{1 + i % hosts}:{port}/img/{record['id']}.jpg"
    meta_path.write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    images = folder / "images"
    images.mkdir()
    variants = jpeg_variants()
    for i, record in enumerate(metadata):
        (images / record["image"]).write_bytes(variants[i % len(variants)])
    return {
        "name": "cc3m-rerun",
        "kind": "cc3m-chat",
        "chat": str(chat_path),
        "metadata": str(meta_path),
        "images": str(images),
    }


def write_config(folder: Path, dataset: dict[str, str]) -> Path:
    """The nightly config: default probe settings except that loopback URLs are allowed."""
    lines = [
        f'reports_dir = "{folder / "reports"}"',
        f'state = "{folder / "state.sqlite"}"',
        "",
        "[[datasets]]",
    ]
    lines += [
        f'{key} = "{value}"' if key != "images" else f'images = ["{value}"]'
        for key, value in dataset.items()
    ]
    lines += ["", "[urls]", "allow_private = true", "retries = 0", "timeout_seconds = 5.0", ""]
    path = folder / "audit.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def stage_seconds(reports: Path) -> dict[str, dict[str, Any]]:
    """Per run (oldest first): stage -> {seconds, status} from each published report.json."""
    runs: dict[str, dict[str, Any]] = {}
    for report in sorted(reports.glob("*/report.json")):
        data = json.loads(report.read_text(encoding="utf-8"))
        stages: dict[str, Any] = {}
        for dataset in data.get("datasets", []):
            for name, run in dataset.get("stages", {}).items():
                stages[name] = {"seconds": run.get("seconds", 0.0), "status": run.get("status")}
        runs[report.parent.name] = stages
    return runs


def run_benchmark(args: argparse.Namespace) -> int:
    server = subprocess.Popen(
        [
            sys.executable,
            str(LATENCY_SERVER),
            "--hosts",
            str(args.hosts),
            "--latency",
            str(args.latency),
            "--seconds",
            "1800",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise SystemExit(f"latency server did not start: {ready}")
        dataset = build_dataset(args.folder, args.records, int(ready[1]), args.hosts)
        config = write_config(args.folder, dataset)
        bench = Bench(
            "rerun" if args.records == 20_000 else f"rerun-{args.records}",
            params={
                "records": args.records,
                "hosts": args.hosts,
                "latency_s": args.latency,
                "config": str(config),
            },
        )
        exe = str(Path(sys.executable).with_name("llava-audit"))
        first = bench.run("first run", [exe, "run", "--config", str(config)], cwd=ROOT)
        second = bench.run(
            "second run, unchanged data", [exe, "run", "--config", str(config)], cwd=ROOT
        )
    finally:
        if server.stdin is not None:
            server.stdin.close()  # EOF stops the server
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    bench.ratio("second / first run, whole process", second.wall_s, first.wall_s, target=0.10)
    runs = list(stage_seconds(args.folder / "reports").values())
    if len(runs) >= 2:
        for name, before in runs[-2].items():
            after = runs[-1].get(name, {})
            if before.get("status") == "ok" and before.get("seconds"):
                bench.ratio(
                    f"stage {name}: second / first", after.get("seconds", 0.0), before["seconds"]
                )
        bench.params["stages"] = {"first": runs[-2], "second": runs[-1]}
    else:
        bench.console.print(
            f"[yellow]published reports found: {len(runs)} (exit codes {first.exit_code}, {second.exit_code})[/]"
        )
    bench.finish()
    return 0 if first.exit_code in (0, 1) and second.exit_code in (0, 1) else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=20_000, help="CC-3M records (and images, URLs)"
    )
    parser.add_argument(
        "--hosts", type=int, default=16, help="loopback hosts the URLs are spread over"
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="server answer latency, seconds"
    )
    parser.add_argument("--folder", type=Path, help="work folder, replaced (default: a new one)")
    parser.add_argument("--keep", action="store_true", help="keep the default work folder")
    args = parser.parse_args(argv)
    if args.folder is not None:
        return run_benchmark(args)
    # a private folder per invocation: two people benchmarking at once must not share a state store
    generate.DEFAULT_OUT.mkdir(parents=True, exist_ok=True)
    args.folder = Path(tempfile.mkdtemp(prefix="rerun-", dir=generate.DEFAULT_OUT))
    try:
        return run_benchmark(args)
    finally:
        if args.keep:
            print(f"work folder kept: {args.folder}", file=sys.stderr)
        else:
            shutil.rmtree(args.folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
