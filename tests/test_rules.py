"""Mutation tests: a real LLaVA record broken in exactly one way yields exactly that finding code,
at that record's index, with the spec's severity; the untouched neighbours yield nothing.

The records are the real excerpts in tests/data, so these tests run without ../shared.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import realsamples

from audit.structure import check_files

Record = dict[str, Any]
TARGET = 2  # the mutated record's index; records 0, 1, 3, 4 stay real and clean


def _records(kind: str) -> list[Record]:
    """Five real records of ``kind`` (fresh copies: tests mutate them)."""
    if kind == "lcs-chat":
        return realsamples.load(realsamples.LCS_CHAT)[:5]
    if kind == "cc3m-chat":
        return realsamples.load(realsamples.CC3M_CHAT)
    base = realsamples.load(realsamples.INSTRUCT)[0]
    records = []
    for number in range(5):  # the one real instruct record under five real-shaped ids
        record = copy.deepcopy(base)
        record["id"] = f"{442786 + number:012d}"
        record["image"] = f"{record['id']}.jpg"
        records.append(record)
    if kind == "mix":
        for record in records:
            record["image"] = "coco/train2017/" + record["image"]
    return records


def _array(records: list[Any]) -> str:
    return json.dumps(records, indent=2)  # the releases' layout


def audit(
    tmp_path: Path, records: list[Any], kind: str, write: Callable[[list[Any]], str] = _array
) -> set[tuple[str, int | None, str]]:
    """(code, index, severity) of every finding except the per-file statistics."""
    path = tmp_path / f"{kind}.json"
    path.write_text(write(records), encoding="utf-8")
    result = check_files([path], kind=kind, workers=1)
    return {
        (f.code, f.index, f.severity.value)
        for f in result.findings
        if not f.code.startswith("stats.") and f.code != "file.record_count"
    }


def _human(r: Record) -> Record:
    return r["conversations"][0]


def _gpt(r: Record) -> Record:
    return r["conversations"][1]


def _set(key: str, value: Any) -> Callable[[Record], Any]:
    return lambda r: r.__setitem__(key, value)


def _move_image_to_answer(r: Record) -> None:
    _human(r)["value"] = _human(r)["value"].replace("<image>", "").strip()
    _gpt(r)["value"] += "\n<image>"


MUTATIONS: list[tuple[str, str, Callable[[Record], Any], str, str]] = [
    # (name, kind, mutate, code, severity)
    (
        "no conversations",
        "lcs-chat",
        lambda r: r.pop("conversations"),
        "record.conversations",
        "error",
    ),
    ("empty conversations", "lcs-chat", _set("conversations", []), "record.conversations", "error"),
    (
        "conversations not a list",
        "lcs-chat",
        _set("conversations", "hi"),
        "record.conversations",
        "error",
    ),
    (
        "turn not an object",
        "instruct",
        lambda r: r["conversations"].__setitem__(1, "ok"),
        "turn.not_object",
        "error",
    ),
    ("turn without value", "lcs-chat", lambda r: _gpt(r).pop("value"), "turn.keys", "error"),
    (
        "turn value null",
        "lcs-chat",
        lambda r: _gpt(r).__setitem__("value", None),
        "turn.keys",
        "error",
    ),
    (
        "turn from a number",
        "lcs-chat",
        lambda r: _gpt(r).__setitem__("from", 1),
        "turn.keys",
        "error",
    ),
    (
        "extra turn key",
        "lcs-chat",
        lambda r: _gpt(r).__setitem__("weight", 1),
        "turn.extra_key",
        "warning",
    ),
    (
        "role case",
        "lcs-chat",
        lambda r: _human(r).__setitem__("from", "Human"),
        "turn.role",
        "error",
    ),
    (
        "role user",
        "instruct",
        lambda r: _gpt(r).__setitem__("from", "assistant"),
        "turn.role",
        "error",
    ),
    (
        "roles swapped",
        "lcs-chat",
        lambda r: (_human(r).update({"from": "gpt"}), _gpt(r).update({"from": "human"})),
        "turn.order",
        "error",
    ),
    (
        "leading gpt",
        "instruct",
        lambda r: r["conversations"].insert(0, {"from": "gpt", "value": "Hello!"}),
        "turn.leading_gpt",
        "warning",
    ),
    (
        "ends with human",
        "instruct",
        lambda r: r["conversations"].append({"from": "human", "value": "And then?"}),
        "turn.order",
        "error",
    ),
    (
        "empty answer",
        "lcs-chat",
        lambda r: _gpt(r).__setitem__("value", ""),
        "turn.empty_value",
        "error",
    ),
    (
        "blank answer",
        "cc3m-chat",
        lambda r: _gpt(r).__setitem__("value", " \n "),
        "turn.empty_value",
        "error",
    ),
    (
        "eos in answer",
        "lcs-chat",
        lambda r: _gpt(r).__setitem__("value", "a cat</s>"),
        "turn.eos_token",
        "error",
    ),
    (
        "eos in the question",
        "instruct",
        lambda r: _human(r).__setitem__("value", "</s>" + _human(r)["value"]),
        "turn.eos_token",
        "error",
    ),
    (
        "role marker in the question",
        "instruct",
        lambda r: _human(r).__setitem__("value", "### " + _human(r)["value"]),
        "turn.role_marker",
        "warning",
    ),
    (
        "role marker",
        "instruct",
        lambda r: _gpt(r).__setitem__("value", "Sure. ASSISTANT: yes"),
        "turn.role_marker",
        "warning",
    ),
    (
        "no image token",
        "lcs-chat",
        lambda r: _human(r).__setitem__("value", _human(r)["value"].replace("<image>", "").strip()),
        "image_token.count",
        "error",
    ),
    (
        "two image tokens",
        "cc3m-chat",
        lambda r: _human(r).__setitem__("value", "<image>\n" + _human(r)["value"]),
        "image_token.count",
        "error",
    ),
    ("image token in answer", "lcs-chat", _move_image_to_answer, "image_token.position", "error"),
    (
        "image token mid-text",
        "instruct",
        lambda r: _human(r).__setitem__("value", "What do you see <image> happening?"),
        "image_token.placement",
        "warning",
    ),
    (
        "text-only with token",
        "instruct",
        lambda r: r.pop("image"),
        "image_token.text_only",
        "error",
    ),
    ("image empty", "generic", _set("image", ""), "image.path", "error"),
    ("image absolute", "generic", _set("image", "/data/coco/x.jpg"), "image.path", "error"),
    ("image escapes folder", "generic", _set("image", "../x.jpg"), "image.path", "error"),
    ("image null", "generic", _set("image", None), "image.path", "error"),
    ("image list", "lcs-chat", _set("image", ["a.jpg", "b.jpg"]), "image.path", "error"),
    ("id int", "lcs-chat", _set("id", 4539375), "record.id_type", "error"),
    ("id missing", "cc3m-chat", lambda r: r.pop("id"), "record.id_type", "error"),
    ("id int in mix", "mix", _set("id", 442788), "record.id_type", "warning"),
    ("id float", "instruct", _set("id", 1.5), "record.id_type", "error"),
    (
        "cc3m id",
        "cc3m-chat",
        lambda r: r.update(id="GCC_train_12", image="GCC_train_12.jpg"),
        "id.pattern",
        "error",
    ),
    (
        "cc3m image",
        "cc3m-chat",
        lambda r: r.update(image=r["id"] + ".png"),
        "image.path_pattern",
        "error",
    ),
    (
        "lcs id",
        "lcs-chat",
        lambda r: r.update(id="12345678", image="12345/12345678.jpg"),
        "id.pattern",
        "error",
    ),
    (
        "lcs image",
        "lcs-chat",
        lambda r: r.update(image=r["id"] + ".jpg"),
        "image.path_pattern",
        "error",
    ),
    (
        "instruct id",
        "instruct",
        lambda r: r.update(id="442786", image="442786.jpg"),
        "id.pattern",
        "error",
    ),
    (
        "instruct 2014 name",
        "instruct",
        lambda r: r.update(image="COCO_train2014_" + r["image"]),
        "image.path_pattern",
        "error",
    ),
    (
        "pretraining with 4 turns",
        "lcs-chat",
        lambda r: r["conversations"].extend(
            [{"from": "human", "value": "More?"}, {"from": "gpt", "value": "No."}]
        ),
        "turn.count",
        "error",
    ),
    (
        "unknown prompt",
        "cc3m-chat",
        lambda r: _human(r).__setitem__("value", "Tell me about it.\n<image>"),
        "prompt.unknown",
        "warning",
    ),
    (
        "too long",
        "instruct",
        lambda r: _gpt(r).__setitem__("value", "word " * 2000),
        "turn.too_long",
        "warning",
    ),
    ("extra record key", "lcs-chat", _set("source", "laion"), "record.extra_key", "info"),
    ("mix folder", "mix", _set("image", "flickr30k/123.jpg"), "mix.prefix", "error"),
    (
        "mix coco id",
        "mix",
        lambda r: r.update(id="123", image="coco/train2017/123.jpg"),
        "id.pattern",
        "warning",
    ),
    (
        "mix text-only without model",
        "mix",
        lambda r: (r.pop("image"), _human(r).__setitem__("value", "Hello?")),
        "mix.model_key",
        "info",
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "code", "severity"),
    [m[1:] for m in MUTATIONS],
    ids=[m[0] for m in MUTATIONS],
)
def test_each_rule_catches_its_mutation(
    tmp_path: Path,
    kind: str,
    mutate: Callable[[Record], Any],
    code: str,
    severity: str,
) -> None:
    records = _records(kind)
    assert audit(tmp_path, records, kind) == set(), "the unmutated records must be clean"
    mutate(records[TARGET])
    assert audit(tmp_path, records, kind) == {(code, TARGET, severity)}


def _not_an_object(records: list[Any]) -> str:
    records[TARGET] = 42
    return _array(records)


def _exact_duplicate(records: list[Any]) -> str:
    records[3] = copy.deepcopy(records[1])
    return _array(records)


def _json_lines_with_a_cut_line(records: list[Any]) -> str:
    lines = [json.dumps(r) for r in records]
    lines[TARGET] = lines[TARGET][: len(lines[TARGET]) // 2]  # a record cut mid-line
    return "\n".join(lines) + "\n"


def _raw(records: list[Any]) -> tuple[str, str, str]:
    """The file text, and the target record's id and answer as they appear in it (once each):
    json.dumps cannot write NaN keys, lone surrogates or 1,200 levels, so those are text edits."""
    text = _array(records)
    rid, answer = json.dumps(records[TARGET]["id"]), json.dumps(_gpt(records[TARGET])["value"])
    assert text.count(rid) == text.count(answer) == 1
    return text, rid, answer


def _nan_in_an_extra_key(records: list[Any]) -> str:
    text, rid, _ = _raw(records)
    return text.replace(f'"id": {rid}', f'"model": NaN, "id": {rid}')


def _lone_surrogate_in_the_answer(records: list[Any]) -> str:
    text, _, answer = _raw(records)
    return text.replace(answer, answer[:-1] + '\\ud800"')


def _answer_nested_1200_deep(records: list[Any]) -> str:
    text, _, answer = _raw(records)
    return text.replace(f'"value": {answer}', '"value": ' + "[" * 1200 + "]" * 1200)


WHOLE_FILE: list[tuple[str, str, Callable[[list[Any]], str], set[tuple[str, int | None, str]]]] = [
    # (name, kind, write the file from the real records, expected findings)
    ("record not an object", "lcs-chat", _not_an_object, {("record.not_object", TARGET, "error")}),
    (
        "exact duplicate: a warning on the later copy",
        "cc3m-chat",
        _exact_duplicate,
        {("record.duplicate", 3, "warning")},
    ),
    (
        "json lines with a cut line",
        "lcs-chat",
        _json_lines_with_a_cut_line,
        {("file.jsonl", None, "error"), ("record.invalid_json", TARGET, "error")},
    ),
    ("NaN", "lcs-chat", _nan_in_an_extra_key, {("record.non_finite", TARGET, "warning")}),
    (
        "lone surrogate",
        "cc3m-chat",
        _lone_surrogate_in_the_answer,
        {("record.lone_surrogate", TARGET, "error")},
    ),
    (
        "1,200 levels deep",
        "lcs-chat",
        _answer_nested_1200_deep,
        {("record.too_deep", TARGET, "error")},
    ),
]


@pytest.mark.parametrize(
    ("kind", "write", "expected"), [w[1:] for w in WHOLE_FILE], ids=[w[0] for w in WHOLE_FILE]
)
def test_each_file_rule_catches_its_mutation(
    tmp_path: Path,
    kind: str,
    write: Callable[[list[Any]], str],
    expected: set[tuple[str, int | None, str]],
) -> None:
    assert audit(tmp_path, _records(kind), kind, write) == expected


def test_repeated_ids_are_counted_not_reported(tmp_path: Path) -> None:
    records = _records("instruct")
    records[3]["conversations"][1]["value"] = "Another answer about the same image."
    records[3]["id"], records[3]["image"] = records[1]["id"], records[1]["image"]
    path = tmp_path / "instruct.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    result = check_files([path], kind="instruct", workers=1)
    assert not [f for f in result.findings if f.severity.value != "info"]
    assert result.files[str(path)].duplicates.repeated_ids == 1


def test_one_bad_record_does_not_hide_the_others(tmp_path: Path) -> None:
    records: list[Any] = _records("lcs-chat")
    records[1] = "not a record"
    records[3]["conversations"][0]["from"] = "user"
    assert audit(tmp_path, records, "lcs-chat") == {
        ("record.not_object", 1, "error"),
        ("turn.role", 3, "error"),
    }


def _pair(
    tmp_path: Path, chat: list[Record], meta: list[Record]
) -> set[tuple[str, str, int | None]]:
    """(file name, code, index) of the non-statistics findings of a chat + metadata pair."""
    folder = tmp_path / "cc3m"
    folder.mkdir(exist_ok=True)
    (folder / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    (folder / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    result = check_files([folder / "chat.json", folder / "metadata.json"], workers=1)
    return {
        (Path(f.file).name, f.code, f.index)
        for f in result.findings
        if not f.code.startswith("stats.") and f.code != "file.record_count"
    }


def _metadata(chat: list[Record]) -> list[Record]:
    """Metadata records as the CC-3M card describes them, derived from the real chat records."""
    return [
        {
            "id": r["id"],
            "image": r["image"],
            "caption": r["conversations"][1]["value"],
            "url": f"http://example.invalid/{r['id']}.jpg",
            "blip_caption": "a photo",
        }
        for r in chat
    ]


CROSS_FILE: list[
    tuple[str, Callable[[list[Record], list[Record]], Any], set[tuple[str, str, int]]]
] = [
    (
        "metadata lacks a record",
        lambda c, m: m.pop(TARGET),
        {("chat.json", "xfile.missing_metadata", TARGET)},
    ),
    (
        "metadata has an extra record",
        lambda c, m: m.append(
            {**m[0], "id": "GCC_train_000000001", "image": "GCC_train_000000001.jpg"}
        ),
        {("metadata.json", "xfile.missing_chat", 5)},
    ),
    (
        "image differs",
        lambda c, m: m[TARGET].update(image="GCC_train_000000001.jpg"),
        {
            ("chat.json", "xfile.image_mismatch", TARGET),
            ("metadata.json", "image.path_pattern", TARGET),
        },
    ),
    (
        "caption differs",
        lambda c, m: m[TARGET].update(caption="a different caption ."),
        {("chat.json", "xfile.caption_mismatch", TARGET)},
    ),
    (
        "url null",
        lambda c, m: m[TARGET].update(url=None),
        {("metadata.json", "metadata.field", TARGET)},
    ),
    (
        "url empty",
        lambda c, m: m[TARGET].update(url=""),
        {("metadata.json", "metadata.field", TARGET)},
    ),
    (
        "metadata image empty",
        lambda c, m: m[TARGET].update(image=""),
        {("metadata.json", "image.path", TARGET)},
    ),
    (
        "metadata id pattern",
        lambda c, m: m.append({**m[0], "id": "GCC_12", "image": "GCC_12.jpg"}),
        {("metadata.json", "id.pattern", 5), ("metadata.json", "xfile.missing_chat", 5)},
    ),
    (
        "metadata id is an index",  # ids no longer match: each side reports its unmatched record
        lambda c, m: m[TARGET].update(id=5),
        {
            ("chat.json", "xfile.missing_metadata", TARGET),
            ("metadata.json", "xfile.missing_chat", TARGET),
        },
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in CROSS_FILE], ids=[c[0] for c in CROSS_FILE]
)
def test_chat_against_metadata(
    tmp_path: Path,
    mutate: Callable[[list[Record], list[Record]], Any],
    expected: set[tuple[str, str, int]],
) -> None:
    chat = _records("cc3m-chat")
    meta = _metadata(chat)
    assert _pair(tmp_path, chat, meta) == set()
    mutate(chat, meta)
    assert _pair(tmp_path, chat, meta) == expected


def test_record_count_against_the_release() -> None:
    """Rule 4: a subset is information, a near miss of the release count a warning."""
    from audit.checks.stats import record_count
    from audit.checks.tables import FileRef

    ref = FileRef("d", "f.json", "cc3m-chat")
    assert record_count(ref, 595_375) == []
    assert [f.severity.value for f in record_count(ref, 2_000)] == ["info"]
    assert [f.severity.value for f in record_count(ref, 595_000)] == ["warning"]


# ---- the mutation tests themselves: complete, and never skipped --------------------------------


def test_every_record_rule_in_the_catalogue_has_a_mutation_case() -> None:
    """A new record rule must come with its mutation case. File-format defects (``file.*``) are
    broken in test_file_defects.py; ``stats.*`` are statistics, not rules."""
    from audit.catalogue import structure

    covered = (
        {m[3] for m in MUTATIONS}
        | {code for w in WHOLE_FILE for code, _, _ in w[3]}
        | {code for c in CROSS_FILE for _, code, _ in c[2]}
    )
    rules = {e.code for e in structure.ENTRIES if not e.code.startswith(("file.", "stats."))}
    assert rules - covered == set()


def test_the_mutation_tests_run_without_the_shared_folder() -> None:
    """No test here takes the ``realdata`` fixture (which skips without ../shared), and every kind's
    real records come from tests/data, enough of them to break one and keep its neighbours."""
    tests = [f for name, f in globals().items() if name.startswith("test_") and callable(f)]
    assert [f.__name__ for f in tests if "realdata" in inspect.signature(f).parameters] == []
    for kind in {m[1] for m in MUTATIONS} | {w[1] for w in WHOLE_FILE}:
        assert len(_records(kind)) == 5 > TARGET, kind
