"""The Spark engine against the local engine on a sharded set of 1M records (issue 13).

    .venv/bin/python -m benchmarks.bench_spark                          # 1M records, 20 shards
    .venv/bin/python -m benchmarks.bench_spark --records 20000 --shards 4 --urls 2000   # quick

In one run, each command in its own process after warming the page cache (generated once by
benchmarks/generate_shards.py into ``benchmarks/data/shards-<records>/``):

(a) the same findings: ``llava-audit check SET --findings F`` (local engine) and ``--engine spark
    --master local[2] --findings-dir D`` compared as a multiset of (file, index, code), the Spark
    side read back from its Parquet table with pyarrow; and the planted defects each one found;
(b) wall and CPU ratios: Spark ``local[2]`` / ``local[1]``, Spark ``local[2]`` / local engine
    (target <= 2.0 for ``check``; the runs of median wall time of ``--rounds`` rounds of the two
    in turn, each round's ratio kept too), and records/s per executor core;
(c) peak RSS by role, sampled over the process tree: the Python driver, the JVM (in local mode the
    one JVM is the driver's and the executor's), the Python workers;
(d) when the Spark URL stage is present: ``llava-audit urls --engine spark`` at ``local[1]`` and
    ``local[2]`` and the local engine against the loopback latency server: URLs/s per core, and
    after each command's fixed cost (its wall on one URL per host).

Writes ``benchmarks/results/spark.json`` (``spark-<records>.json`` for other sizes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
import pyarrow.dataset as ds

from benchmarks import generate_shards
from benchmarks.bench_urls import start_server
from benchmarks.harness import Bench, Measurement, warm_page_cache

DATA = Path(__file__).resolve().parent / "data"
LLAVA_AUDIT = str(Path(sys.executable).with_name("llava-audit"))
Key = tuple[str, int, str]  # (file, index, code)


def role(proc: psutil.Process) -> str:
    """Which part of a run a process is: the CLI (driver), the JVM, or a Python worker."""
    cmdline = proc.cmdline()
    if (Path(cmdline[0]).name if cmdline else proc.name()) == "java":
        return "jvm"
    return "driver" if any(a.endswith("llava-audit") for a in cmdline[:2]) else "python workers"


def dataset(out: Path, records: int, shards: int, defects: int, seed: int) -> Path:
    """The sharded set, generated once per parameters (a marker file holds them)."""
    params = {"records": records, "shards": shards, "defects": defects, "seed": seed}
    marker = out / "params.json"
    if not marker.is_file() or json.loads(marker.read_text()) != params:
        generate_shards.generate(out, records, shards, seed, defects)
        marker.write_text(json.dumps(params) + "\n")
    return out


def local_findings(path: Path) -> Counter[Key]:
    """The local engine's ``--findings`` JSON Lines as a multiset."""
    found: Counter[Key] = Counter()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            found[(row["file"], row["index"], row["code"])] += 1
    return found


def spark_findings(folder: Path) -> Counter[Key]:
    """The Spark engine's findings table (partitioned by dataset and code) as a multiset."""
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table(
        columns=["file", "index", "code"]
    )
    found: Counter[Key] = Counter()
    for batch in table.to_batches():
        files, indexes, codes = (batch.column(n).to_pylist() for n in ("file", "index", "code"))
        found.update(zip(files, indexes, map(str, codes), strict=True))
    return found


def planted_found(planted: list[dict[str, object]], found: Counter[Key]) -> float:
    """The share of planted (shard, index, code) that some finding reports."""
    seen = {(Path(file).name.split(".")[0], index, code) for file, index, code in found}
    wanted = [(p["shard"], p["index"], code) for p in planted for code in p["codes"]]  # type: ignore[attr-defined]
    return sum(w in seen for w in wanted) / len(wanted) if wanted else 1.0


def memory(bench: Bench, label: str, run: Measurement) -> None:
    by_role = run.extra.get("peak_rss_by_role", {})
    for name in ("driver", "jvm", "python workers"):
        if name in by_role:
            bench.figure(f"{label}: peak RSS {name} (GB)", by_role[name] / 2**30)


