"""Inputs that are not regular files, or are too big, are refused before anything opens them.

The whole command x scenario matrix runs in ``test_hostile_matrix.py`` (subprocesses); these are
the in-process details: the loaders never block on a FIFO, ``run`` lists every bad input before
taking its lock, the ``[limits]`` caps are settings, and the one error line is printed as text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audit import config as config_mod
from audit.cli import main
from audit.errors import AuditError, ConfigError, InputError
from audit.loaders import MB, read_input, regular_file
from audit.loaders.coco import load_coco_licences, load_vg_coco_ids
from audit.loaders.urlsources import load_url_refs
from audit.runner import run_audit

RECORD = {
    "id": "000000001",
    "image": "000000001.jpg",
    "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"},
        {"from": "gpt", "value": "A cat."},
    ],
}


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.json"
    os.mkfifo(path)
    return path


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def _config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "good.json").write_text(json.dumps([RECORD]))
    path = tmp_path / "audit.toml"
    path.write_text(body)
    return path


# ---- the loaders: refused without opening ---------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "read",
    [
        lambda p: read_input(p, "URL list"),
        load_url_refs,
        load_coco_licences,
        load_vg_coco_ids,
    ],
    ids=["read_input", "url list", "coco", "visual genome"],
)
def test_loaders_refuse_a_fifo_without_blocking(read: object, fifo: Path) -> None:
    with pytest.raises(InputError, match="is a FIFO, not a regular file"):
        read(fifo)  # type: ignore[operator]


def test_regular_file_names_what_the_path_is(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to("/dev/null")
    with pytest.raises(InputError) as caught:
        regular_file(link, "metadata file")
    assert caught.value.message == (
        f"{link}: metadata file is a character device (a symlink to /dev/null), not a regular file"
    )
    with pytest.raises(InputError, match="NUL byte"):
        regular_file(tmp_path / "a\x00b.json", "metadata file")


def test_size_cap_names_size_limit_and_setting(tmp_path: Path) -> None:
    big = _sparse(tmp_path / "instances.json", 5 * (1 << 30))
    with pytest.raises(InputError) as caught:
        read_input(big, "COCO annotation file", 4096 * MB, "annotations_mb")
    assert caught.value.message == (
        f"{big}: COCO annotation file is 5 GB, over the 4 GB limit; "
        "raise [limits] annotations_mb in audit.toml"
    )


def test_empty_coco_file_says_it_is_empty(tmp_path: Path) -> None:
    (tmp_path / "captions.json").write_bytes(b"")
    with pytest.raises(InputError, match="COCO annotation file is empty"):
        load_coco_licences(tmp_path / "captions.json")


# ---- [limits]: settings, validated, honoured ----------------------------------------------------


def test_limits_are_settings_with_sane_defaults(tmp_path: Path) -> None:
    limits = config_mod.Config().limits
    assert limits.dataset_mb * MB > 1 << 30  # mix665k is ~1 GB
    assert limits.annotations_mb * MB > 450 * MB  # COCO instances_train2017.json
    path = _config(tmp_path, "[limits]\nannotations_mb = 0\n")
    with pytest.raises(ConfigError, match="annotations_mb"):
        config_mod.load(path)


def test_raised_cap_lets_a_big_file_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.dumps([RECORD]).encode()
    (tmp_path / "chat.json").write_bytes(data + b" " * (2 * MB))
    small = _config(tmp_path, "[limits]\ndataset_mb = 1\n")
    assert main(["check", str(tmp_path / "chat.json"), "--config", str(small)]) == 3
    err = capsys.readouterr().err
    assert "is 2 MB, over the 1 MB limit; raise [limits] dataset_mb in audit.toml" in err
    assert main(["check", str(tmp_path / "chat.json")]) != 3  # the default cap is far higher
    assert "limit" not in capsys.readouterr().err


def test_config_file_over_its_cap_is_a_config_error(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "audit.toml", config_mod.CONFIG_MAX_BYTES + 1)
    with pytest.raises(ConfigError, match="config file is 16 MB, over the 16 MB limit"):
        config_mod.load(path)


# ---- run: every bad input listed, before the lock and the state store ----------------------


@pytest.mark.timeout(60)
def test_run_lists_every_bad_input_before_taking_the_lock(tmp_path: Path, fifo: Path) -> None:
    path = _config(
        tmp_path,
        f"""
