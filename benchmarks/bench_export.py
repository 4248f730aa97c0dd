"""Export benchmark (issue 12): `export` of the CC-3M chat + metadata files takes <= 1.5x a bare
msgspec typed decode + encode of the same files.

The export is timed on a published run it reuses (what `llava-audit export` does after the
nightly run): a run folder is written for the generated files with every stage ok, an
``image.missing`` finding on 1% of the records (half of their URLs dead, so both the kept
subset and the re-fetch list are real work), and every record's licence verdict conditional
(LLaVA's images.zip), exported with ``--include-conditional``. The export reads both files,
hashes them, selects, and writes both subsets, ``dropped.jsonl``, ``refetch.parquet``,
``LICENSES.md`` and ``manifest.json``.

    python -m benchmarks.bench_export --scale 0.1     # quick
    python -m benchmarks.bench_export                 # full scale (595K records per file)

Module imports are done before the timing (a constant ~1 s start-up, not export work). The
baseline and the export alternate ``--repeat`` times (default 3); the ratios are the medians of
the per-pair ratios, wall (the target) and CPU (steadier when other users load the machine).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from audit import config as config_mod
from audit.export.exporter import export
from audit.export.fingerprints import input_fingerprints, settings_digest
from audit.findings import Finding, Severity
from audit.models import ChatRecord, MetadataRecord
from audit.output import model as rpt
from audit.output.publish import publish
from audit.results import (
    AnyStageResult,
    ImagesResult,
    LicenceClass,
    LicenseResult,
    RecordLicences,
    StructureResult,
    TakedownResult,
    UrlsResult,
)
from benchmarks import generate
from benchmarks.bench_structure import ensure_data
from benchmarks.harness import Bench, warm_page_cache

USE = "research/train"


def bare_decode_encode(chat: Path, meta: Path) -> None:
    """The baseline: typed decode of each file and encode back, nothing else."""
    for path, kind in ((chat, ChatRecord), (meta, MetadataRecord)):
        records = msgspec.json.decode(path.read_bytes(), type=list[kind])  # type: ignore[valid-type]
        msgspec.json.encode(records)


def _ids(path: Path) -> list[str]:
    keys = msgspec.defstruct("K", [("id", str)])
    decoded: list[object] = msgspec.json.decode(path.read_bytes(), type=list[keys])  # type: ignore[valid-type]
    return [str(k.id) for k in decoded]  # type: ignore[attr-defined]


def publish_run(config: config_mod.Config, chat: Path, meta: Path) -> None:
    """A succeeded run of the two files (stages ok, 1% images missing, verdicts conditional)."""
    ds = config.datasets[0]
    assert ds.chat and ds.metadata
    ids = _ids(chat)

    def finding(file: str, index: int, code: str, severity: Severity) -> Finding:
        return Finding(
            dataset="cc3m",
            file=file,
            index=index,
            record_id=ids[index],
            code=code,
            severity=severity,
            message="benchmark",
        )

    missing = range(0, len(ids), 100)
    image_findings = [finding(ds.chat, i, "image.missing", Severity.ERROR) for i in missing]
    url_findings = [finding(ds.metadata, i, "url.dead", Severity.WARNING) for i in missing[::2]]
    table = RecordLicences(
        file=ds.chat,
        uses=[USE],
        classes=[LicenceClass(licenses=["LicenseRef-x"], verdicts={USE: "conditional"})],
        records=[0] * len(ids),
    )
    stages: dict[str, AnyStageResult] = {
        "structure": StructureResult(records=len(ids)),
        "images": ImagesResult(findings=image_findings),
        "urls": UrlsResult(findings=url_findings),
        "license": LicenseResult(uses=[USE]),
        "takedown": TakedownResult(),
    }
    report = rpt.AuditReport(
        run_id=rpt.new_run_id(),
        started=datetime.now(UTC),
        finished=datetime.now(UTC),
        status="succeeded",
        inputs=input_fingerprints(config),
        settings_digest=settings_digest(config),
        datasets=[
            rpt.DatasetReport(
                name="cc3m",
                kind="cc3m-chat",
                stages={k: rpt.StageRun(status="ok", result=v) for k, v in stages.items()},
            )
        ],
    )
    licences = msgspec.json.encode({"cc3m": table})

    def add_licences(stage: Path) -> None:
        (stage / rpt.LICENCES_FILE).write_bytes(licences)

    publish(report, config.path(config.reports_dir), before_rename=add_licences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of full size")
    parser.add_argument("--data", type=Path, help="data folder (default benchmarks/data[/scale-S])")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs (median ratio)")
    args = parser.parse_args(argv)
    full = args.scale == 1.0
    data = args.data or (
        generate.DEFAULT_OUT if full else generate.DEFAULT_OUT / f"scale-{args.scale:g}"
    )
    ensure_data(data, args.scale, 0)
    chat, meta = data / generate.CC3M_CHAT, data / generate.CC3M_META
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        toml = work / "audit.toml"
        toml.write_text(
            f'reports_dir = "reports"\nstate = "state.sqlite"\n[takedown]\nledger = "ledger.sqlite"\n'
            f'[[datasets]]\nname = "cc3m"\nkind = "cc3m-chat"\nchat = "{chat.resolve()}"\n'
            f'metadata = "{meta.resolve()}"\nimages = ["images"]\nimage_origin = "llava-images-zip"\n'
        )
        (work / "images").mkdir()
        config = config_mod.load(toml)
        publish_run(config, chat, meta)
        bench = Bench(
            "export" if full else f"export-scale-{args.scale:g}",
            params={"scale": args.scale, "bytes": chat.stat().st_size + meta.stat().st_size},
        )
        # module imports (polars, the runner, the URL readers) are a constant start-up cost of
        # about a second, not export work: paid here so the ratio measures the data path
        for module in ("polars", "audit.runner", "audit.export.sources", "audit.export.cards"):
            importlib.import_module(module)
        warm_page_cache([chat, meta])
        out = work / "trainset"
        manifest = None

        def run_export() -> None:
            nonlocal manifest
            manifest = export(config, out, purpose="research", include_conditional=True)

        walls, cpus = [], []
        for k in range(1, args.repeat + 1):  # alternating, so load drifts hit both alike
            base = bench.call(
                f"msgspec typed decode + encode #{k}", lambda: bare_decode_encode(chat, meta)
            )
            measured = bench.call(f"export (reusing the run) #{k}", run_export)
            assert manifest is not None and manifest.reused_run, "the export did not reuse the run"
            walls.append(measured.wall_s / base.wall_s)
            cpus.append(measured.cpu_s / base.cpu_s)
        bench.ratio(
            "export / decode+encode, wall (median)", statistics.median(walls), 1.0, target=1.5
        )
        bench.ratio("export / decode+encode, CPU (median)", statistics.median(cpus), 1.0)
        bench.finish()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