def compare(bench: Bench, local: Counter[Key], spark: Counter[Key], planted: list) -> None:
    """(a): the multisets equal, and the planted defects each engine found."""
    equal = local == spark
    bench.figure("findings equal, local vs spark local[2] (1 = yes)", float(equal), 1, True)
    bench.params["findings"] = {"local": sum(local.values()), "spark": sum(spark.values())}
    if not equal:
        only_local, only_spark = local - spark, spark - local
        bench.params["only_local"] = [list(k) for k in list(only_local)[:10]]
        bench.params["only_spark"] = [list(k) for k in list(only_spark)[:10]]
        bench.console.print(
            f"[red]differ[/]: {len(only_local)} keys only local, "
            f"{len(only_spark)} only spark; first: {bench.params['only_local'][:3]} "
            f"/ {bench.params['only_spark'][:3]}"
        )
    bench.figure("planted found, local engine", planted_found(planted, local), 1, True)
    bench.figure("planted found, spark local[2]", planted_found(planted, spark), 1, True)


def check_runs(
    bench: Bench, shard_set: Path, records: int, tmp: Path, planted: list, rounds: int
) -> None:
    """(a)-(c) for ``check``: after one unmeasured Spark run (the JVM's class archive, made by
    a machine's first run, is then in place; not for a single round), ``rounds`` rounds of the
    local engine and Spark ``local[2]`` in turn, each figure from the run of median wall time
    (the machine is shared: a slow moment then weighs on both sides alike), then one
    ``local[1]`` run."""
    check = [LLAVA_AUDIT, "check", str(shard_set)]
    spark = ["--engine", "spark", "--findings-dir"]
    local_argv = [*check, "--findings", str(tmp / "local.jsonl")]
    two_argv = [*check, *spark, str(tmp / "s2"), "--master", "local[2]"]
    if rounds > 1:  # one round is a smoke run
        bench.run("spark local[2], warm-up (not counted)", two_argv, role=role)
        class_archive_settled(bench)
    locals_, twos = [], []
    for n in range(rounds):
        locals_.append(bench.run(f"local engine, round {n + 1}", local_argv, role=role))
        twos.append(bench.run(f"spark local[2], round {n + 1}", two_argv, role=role))
    each_round = [t.wall_s / loc.wall_s for loc, t in zip(locals_, twos, strict=True)]
    bench.params["check wall ratio spark local[2] / local engine, each round"] = [
        round(r, 2) for r in each_round
    ]
    local, two = median_run(locals_), median_run(twos)
    one = bench.run(
        "spark local[1]", [*check, *spark, str(tmp / "s1"), "--master", "local[1]"], role=role
    )
    written = {"local.jsonl": local, "s2": two, "s1": one}
    failed = [r.name for out, r in written.items() if not (tmp / out).exists()]
    if failed:  # exit 1 is "errors found" and a crash alike: the output tells them apart
        bench.console.print(f"[red]no findings written by: {', '.join(failed)}[/] (crashed?)")
        bench.params["failed"] = failed
        return
    compare(bench, local_findings(tmp / "local.jsonl"), spark_findings(tmp / "s2"), planted)
    bench.figure(
        "findings equal, spark local[1] vs local[2] (1 = yes)",
        float(spark_findings(tmp / "s1") == spark_findings(tmp / "s2")),
        1,
        True,
    )
    # each round's two runs met the same moment of a shared machine: the median of the rounds'
    # ratios is the figure, the one whose target issue 13 sets
    bench.figure(
        "check wall: spark local[2] / local engine (median of the rounds)",
        statistics.median(each_round),
        2.0,
    )
    bench.ratio("check CPU: spark local[2] / local engine", two.cpu_s, local.cpu_s)
    bench.ratio("check wall: spark local[2] / local[1]", two.wall_s, one.wall_s)
    bench.ratio("check CPU: spark local[2] / local[1]", two.cpu_s, one.cpu_s)
    bench.figure("check records/s per core, spark local[1]", records / one.wall_s)
    bench.figure("check records/s per core, spark local[2]", records / two.wall_s / 2)
    bench.figure("check records/s, local engine (2 cores)", records / local.wall_s)
    for label, run in (("local engine", local), ("spark local[2]", two), ("spark local[1]", one)):
        memory(bench, label, run)


