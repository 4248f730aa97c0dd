"""The export's pure selection: which records are kept, and each dropped record's reasons."""

from __future__ import annotations

from audit.export.recovery import UrlRecord, fates, recovery
from audit.export.select import FileRecords, record_errors, select
from audit.findings import Finding, Severity

CHAT, META = "chat.json", "metadata.json"


def _f(file: str, index: int, code: str, severity: Severity = Severity.ERROR) -> Finding:
    return Finding(
        dataset="d",
        file=file,
        index=index,
        record_id=f"r{index}",
        code=code,
        severity=severity,
        message="m",
    )


def _chat(n: int, *, images: bool = True) -> FileRecords:
    return FileRecords(CHAT, [f"r{i}" for i in range(n)], [images] * n)


def _all_allowed(n: int) -> dict[int, str]:
    return dict.fromkeys(range(n), "allowed")


def test_a_clean_record_is_kept_and_an_error_finding_drops_with_its_code() -> None:
    errors = record_errors([_f(CHAT, 1, "turn.role"), _f(CHAT, 2, "turn.count", Severity.WARNING)])
    sel = select(_chat(3), None, errors, _all_allowed(3))
    assert sel.files[0].kept == [0, 2]  # a warning does not drop a record
    (dropped,) = sel.files[0].dropped
    assert (dropped.index, dropped.record_id, dropped.reasons) == (1, "r1", ["turn.role"])
    assert sel.reasons == {"turn.role": 1}


def test_licence_verdicts_decide_and_conditional_only_when_asked() -> None:
    verdicts = {0: "allowed", 1: "allowed_with_obligations", 2: "conditional", 3: "forbidden"}
    strict = select(_chat(5), None, {}, verdicts)
    assert strict.files[0].kept == [0, 1]
    reasons = {d.index: d.reasons for d in strict.files[0].dropped}
    assert reasons == {
        2: ["license:conditional"],
        3: ["license:forbidden"],
        4: ["license:not_checked"],  # no verdict for the record: never exported
    }
    assert select(_chat(5), None, {}, verdicts, include_conditional=True).files[0].kept == [0, 1, 2]


def test_a_stage_that_did_not_run_drops_what_it_would_have_vouched_for() -> None:
    chat = FileRecords(CHAT, ["a", "b"], [True, False])  # b is text-only
    sel = select(chat, None, {}, _all_allowed(2), not_run=["images"])
    assert sel.files[0].kept == [1]
    assert sel.files[0].dropped[0].reasons == ["images:not_checked"]
    sel = select(chat, None, {}, None, not_run=["takedown", "license"])
    assert sel.files[0].kept == []
    assert [d.reasons for d in sel.files[0].dropped] == [
        ["takedown:not_checked", "license:not_checked"]
    ] * 2


def test_metadata_follows_its_chat_record_and_its_own_errors_drop_both() -> None:
    meta = FileRecords(META, ["r2", "r0", "r1", "orphan"], [True] * 4)
    errors = record_errors([_f(CHAT, 1, "turn.role"), _f(META, 0, "takedown.present")])
    sel = select(_chat(3), meta, errors, _all_allowed(3))
    chat_choice, meta_choice = sel.files
    assert chat_choice.kept == [0]  # r2 is dropped by its metadata record's takedown
    assert meta_choice.kept == [1]  # r0, at position 1 of the metadata file
    reasons = {d.record_id: d.reasons for d in meta_choice.dropped}
    assert reasons == {
        "r2": ["takedown.present"],
        "r1": ["turn.role"],
        "orphan": ["xfile.missing_chat"],
    }
    drops = {d.record_id: d.reasons for d in chat_choice.dropped}
    assert drops == {"r1": ["turn.role"], "r2": ["takedown.present"]}


def test_every_record_of_every_file_is_kept_or_dropped_exactly_once() -> None:
    meta = FileRecords(META, ["r1", "r0", "r1", None], [True] * 4)  # repeated and missing ids
    errors = record_errors([_f(CHAT, 0, "image.missing"), _f(META, 2, "metadata.field")])
    sel = select(_chat(2), meta, errors, {0: "allowed", 1: "unknown"})
    for records, choice in zip((_chat(2), meta), sel.files, strict=True):
        seen = sorted(choice.kept + [d.index for d in choice.dropped])
        assert seen == list(range(len(records.ids)))


def test_fates_join_broken_images_to_their_url_status() -> None:
    findings = [
        _f(CHAT, 0, "image.missing"),
        _f(CHAT, 1, "image.truncated"),
        _f(CHAT, 2, "image.corrupt"),
        _f(CHAT, 3, "image.missing"),
        _f(CHAT, 4, "image.empty"),
        _f(CHAT, 4, "takedown.present"),
        _f(META, 11, "url.dead", Severity.WARNING),
        _f(META, 12, "url.timeout", Severity.WARNING),
    ]
    urls = [
        UrlRecord(META, 10, "r0"),  # no URL finding: answered with an image
        UrlRecord(META, 11, "r1"),
        UrlRecord(META, 12, "r2"),
        UrlRecord(META, 14, "r4"),
    ]  # r3 has no URL at all
    fate = fates(CHAT, findings, urls)
    assert fate == {0: "recoverable", 1: "gone", 2: "unknown", 3: "unknown", 4: "unknown"}
    counts = recovery(fate)
    assert (counts.broken, counts.recoverable, counts.gone, counts.unknown) == (5, 1, 1, 3)


def test_fates_join_by_index_when_the_urls_come_from_the_chat_file() -> None:
    """The COCO join: URL findings name the conversation file and its record positions."""
    findings = [_f(CHAT, 0, "image.missing"), _f(CHAT, 1, "image.missing")]
    findings.append(_f(CHAT, 1, "url.placeholder", Severity.WARNING))
    urls = [UrlRecord(CHAT, 0, None), UrlRecord(CHAT, 1, None)]
    assert fates(CHAT, findings, urls) == {0: "recoverable", 1: "gone"}
