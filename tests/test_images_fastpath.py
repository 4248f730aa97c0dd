"""The cached run's shortcuts: GC paused only around bookkeeping, the clean-name fast path."""

from __future__ import annotations

import gc
import zipfile
from functools import partial
from pathlib import Path

import imagefactory as make
import pytest

from audit.errors import InputError, UsageError
from audit.loaders.imageroots import UnsafePathError, locate, locator, normalize, open_roots
from audit.models import ImageRef
from audit.probes import images as probe
from audit.store import Store


def test_gc_runs_while_probing_and_is_back_on_afterwards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zip_path = tmp_path / "images.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("a.jpg", make.jpeg(seed=1))
        zf.writestr("b.jpg", make.truncated_jpeg())
    seen: list[bool] = []
    real = probe.probe_batch

    def spy(*args: object) -> object:
        seen.append(gc.isenabled())  # Pillow's garbage and forked workers need the collector
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(probe, "probe_batch", spy)
    refs = [ImageRef(index=i, record_id=None, image=n) for i, n in enumerate(["a.jpg", "b.jpg"])]
    with Store(tmp_path / "state.sqlite") as store:
        first = probe.probe_images(refs, [zip_path], level="decode", store=store, workers=1)
        second = probe.probe_images(refs, [zip_path], level="decode", store=store, workers=1)
    assert seen == [True]  # one batch, probed with GC on; the cached run probes nothing
    assert gc.isenabled()
    assert [f.code for f in second.findings] == [f.code for f in first.findings]
    assert "image.truncated" in [f.code for f in second.findings]


def test_gc_is_back_on_when_a_run_fails(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        probe.probe_images([], [tmp_path], level="deep")
    with pytest.raises(InputError):
        probe.probe_images([], [tmp_path / "nowhere"], level="decode")
    assert gc.isenabled()


@pytest.mark.parametrize(
    "image", ["a.jpg", " a.jpg", "x/y.jpg", "./a.jpg", "x//y.jpg", "x/./y.jpg", "x/../a.jpg"]
)
def test_locate_finds_what_normalize_names(tmp_path: Path, image: str) -> None:
    (tmp_path / "x").mkdir()
    for name in ("a.jpg", " a.jpg", "x/y.jpg"):
        (tmp_path / name).write_bytes(b"1")
    roots = open_roots([tmp_path])
    for found in (locate(roots, image), locator(roots)(image), locator(roots * 2)(image)):
        assert found is not None and found.name == normalize(image)


@pytest.mark.parametrize("image", ["", "   ", "\t", "/etc/passwd", "../a.jpg", "C:/a.jpg", "a/.."])
def test_locate_refuses_what_normalize_refuses(tmp_path: Path, image: str) -> None:
    with pytest.raises(UnsafePathError):
        normalize(image)
    roots = open_roots([tmp_path])
    for find in (partial(locate, roots), locator(roots), locator(roots * 2)):
        with pytest.raises(UnsafePathError):
            find(image)


def test_a_changed_pixel_limit_probes_the_cached_image_again(tmp_path: Path) -> None:
    zip_path = tmp_path / "images.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("a.jpg", make.jpeg(seed=1))
    refs = [ImageRef(index=0, record_id=None, image="a.jpg")]
    with Store(tmp_path / "state.sqlite") as store:
        runs = [
            probe.probe_images(refs, [zip_path], level="header", store=store, max_pixels=limit)
            for limit in (probe.DEFAULT_MAX_PIXELS, probe.DEFAULT_MAX_PIXELS, 1_000, 1_000, 10**9)
        ]
    assert [(r.probed, r.cached) for r in runs] == [
        (1, 0),
        (0, 1),
        (1, 0),
        (0, 1),
        (1, 0),
    ]
    assert [r.status for r in runs] == [{"ok": 1}] * 2 + [{"too_large": 1}] * 2 + [{"ok": 1}]


def test_two_spellings_of_one_member_are_probed_once_and_share_the_verdict(tmp_path: Path) -> None:
    zip_path = tmp_path / "images.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("images/t.jpg", make.truncated_jpeg())
        zf.writestr("images/ok.jpg", make.jpeg(seed=2))
    names = ["t.jpg", "images/t.jpg", "./t.jpg", "ok.jpg", "t.jpg"]
    refs = [ImageRef(index=i, record_id=None, image=n) for i, n in enumerate(names)]
    with Store(tmp_path / "state.sqlite") as store:
        runs = [probe.probe_images(refs, [zip_path], level="decode", store=store) for _ in "ab"]
    for run in runs:
        truncated = [f.index for f in run.findings if f.code == "image.truncated"]
        assert truncated == [0, 1, 2, 4]
        assert run.status == {"ok": 1, "truncated": 4}
    assert [(r.probed, r.cached) for r in runs] == [(2, 0), (0, 2)]
