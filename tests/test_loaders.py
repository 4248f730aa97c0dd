"""Loaders: kind detection from content, the typed fast path, the per-record fallback, metadata
key discovery, and the reference lists other stages build on."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from audit.loaders.jsonfile import iter_array_chunks
from audit.loaders.records import (
    NotStreamableError,
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


def test_stream_refuses_what_needs_the_careful_path(tmp_path: Path) -> None:
    bad = _write(tmp_path, "chat.json", [*CHAT, {"id": "x", "conversations": [{"from": "gpt"}]}])
    with pytest.raises(NotStreamableError):
        list(open_stream(bad))
    lines = tmp_path / "chat.jsonl"
    lines.write_text(json.dumps(CHAT[0]) + "\n" + json.dumps(CHAT[0]) + "\n", encoding="utf-8")
    with pytest.raises(NotStreamableError):
        list(open_stream(lines, "cc3m-chat"))


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