def median_run(runs: list[Measurement]) -> Measurement:
    """The run of median wall time (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run.wall_s)[(len(runs) - 1) // 2]


def class_archive_settled(bench: Bench, patience: float = 120.0) -> None:
    """Wait until the driver JVM's class archive (audit.engines.spark.classcache) is in place:
    a machine's first Spark run writes it as its JVM exits, and it is taken into use once it
    has settled; a run before that starts without it, seconds slower."""
    import pyspark

    from audit.engines.spark import classcache

    home = Path(pyspark.__file__).parent
    waited = 0.0
    while not any(o.startswith("-XX:SharedArchiveFile") for o in classcache.java_options(home)):
        if waited >= patience:
            bench.console.print("[yellow]the JVM's class archive is not in place: runs start cold")
            return
        time.sleep(5)
        waited += 5


def url_runs(bench: Bench, n_urls: int, hosts: int, latency: float, tmp: Path) -> None:
    """(d): the URL stage on Spark at local[1] and local[2] against the loopback server, and the
    local engine. Each command also runs on one URL per host (a fresh state each time): its wall
    is the command's fixed cost (JVM and session start, the first Spark job's warm-up, each
    action's scheduling), and the URLs/s "after the fixed cost" are what N URLs add to it, the
    rate a capacity estimate for 100M URLs wants."""
    server, port = start_server(hosts, latency, seconds=1800)
    try:

        def meta(name: str, n: int) -> Path:
            path = tmp / name
            rows = [
                {
                    "id": f"{i:09d}",
                    "image": f"{i:09d}.jpg",
                    "url": f"http://127.0.0.{i % hosts + 1}:{port}/images/{i:09d}.jpg",
                }
                for i in range(n)
            ]
            path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
            return path

        full, tiny = meta("urls_meta.json", n_urls), meta("urls_tiny.json", hosts)
        commands = {
            "local engine": ([], 2),
            "spark local[1]": (["--engine", "spark", "--master", "local[1]"], 1),
            "spark local[2]": (["--engine", "spark", "--master", "local[2]"], 2),
        }
        rate: dict[str, float] = {}
        walls: dict[str, float] = {}
        for label, (engine, cores) in commands.items():
            runs = {}
            for size, path in (("fixed", tiny), ("full", full)):
                name = "".join(c if c.isalnum() else "-" for c in label)  # no glob characters
                state = tmp / f"urls-{name}-{size}" / "state.sqlite"
                state.parent.mkdir(parents=True, exist_ok=True)
                argv = [LLAVA_AUDIT, "urls", str(path), "--allow-private", "--state", str(state)]
                runs[size] = bench.run(f"urls {label}, {size}", [*argv, *engine], role=role)
            wall, fixed = runs["full"].wall_s, runs["fixed"].wall_s
            bench.figure(f"urls {label}: fixed cost (s, {hosts} URLs)", fixed)
            bench.params[f"urls {label}: CPU (s)"] = round(runs["full"].cpu_s, 2)
            bench.figure(f"URLs/s per core, {label}", n_urls / wall / cores)
            rate[label] = (n_urls - hosts) / max(wall - fixed, 1e-3) / cores
            bench.figure(f"URLs/s per core after the fixed cost, {label}", rate[label])
            walls[label] = wall
            if label != "local engine":
                bench.ratio(f"urls wall: {label} / local engine", wall, walls["local engine"])
        bench.ratio(
            "URLs/s per core after the fixed cost: spark local[2] / local engine (target >= 0.5)",
            rate["spark local[2]"],
            rate["local engine"],
            0.5,
            True,
        )
        bench.ratio(
            "URLs/s per core after the fixed cost: spark local[2] / local[1]",
            rate["spark local[2]"],
            rate["spark local[1]"],
        )
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --records")
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--defects", type=int, default=8, help="planted defects per shard")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=generate_shards.FORMATS, default="jsonl")
    parser.add_argument("--data", type=Path, help="where the set is (generated when missing)")
    parser.add_argument("--urls", type=int, default=20_000, help="URLs for (d); 0 skips it")
    parser.add_argument("--hosts", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--results", type=Path, default=None, help="folder for the results JSON")
    parser.add_argument(
        "--rounds", type=int, default=5, help="local / spark local[2] check runs in turn"
    )
    args = parser.parse_args(argv)
    records = max(args.shards, round(args.records * args.scale))
    out = args.data or DATA / f"shards-{records}"
    shard_set = dataset(out, records, args.shards, args.defects, args.seed) / args.format
    name = "spark" if records == 1_000_000 else f"spark-{records}"
    bench = Bench(
        name,
        params={
            "records": records,
            "shards": args.shards,
            "format": args.format,
            "defects_per_shard": args.defects,
        },
    )
    planted = json.loads((out / "defects.json").read_text(encoding="utf-8"))
    warm_page_cache(sorted(shard_set.iterdir()))
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as folder:
        check_runs(bench, shard_set, records, Path(folder), planted, max(1, args.rounds))
        spark_urls = importlib.util.find_spec("audit.engines.spark.urls") is not None
        if args.urls and spark_urls:
            url_runs(bench, args.urls, args.hosts, args.latency, Path(folder))
    bench.params["urls"] = args.urls if spark_urls else "no Spark URL stage"
    if args.results is not None:
        bench.finish(args.results)
    else:
        bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
