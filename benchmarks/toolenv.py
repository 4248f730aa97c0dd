"""Other tools a benchmark compares against, each in its own venv under ``benchmarks/``.

A competitor's dependencies (img2dataset pulls pandas, pyarrow, OpenCV, albumentations, wandb)
must never enter the project's lock, so each gets a venv made on first use from a pinned list in
``benchmarks/envs/<tool>.txt`` (``python3.11 -m venv`` + ``pip install -r``; needs PyPI once). The
venv remembers the hash of the list it was made from and is made again when the list changes.

    .venv/bin/python -m benchmarks.toolenv img2dataset     # create (or check) it, print its bin/
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENVS = HERE / "envs"
PYTHON = "python3.11"


def tool_venv(tool: str, python: str = PYTHON) -> Path:
    """The ``bin/`` folder of ``benchmarks/.venv-<tool>``, created from ``envs/<tool>.txt`` if needed."""
    pins = ENVS / f"{tool}.txt"
    if not pins.is_file():
        raise SystemExit(f"no pinned list for {tool}: {pins}")
    wanted = hashlib.sha256(pins.read_bytes()).hexdigest()
    venv = HERE / f".venv-{tool}"
    stamp = venv / "pins.sha256"
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return venv / "bin"
    if venv.exists():
        shutil.rmtree(venv)
    print(f"creating {venv} from {pins} (once) ...", file=sys.stderr, flush=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "-r", str(pins)], check=True)
    stamp.write_text(wanted + "\n")
    return venv / "bin"


if __name__ == "__main__":
    print(tool_venv(sys.argv[1] if len(sys.argv) > 1 else "img2dataset"))
