"""Arbitrary JSON (and arbitrary bytes) never make the structural audit raise, including what only
``json.load`` reads (NaN, Infinity, lone surrogates) and nesting past Python's recursion limit."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.structure import check_files

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and +-Infinity: json.dumps writes them as json.load reads them
    | st.text(max_size=12)
    | st.text(st.characters() | SURROGATES, max_size=6)  # written as "\udXXX" escapes
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


def _audit(data: bytes, kind: str | None, *, readable: bool = False) -> None:
    """``readable``: json.load reads the data as an array, so the file must be audited."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.json"
        path.write_bytes(data)
        result = check_files([path], kind=kind, workers=1)
        assert result.stage == "structure"
        for finding in result.findings:
            assert finding.code and finding.message and "\n" not in finding.message
        if readable:
            assert result.unreadable == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON, kind=KINDS)
def test_arbitrary_json_never_raises(value: object, kind: str | None) -> None:
    _audit(json.dumps(value).encode(), kind)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(JSON, max_size=6), kind=KINDS)
def test_arbitrary_arrays_of_records_never_raise(records: list[object], kind: str | None) -> None:
    _audit(json.dumps(records).encode(), kind, readable=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(JSON, min_size=1, max_size=4),
    at=st.integers(0, 3),
    depth=st.integers(990, 3_000),
    opener=st.sampled_from(["[", '{"x": ']),
    kind=KINDS,
)
def test_records_nested_past_the_recursion_limit_never_raise(
    records: list[object], at: int, depth: int, opener: str, kind: str | None
) -> None:
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" + closer * depth
    texts = [json.dumps(r) for r in records]
    texts.insert(min(at, len(texts)), deep)
    _audit(("[" + ", ".join(texts) + "]").encode(), kind, readable=True)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    _audit(data, None)
