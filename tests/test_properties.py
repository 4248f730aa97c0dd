"""Arbitrary JSON (and arbitrary bytes) never make the structural audit raise."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.structure import check_files

SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
)
KEYS = st.sampled_from(["id", "image", "conversations", "from", "value", "model", "url", "x"])
JSON = st.recursive(
    SCALARS
    | st.sampled_from(["human", "gpt", "<image>", "<image>\nQ", "</s>", "a.jpg", "/abs", ""]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)
KINDS = st.sampled_from(
    [None, "instruct", "cc3m-chat", "cc3m-metadata", "lcs-chat", "lcs-metadata", "mix", "generic"]
)


def _audit(data: bytes, kind: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.json"
        path.write_bytes(data)
        result = check_files([path], kind=kind, workers=1)
        assert result.stage == "structure"
        for finding in result.findings:
            assert finding.code and finding.message


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON, kind=KINDS)
def test_arbitrary_json_never_raises(value: object, kind: str | None) -> None:
    _audit(json.dumps(value).encode(), kind)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(JSON, max_size=6), kind=KINDS)
def test_arbitrary_arrays_of_records_never_raise(records: list[object], kind: str | None) -> None:
    _audit(json.dumps(records).encode(), kind)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _audit(data, None)
