"""The engine seam: [engine] in audit.toml, --engine/--master on the commands, one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audit import config as config_mod
from audit import engines
from audit.cli import build_parser, main
from audit.errors import ConfigError, EngineError, UsageError

DATA = Path(__file__).parent / "data"


def test_engine_defaults_to_local() -> None:
    assert config_mod.Config().engine.name == "local"


def test_engine_section_is_read(tmp_path: Path) -> None:
    toml = tmp_path / "audit.toml"
    toml.write_text(
        '[engine]\nname = "spark"\nmaster = "local[2]"\n[engine.conf]\n"spark.x" = "1"\n'
    )
    engine = config_mod.load(toml).engine
    assert (engine.name, engine.master, engine.conf) == ("spark", "local[2]", {"spark.x": "1"})


def test_unknown_engine_names_the_choices(tmp_path: Path) -> None:
    toml = tmp_path / "audit.toml"
    toml.write_text('[engine]\nname = "ray"\n')
    with pytest.raises(ConfigError, match="local, spark"):
        config_mod.load(toml)


def test_command_line_overrides_the_config() -> None:
    config = engines.choose(config_mod.Config(), "spark", "local[1]")
    assert (config.engine.name, config.engine.master) == ("spark", "local[1]")
    assert engines.choose(config, None, None) is config


def test_master_without_spark_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        engines.choose(config_mod.Config(), None, "local[2]")


def test_missing_extra_is_one_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EngineError, match=r"llava-audit\[spark\]"):
        engines.require_spark()


@pytest.mark.parametrize("command", ["check", "images", "urls", "license", "run", "gate"])
def test_every_scaling_command_takes_engine_flags(command: str) -> None:
    files = ["x.json"] if command == "check" else []
    argv = [command, *files, "--engine", "spark", "--master", "local[1]"]
    args = build_parser().parse_args(argv)
    assert (args.engine, args.master) == ("spark", "local[1]")


def test_master_alone_exits_2_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["check", "--master", "local[2]", str(DATA / "blip_laion_cc_sbu_2k_head20.json")]) == 2
    )
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--engine spark" in err


def test_pandera_and_gx_load_without_pyspark_under_python_c() -> None:
    """With the spark extra installed, GX's import of pyspark.sql.connect exits a ``python -c``
    process (and every xdist worker) with status 0, and pandera imports pyspark.pandas: the local
    engine imports both without pyspark, and the process goes on."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from audit.checks import schema\n"
        "from audit.engines import without_pyspark\n"
        "with without_pyspark():\n"
        "    import pandera.polars\n"
        "from audit.probes import expectations\n"
        "expectations._context(None)\n"
        "print(sorted(m for m in sys.modules if m.startswith('pyspark') and sys.modules[m]))\n"
        "print('alive')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.stdout.splitlines()[-2:] == ["[]", "alive"], out.stderr[-500:]


def _check_on_spark(
    folder: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``llava-audit check SAMPLE --engine spark FLAGS`` run in ``folder``, its own process."""
    pytest.importorskip("pyspark")
    sample = DATA / "blip_laion_cc_sbu_2k_head20.json"
    argv = [sys.executable, "-m", "audit", "check", str(sample), "--engine", "spark", *flags]
    return subprocess.run(
        argv, env=env, cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_on_spark_without_java_is_one_line_while_the_files_are_planned(
    tmp_path: Path,
) -> None:
    """The session starts in a thread while check plans its files: what stops it still reaches
    the user as one line and an exit code, not a thread's traceback."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "SPARK_HOME")}
    env["PATH"] = str(Path(sys.executable).parent)  # this venv, no java
    done = _check_on_spark(tmp_path, env=env)
    assert done.returncode == EngineError.exit_code
    assert done.stderr.count("\n") == 1 and "Java 17" in done.stderr


def test_check_on_spark_refuses_a_findings_folder_holding_other_files(tmp_path: Path) -> None:
    """Spark's overwrite would empty it: ``--findings-dir .`` in a project folder. The error is
    told while the JVM starts (it holds standard error then), and not lost."""
    (tmp_path / "train.py").write_text("mine")
    done = _check_on_spark(tmp_path, "--findings-dir", ".")
    assert done.returncode == UsageError.exit_code
    assert done.stderr.count("\n") == 1 and "not a findings table" in done.stderr
    assert (tmp_path / "train.py").read_text() == "mine"
