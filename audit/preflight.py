"""Pre-flight: every input a command will read is a regular file under its size cap, checked first.

A FIFO blocks its reader forever and ``/dev/zero`` never ends, so they must be refused before any
file is opened, any lock is taken or any work is done; each command and ``run`` call this with all
their inputs and get one error listing every bad one (exit 3). The check itself is
:func:`audit.loaders.regular_file`; this module only knows which config keys name inputs and
which ``[limits]`` cap applies to each.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from audit.config import Config, DatasetConfig
from audit.errors import InputError
from audit.loaders import Input, MissingInputError, input_problems, refuse, regular_file

#: (config key of a dataset, what it is, its [limits] setting)
_DATASET_FILES = (
    ("chat", "conversation file", "dataset_mb"),
    ("metadata", "metadata file", "dataset_mb"),
    ("url_tsv", "URL list", "dataset_mb"),
    ("coco_annotations", "COCO annotation file", "annotations_mb"),
)
DATASET_KEYS = tuple(key for key, _, _ in _DATASET_FILES)
#: the inputs that may be a shard set (a folder or glob of JSON Lines or Parquet shards)
_SET_INPUTS = ("conversation file", "metadata file", "URL list")


def file_input(config: Config, path: str | Path, what: str, setting: str) -> Input:
    """A file given on the command line, capped by ``[limits] <setting>`` of the config."""
    return Input(path, what, config.limits.bytes(setting), setting)


def dataset_inputs(
    config: Config, ds: DatasetConfig, keys: Iterable[str] = DATASET_KEYS
) -> list[Input]:
    """The files of one configured dataset named by ``keys`` (image roots: :func:`check`)."""
    wanted = set(keys)
    return [
        file_input(config, config.path(value), f"{what} of dataset {ds.name!r}", setting)
        for key, what, setting in _DATASET_FILES
        if key in wanted and (value := getattr(ds, key))
    ]


def license_inputs(config: Config) -> list[Input]:
    """The ``[license]`` files: the policy TOML and Visual Genome's image_data.json."""
    lic = config.license
    inputs = []
    if lic.policy:
        inputs.append(file_input(config, config.path(lic.policy), "licence policy", "policy_mb"))
    if lic.vg_image_data:
        what = "Visual Genome image data"
        inputs.append(file_input(config, config.path(lic.vg_image_data), what, "annotations_mb"))
    return inputs


def check_config_inputs(config: Config) -> None:
    """Refuse a run whose configured files or image roots are not all usable, naming each bad one."""
    check(
        [i for ds in config.datasets for i in dataset_inputs(config, ds)] + license_inputs(config),
        roots=[config.path(r) for ds in config.datasets for r in ds.images],
    )


def check(inputs: Iterable[Input], roots: Iterable[str | Path] = ()) -> None:
    """Refuse bad inputs and image roots: one error naming every problem (exit 3)."""
    refuse(_input_problems(inputs) + [p for root in roots if (p := _root_problem(Path(root)))])


def _input_problems(inputs: Iterable[Input]) -> list[InputError]:
    """A file through ``regular_file``; a shard set (folder, glob) through ``shards.expand``,
    which checks every shard the same way and refuses links out of the folder."""
    from audit.loaders.shards import expand, is_shard_set

    items = list(inputs)
    sets = [i for i in items if i.what.startswith(_SET_INPUTS) and is_shard_set(i.path)]
    problems = input_problems(i for i in items if i not in sets)
    for item in sets:
        try:
            expand(item.path, item.max_bytes, item.what)
        except InputError as exc:
            problems.append(exc)
    return problems


def _root_problem(root: Path) -> InputError | None:
    """An image root must be a folder or a zip; a missing one is the images stage's finding."""
    try:
        if root.is_dir():
            return None
        regular_file(root, "image root")
    except MissingInputError:
        return None  # the images stage reports it (image root not found)
    except InputError as exc:
        return exc
    return None
