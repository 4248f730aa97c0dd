"""Loaders: kind detection from content, the typed fast path, the per-record fallback, metadata
key discovery, and the reference lists other stages build on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cc3m_records import cc3m_records

from audit.loaders.jsonfile import iter_array_chunks
from audit.loaders.kindguess import KindGuess, guess_kind
from audit.loaders.records import (
    NotStreamableError,
    RecordStream,
    UnreadableFileError,
    detect_kind,
    image_refs,
    load_records,
    open_stream,
    raw_records,
    url_refs,
)
from audit.models import ChatRecord, MetadataRecord

CHAT = [
    {
        "id": "GCC_train_002582585",
        "image": "GCC_train_002582585.jpg",
        "conversations": [
            {"from": "human", "value": "Provide a brief description of the given image.\n<image>"},
            {"from": "gpt", "value": "olive oil is a healthy ingredient used liberally ."},
        ],
    }
]


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("record", "kind"),
    [
        (
            {"id": "GCC_train_000000001", "image": "GCC_train_000000001.jpg", "conversations": []},
            "cc3m-chat",
        ),
        ({"id": "004539375", "image": "00453/004539375.jpg", "conversations": []}, "lcs-chat"),
        ({"id": "000000442786", "image": "000000442786.jpg", "conversations": []}, "instruct"),
        ({"id": 2327515, "image": "gqa/images/2327515.jpg", "conversations": []}, "mix"),
        ({"id": "wgByO4Y_0", "model": "", "conversations": []}, "mix"),
        ({"id": "abc", "image": "x/y.png", "conversations": []}, "generic"),
        ({"id": "GCC_train_000000001", "url": "http://a/b.jpg", "caption": "c"}, "cc3m-metadata"),
        (
            {
                "id": "004539375",
                "image": "00453/004539375.jpg",
                "url": "http://a",
                "blip_caption": "c",
            },
            "lcs-metadata",
        ),
    ],
)
def test_kind_is_detected_from_content_not_name(
    tmp_path: Path, record: dict[str, object], kind: str
) -> None:
    assert detect_kind(_write(tmp_path, "renamed.json", [record, record])) == kind


def test_file_name_breaks_ties_when_content_says_nothing(tmp_path: Path) -> None:
    assert detect_kind(_write(tmp_path, "llava_v1_5_mix665k.json", [])) == "mix"
    assert detect_kind(_write(tmp_path, "other.json", [])) == "generic"


def test_fast_path_returns_typed_records_in_file_order(tmp_path: Path) -> None:
    loaded = load_records(_write(tmp_path, "chat.json", CHAT * 3))
    assert loaded.kind == "cc3m-chat" and loaded.total == 3 and loaded.index is None
    assert all(isinstance(r, ChatRecord) for r in loaded.records)
    assert loaded.records[0].conversations[1].value.startswith("olive oil")
    assert [i for i, _ in loaded.items()] == [0, 1, 2]
    assert loaded.findings == []


def test_one_bad_record_becomes_a_finding_and_the_rest_loads(tmp_path: Path) -> None:
    records = [*CHAT, {"id": "GCC_train_000000002", "conversations": [{"from": "human"}]}, *CHAT]
    loaded = load_records(_write(tmp_path, "chat.json", records))
    assert loaded.total == 3
    assert loaded.index == [0, 2]
    assert [(f.code, f.index, f.record_id) for f in loaded.findings] == [
        ("turn.keys", 1, "GCC_train_000000002")
    ]


def test_extra_turn_key_is_reported_and_the_record_kept(tmp_path: Path) -> None:
    record = json.loads(json.dumps(CHAT[0]))
    record["conversations"][0]["weight"] = 0
    loaded = load_records(_write(tmp_path, "chat.json", [record]))
    assert [f.code for f in loaded.findings] == ["turn.extra_key"]
    assert loaded.records[0].conversations[0].value.endswith("<image>")


def test_metadata_keys_are_discovered_from_the_file(tmp_path: Path) -> None:
    meta = [
        {
            "index": "GCC_train_000000001",
            "file_name": "GCC_train_000000001.jpg",
            "image_url": "http://x/1.jpg",
        }
    ]
    path = _write(tmp_path, "metadata.json", meta)
    loaded = load_records(path, "cc3m-metadata")
    assert loaded.metadata_keys == {"id": "index", "image": "file_name", "url": "image_url"}
    record = loaded.records[0]
    assert isinstance(record, MetadataRecord)
    assert (record.id, record.image, record.url, record.caption) == (
        "GCC_train_000000001",
        "GCC_train_000000001.jpg",
        "http://x/1.jpg",
        None,
    )
    assert [(u.index, u.url, u.image) for u in url_refs(path)] == [
        (0, "http://x/1.jpg", "GCC_train_000000001.jpg")
    ]


def test_image_refs_skip_text_only_and_bad_images(tmp_path: Path) -> None:
    records = [*CHAT, {"id": "t", "conversations": []}, {**CHAT[0], "image": ""}]
    refs = image_refs(_write(tmp_path, "chat.json", records))
    assert [(r.index, r.record_id, r.image) for r in refs] == [
        (0, "GCC_train_002582585", "GCC_train_002582585.jpg")
    ]
    assert url_refs(_write(tmp_path, "c.json", CHAT)) == []


def test_raw_records_keep_exact_bytes_and_the_container(tmp_path: Path) -> None:
    path = _write(tmp_path, "chat.json", CHAT * 2)
    container, elements = raw_records(path)
    assert container == "array" and len(elements) == 2
    assert json.loads(elements[1]) == CHAT[0]
    lines = tmp_path / "chat.jsonl"
    lines.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in CHAT * 2))
    assert raw_records(lines)[0] == "jsonl"


def test_unreadable_file_raises_with_its_finding(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'{"conversations": []}')
    with pytest.raises(UnreadableFileError) as exc:
        load_records(path)
    assert exc.value.finding.code == "file.not_array"
    assert exc.value.exit_code == 3


def test_streamed_chunks_match_the_whole_file_decode(realdata: Path) -> None:
    """Chunk boundaries (here every few records) never split or drop a record."""
    path = realdata / "raw" / "haotian-liu_LLaVA_pr1902__blip_laion_cc_sbu_2k.json"
    stream = open_stream(path)
    decoder = msgspec.json.Decoder(list[stream.record_type])
    chunks = list(iter_array_chunks(path, decoder, chunk_bytes=2_000))
    assert len(chunks) > 100
    streamed = [r for chunk in chunks for r in chunk]
    assert streamed == load_records(path).records


def _streamed(path: Path, chunk_bytes: int = 2_000) -> tuple[RecordStream, list[Any]]:
    stream = open_stream(path, chunk_bytes=chunk_bytes)
    return stream, [r for chunk in stream for r in chunk]


def test_a_bad_record_takes_only_its_chunk_off_the_fast_path(tmp_path: Path) -> None:
    """A null value in the middle chunk: the same findings at the same index as the whole-file
    fallback, the record left out of the positions, and every other chunk typed-decoded."""
    records = cc3m_records(40)
    records[20]["conversations"][1]["value"] = None
    path = _write(tmp_path, "chat.json", records)
    stream, streamed = _streamed(path)
    whole = load_records(path)
    assert [(f.code, f.index, f.record_id) for f in stream.findings] == [
        ("turn.keys", 20, "GCC_train_000000020")
    ]
    assert stream.findings == whole.findings
    assert streamed == whole.records and len(streamed) == 39
    assert stream.positions() == whole.index == [*range(20), *range(21, 40)]
    assert stream.stats["chunks"] >= 5 and stream.stats["untyped_chunks"] == 1
    assert stream.stats["elements"] == 40


@pytest.mark.parametrize("compact", [False, True], ids=["indented", "compact"])
def test_bad_records_in_several_chunks_match_the_whole_file_fallback(
    tmp_path: Path, compact: bool
) -> None:
    records = cc3m_records(60)
    records[0]["conversations"][0]["lang"] = "en"  # kept, with a warning
    records[21] = "not a record"  # dropped
    records[22]["id"] = 1.5  # kept, id dropped
    records[23]["conversations"] = None  # dropped
    records[59]["conversations"][1]["value"] = 7  # dropped
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(records, indent=None if compact else 2), encoding="utf-8")
    stream, streamed = _streamed(path, 1_500)
    whole = load_records(path, "cc3m-chat")
    assert [(f.code, f.index) for f in stream.findings] == [
        ("turn.extra_key", 0),
        ("record.not_object", 21),
        ("record.id_type", 22),
        ("record.conversations", 23),
        ("turn.keys", 59),
    ]
    assert stream.findings == whole.findings
    assert streamed == whole.records
    assert stream.positions() == whole.index
    assert 3 <= stream.stats["untyped_chunks"] < stream.stats["chunks"]


def test_metadata_chunk_with_a_bad_field_matches_the_whole_file_fallback(tmp_path: Path) -> None:
    meta = [
        {"id": f"GCC_train_{i:09d}", "url": f"http://x/{i}.jpg", "caption": "a photo ."}
        for i in range(50)
    ]
    meta[30]["url"] = ["http://x/30.jpg"]
    path = _write(tmp_path, "metadata.json", meta)
    stream, streamed = _streamed(path, 1_000)
    whole = load_records(path)
    assert [(f.code, f.index) for f in stream.findings] == [("metadata.field", 30)]
    assert stream.findings == whole.findings and streamed == whole.records
    assert stream.positions() == whole.index
    assert stream.stats["untyped_chunks"] == 1 < stream.stats["chunks"]


def test_stream_refuses_what_needs_the_careful_path(tmp_path: Path) -> None:
    lines = tmp_path / "chat.jsonl"
    lines.write_text(json.dumps(CHAT[0]) + "\n" + json.dumps(CHAT[0]) + "\n", encoding="utf-8")
    data = json.dumps(cc3m_records(30), indent=2).encode()
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(data[:-100])
    bad_then_cut = tmp_path / "bad_then_cut.json"
    bad_then_cut.write_bytes(data.replace(b'"gpt"', b"null", 1)[:-100])
    for path in (lines, truncated, bad_then_cut):
        with pytest.raises(NotStreamableError):
            list(open_stream(path, "cc3m-chat", chunk_bytes=2_000))


def test_bad_utf8_anywhere_sends_a_file_with_a_bad_record_the_careful_way(tmp_path: Path) -> None:
    """The typed decode skips keys it does not know; the careful path would still repair and
    report bad UTF-8 in them, so a stream that meets a bad record checks the whole file first."""
    meta = [{"id": f"GCC_train_{i:09d}", "url": "http://x", "note": "n"} for i in range(40)]
    meta[2]["url"] = 3
    data = json.dumps(meta, indent=2).encode()
    cut = data.rindex(b'"n"')
    path = tmp_path / "metadata.json"
    path.write_bytes(data[:cut] + b'"\xe9"' + data[cut + 3 :])
    with pytest.raises(NotStreamableError):
        list(open_stream(path, chunk_bytes=1_000))
    assert [f.code for f in load_records(path).findings] == ["file.encoding", "metadata.field"]


def test_compact_arrays_stream_too(realdata: Path, tmp_path: Path) -> None:
    records = json.loads((realdata / "lcs558k_samples.json").read_text(encoding="utf-8"))
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(records), encoding="utf-8")
    stream = open_stream(compact)
    decoder = msgspec.json.Decoder(list[stream.record_type])
    chunks = list(iter_array_chunks(compact, decoder, chunk_bytes=1_000))
    assert len(chunks) > 5
    assert [r for chunk in chunks for r in chunk] == load_records(compact).records


def test_known_release_is_recognised_by_size_and_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from audit.loaders import records

    path = _write(tmp_path, "llava_instruct_150k.json", CHAT)
    data = path.read_bytes()
    monkeypatch.setattr(
        records, "KNOWN_RELEASES", {len(data): ("release.json", hashlib.sha256(data).hexdigest())}
    )
    assert records.known_release(path) == "release.json"
    path.write_bytes(data.replace(b"olive", b"olivE"))  # same size, other bytes
    assert records.known_release(path) is None


def _instruct(n: int) -> list[dict[str, object]]:
    return [
        {"id": f"{i:012d}", "image": f"{i:012d}.jpg", "conversations": CHAT[0]["conversations"]}
        for i in range(n)
    ]


def test_one_integer_id_does_not_make_an_instruct_file_mix(tmp_path: Path) -> None:
    records = _instruct(8)
    records[4]["id"] = 446822  # the demo's planted record.id_type
    guess = guess_kind(_write(tmp_path, "llava_instruct_150k.json", records))
    assert guess == KindGuess("instruct")


def test_kind_is_read_from_records_spread_over_a_large_file(tmp_path: Path) -> None:
    records = _instruct(6000)  # about 2 MB: sampled in windows, not read whole
    for record in records[:300]:  # odd records at the start only
        record["id"] = 7
        record["image"] = "gqa/images/7.jpg"
    path = _write(tmp_path, "renamed.json", records)
    assert path.stat().st_size > 1 << 20
    assert detect_kind(path) == "instruct"


def test_split_records_are_a_guess_that_says_so(tmp_path: Path) -> None:
    lcs = {"id": "004539375", "image": "00453/004539375.jpg", "conversations": []}
    path = _write(tmp_path, "renamed.json", [*_instruct(5), *[lcs] * 5])
    guess = guess_kind(path)
    assert guess.note is not None and "disagree" in guess.note
    assert "5 instruct" in guess.note and "5 lcs-chat" in guess.note
    named = _write(tmp_path, "blip_laion_cc_sbu_558k.json", [*_instruct(5), *[lcs] * 5])
    assert guess_kind(named).kind == "lcs-chat"  # the release name breaks the tie


def test_records_win_over_a_misleading_name_and_the_guess_says_so(tmp_path: Path) -> None:
    guess = guess_kind(_write(tmp_path, "blip_laion_cc_sbu_558k.json", _instruct(4)))
    assert guess.kind == "instruct"
    assert guess.note == "the file name suggests lcs-chat but the sampled records look instruct"


def test_chat_and_metadata_names_count_only_in_the_cc3m_folder(tmp_path: Path) -> None:
    release = tmp_path / "LLaVA-CC3M-Pretrain-595K"
    release.mkdir()
    assert detect_kind(_write(release, "chat.json", [])) == "cc3m-chat"
    assert detect_kind(_write(release, "metadata.json", [])) == "cc3m-metadata"
    assert guess_kind(_write(tmp_path, "chat.json", [])) == KindGuess("generic")