[[datasets]]
name = "a"
chat = "{fifo.name}"
metadata = "/dev/zero"
coco_annotations = "missing.json"
images = ["good.json", "{fifo.name}"]

[license]
policy = "."
""",
    )
    config = config_mod.load(path)
    with pytest.raises(AuditError) as caught:
        run_audit(config)
    message = caught.value.message
    assert message.startswith("5 inputs cannot be read: ")
    for problem in (
        "pipe.json: conversation file of dataset 'a' is a FIFO",
        "/dev/zero: metadata file of dataset 'a' is a character device",
        "missing.json: COCO annotation file of dataset 'a' not found",
        "licence policy is a directory",
        "pipe.json: image root is a FIFO",
    ):
        assert problem in message
    assert not (tmp_path / ".llava-audit").exists(), "no lock, no state store: no work done"
    assert not (tmp_path / "reports").exists()


# ---- the one error line -----------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("option", ["--vg-image-data", "--metadata"])
def test_license_file_options_refuse_a_fifo(
    option: str, tmp_path: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config(tmp_path, "")
    assert main(["license", str(tmp_path / "good.json"), option, str(fifo)]) == 3
    assert "pipe.json" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_takedown_steps_refuse_a_fifo_dataset(
    tmp_path: Path, fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, f'[[datasets]]\nname = "a"\nchat = "{fifo.name}"\n')
    new = ["takedown", "new", "--config", str(path), "--ground", "copyright"]
    assert main([*new, "--contact", "x@example.org", "--record-id", "1"]) == 0
    request = capsys.readouterr().out.split()[0]
    for step in ("match", "apply", "verify"):
        assert main(["takedown", step, request, "--config", str(path)]) == 3
        assert "is a FIFO, not a regular file" in capsys.readouterr().err


def test_error_line_is_printed_as_text_not_markup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "[bold]chat[red].json"
    odd.mkdir()
    assert main(["urls", str(odd)]) == 3
    assert "[bold]chat[red].json: URL list is a directory" in capsys.readouterr().err


# ---- records too deep for any recursive decoder ---------------------------------------------


def test_takedown_match_finds_a_record_nested_too_deep_to_decode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = {"id": "GCC_train_000000009", "url": "https://example.org/9.jpg"}
    text = json.dumps([RECORD, deep])[:-2] + ', "z": ' + "[" * 5000 + "]" * 5000 + "}]"
    (tmp_path / "meta.json").write_text(text)
    cfg = tmp_path / "audit.toml"
    cfg.write_text(
        'state = "st/state.sqlite"\nreports_dir = "rep"\n'
        '[[datasets]]\nname = "d"\nkind = "cc3m-metadata"\nmetadata = "meta.json"\n'
    )
    args = ["--config", str(cfg)]
    assert main(["takedown", "new", "--ground", "copyright", "--contact", "a@b.c",
                 "--record-id", "GCC_train_000000009", *args]) == 0  # fmt: skip
    request = next(w for w in capsys.readouterr().out.split() if w.startswith("TD-"))
    assert main(["takedown", "match", request, *args]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert out.out.startswith("1 affected record(s)")


def test_shallow_keeps_top_level_scalars_and_blanks_nested_values() -> None:
    from audit.loaders.jsonscan import shallow

    raw = b'{"id": "a\\"[", "n": 1, "z": [[{"q": "]"}]], "url": "u"}'
    assert json.loads(shallow(raw)) == {"id": 'a"[', "n": 1, "z": 0, "url": "u"}
