"""The ``spark-submit`` entry point: the llava-audit CLI in the driver spark-submit starts.

    spark-submit --master yarn --conf spark.executor.cores=4 \\
        "$(python -c 'import audit.engines.spark.submit as s; print(s.__file__)')" \\
        run --config audit.toml

spark-submit runs a Python *file*, not a console script; this one is the CLI with ``--engine
spark`` put after the command when it is not given, so the master, executors and conf are
spark-submit's (``[engine] master`` and ``--master`` still win when set). Executors need
llava-audit installed too (``pip install 'llava-audit[spark]'`` on every node, or a packed
environment: see the README's "Running on Spark").
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from audit.cli import main

#: the commands that take --engine (audit.cli._common.add_engine)
ENGINE_COMMANDS = frozenset({"check", "images", "urls", "license", "run", "gate"})


def argv_for_spark(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--engine spark`` after an engine-aware command that names no engine."""
    args = list(argv)
    if args and args[0] in ENGINE_COMMANDS and not any(a.startswith("--engine") for a in args):
        args[1:1] = ["--engine", "spark"]
    return args


if __name__ == "__main__":
    raise SystemExit(main(argv_for_spark(sys.argv[1:])))
