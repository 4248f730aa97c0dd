"""An exported file keeps the input's layout: indentation, key order and escapes, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from audit.export.layout import read_raw

RECORDS = [
    {"id": "a", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nहै"}]},
    {"id": 2, "conversations": [{"from": "gpt", "value": "x"}]},
    {"id": "c", "image": "c.jpg", "conversations": []},
]


def test_an_indented_array_keeps_its_indentation(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(RECORDS, indent=2))  # what json.dump(indent=2) writes
    raw = read_raw(path)
    assert raw.ids == ["a", "2", "c"] and raw.has_image == [True, False, True]
    assert raw.subset([0, 2]).decode() == json.dumps([RECORDS[0], RECORDS[2]], indent=2)
    assert raw.subset([1]).decode() == json.dumps([RECORDS[1]], indent=2)
    assert json.loads(raw.subset([])) == []


def test_a_compact_array_and_json_lines_stay_as_they_were(tmp_path: Path) -> None:
    compact = tmp_path / "metadata.json"
    compact.write_text(json.dumps(RECORDS))
    assert read_raw(compact).subset([1, 2]).decode() == json.dumps(RECORDS[1:])
    lines = tmp_path / "chat.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    raw = read_raw(lines)
    assert raw.jsonl and raw.subset([0, 2]).decode() == "".join(
        json.dumps(r) + "\n" for r in (RECORDS[0], RECORDS[2])
    )
