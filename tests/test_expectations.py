"""Expectation suites: the per-record table, the shipped suites, GX results mapped to findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from audit import findings
from audit.errors import ConfigError
from audit.findings import Severity
from audit.models import ChatRecord
from audit.probes.expectations import default_suites_dir, load_suite, run_expectations
from audit.probes.record_table import COLUMNS, record_table

SUITES = default_suites_dir()
KINDS = ("instruct", "cc3m-chat", "cc3m-metadata", "lcs-chat", "lcs-metadata", "mix", "generic")


def lcs_record(n: int, **over: Any) -> dict[str, Any]:
    rid = f"{n:09d}"
    record: dict[str, Any] = {
        "id": rid,
        "image": f"{rid[:5]}/{rid}.jpg",
        "conversations": [
            {"from": "human", "value": "What is this?\n<image>"},
            {"from": "gpt", "value": f"caption {n}"},
        ],
    }
    return {**record, **over}


def image_finding(index: int, code: str = "image.missing") -> findings.Finding:
    return findings.make(code, "gone", dataset="lcs", file="lcs.json", index=index)


def test_table_flattens_dicts_and_structs_alike() -> None:
    raw = lcs_record(7)
    struct = msgspec.convert(raw, ChatRecord)
    table = record_table([raw, struct, 42])
    assert list(table.columns) == list(COLUMNS)
    assert table.loc[0, "id"] == table.loc[1, "id"] == "000000007"
    assert table.loc[0, "fingerprint"] == table.loc[1, "fingerprint"]
    assert table.loc[1, "image"] == "00000/000000007.jpg"
    assert (table.loc[1, "n_turns"], table.loc[1, "first_from"], table.loc[1, "last_from"]) == (
        2,
        "human",
        "gpt",
    )
    assert table.loc[1, "image_token_count"] == 1
    assert table.loc[2, "id_type"] == "missing" and table.loc[2, "n_turns"] == 0
    assert table["image_available"].isna().all(), "no probe ran: availability is unknown"


def test_table_takes_availability_from_the_image_probe() -> None:
    records = [lcs_record(0), lcs_record(1), lcs_record(2), {"id": "t", "conversations": []}]
    mismatch = image_finding(2, "image.format_mismatch")
    table = record_table(records, image_findings=[image_finding(1), mismatch])
    assert table["image_status"].tolist() == ["ok", "image.missing", "image.format_mismatch", None]
    assert table["image_available"].tolist() == [True, False, True, None]


def test_image_available_is_false_exactly_for_the_reports_missing_and_broken_images() -> None:
    """The same records the report counts unavailable: a path leading outside the roots (the
    structure stage's image.path) is missing, an unreadable file is broken, a GIF named .jpg
    and a warning about the record's text are not."""
    records = [lcs_record(i) for i in range(6)]
    found = [
        image_finding(0, "image.path"),
        image_finding(1, "image.unreadable"),
        image_finding(2, "image.format_mismatch"),
        image_finding(3, "image.too_large"),
        image_finding(4, "image.truncated"),
    ]
    table = record_table(records, image_findings=found)
    assert table["image_available"].tolist() == [False, False, True, False, False, True]
    # the codes the table reads are those of the statuses the report counts, and nothing else
    from audit.figures import IMAGE_BROKEN, IMAGE_MISSING
    from audit.probes.images import STATUS_CODES
    from audit.probes.record_table import IMAGE_UNAVAILABLE_CODES

    counted = {STATUS_CODES[s] for s in IMAGE_MISSING | IMAGE_BROKEN}
    assert counted == IMAGE_UNAVAILABLE_CODES
    assert set(STATUS_CODES) - IMAGE_MISSING - IMAGE_BROKEN == {"format_mismatch"}


def test_chat_records_take_url_status_from_their_images_source_url() -> None:
    records = [lcs_record(0), lcs_record(1), {"id": "t", "conversations": []}]
    records.insert(0, lcs_record(5))
    dead = findings.make("url.dead", "404", dataset="lcs", file="meta.json", index=2)
    opted_out = findings.make("url.opt_out", "noai", dataset="lcs", file="meta.json", index=0)
    table = record_table(records, url_findings=[dead, opted_out])
    assert table["url_status"].tolist() == ["url.opt_out", "ok", "url.dead", None]
    assert table["url_alive"].tolist() == [True, True, False, None]


def test_every_shipped_suite_loads_and_only_names_table_columns() -> None:
    table = record_table([lcs_record(i) for i in range(3)])
    for kind in KINDS:
        path, suite = load_suite(SUITES, kind)
        assert path.name == f"{kind}.json"
        result = run_expectations(table, kind, suites_dir=SUITES, docs_dir=None, dataset=kind)
        assert result.evaluated == len(suite["expectations"])
        invalid = [f.message for f in result.findings if f.code == "expectation.invalid"]
        assert not invalid, f"{kind}: {invalid}"


def test_good_subset_passes_with_warnings_only(tmp_path: Path) -> None:
    """A 50-record subset with 1 image missing (2%): no error, but the row count and the 1%
    missing-image warning rules speak up."""
    records = [lcs_record(i) for i in range(50)]
    table = record_table(records, image_findings=[image_finding(3)], license_verdicts={})
    docs = tmp_path / "data-docs"
    result = run_expectations(table, "lcs-chat", suites_dir=SUITES, docs_dir=docs, dataset="lcs")
    assert {f.severity for f in result.findings} == {Severity.WARNING}
    rules = sorted(f.message.split(" failed")[0] for f in result.findings)
    assert rules == [
        "expect_column_values_to_be_in_set on column 'image_available'",
        "expect_table_row_count_to_be_between",
    ]
    assert any("observed 50" in f.message for f in result.findings)
    assert (docs / "index.html").is_file()
    assert result.data_docs == str(docs / "index.html")
    assert any((docs / "validations").rglob("*.html"))


def test_bad_table_fails_with_the_rule_column_count_and_example_rows(tmp_path: Path) -> None:
    records = [lcs_record(i) for i in range(40)]
    records[5] = lcs_record(5, id="GCC_train_000000005")
    records[9] = lcs_record(9, id="abc")
    missing = [image_finding(i) for i in range(0, 40, 3)]  # 14 of 40 missing: 35% > 20%
    table = record_table(records, image_findings=missing)
    result = run_expectations(
        table, "lcs-chat", suites_dir=SUITES, docs_dir=tmp_path / "dd", dataset="lcs", file="x.json"
    )
    errors = {f.message.split(" failed")[0]: f for f in result.findings if f.severity == "error"}
    id_rule = errors["expect_column_values_to_match_regex on column 'id'"]
    assert "2 of 40 rows unexpected" in id_rule.message
    assert "#5: 'GCC_train_000000005'" in id_rule.message and "#9: 'abc'" in id_rule.message
    assert id_rule.code == "expectation.failed" and id_rule.file == "x.json"
    avail = errors["expect_column_values_to_be_in_set on column 'image_available'"]
    assert "14 of 40 rows unexpected" in avail.message and "mostly=0.8" in avail.message
    assert "#0 (id 000000000): False" in avail.message
    assert not result.success


def test_suite_naming_a_column_the_table_lacks_is_reported_as_invalid(tmp_path: Path) -> None:
    suite = {
        "name": "mine",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        ],
    }
    (tmp_path / "generic.json").write_text(json.dumps(suite))
    table = record_table([lcs_record(1)])
    result = run_expectations(table, "lcs-chat", suites_dir=tmp_path, docs_dir=None, dataset="d")
    assert [f.code for f in result.findings] == ["expectation.invalid"]
    assert "no_such" in result.findings[0].message
    assert result.findings[0].severity == Severity.ERROR


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"expectations": [\n  {"type": 1,}\n]}', r"generic\.json:2:\d+: invalid JSON"),
        ('{"expectations": {}}', "'expectations' list"),
        ('{"expectations": [{"type": "x", "severity": "fatal"}]}', "severity must be one of"),
        ('{"expectations": [{"type": "expect_nothing_at_all"}]}', "invalid expectation suite"),
        (
            '{"expectations": [{"type": "expect_column_values_to_be_in_set", "kwargs": {"colum": "x"}}]}',
            "invalid expectation suite",
        ),
    ],
)
def test_broken_suite_file_is_a_config_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "generic.json").write_text(text)
    table = record_table([lcs_record(1)])
    with pytest.raises(ConfigError, match=message) as caught:
        run_expectations(table, "mix", suites_dir=tmp_path, docs_dir=None, dataset="d")
    assert str(tmp_path / "generic.json") in str(caught.value)


def test_a_users_own_suites_folder_wins_over_the_shipped_one(tmp_path: Path) -> None:
    assert default_suites_dir(tmp_path) == SUITES
    (tmp_path / "expectations").mkdir()
    assert default_suites_dir(tmp_path) == tmp_path / "expectations"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("lcs558k_samples.json", "lcs-chat"),
        ("cc3m_chat_samples.json", "cc3m-chat"),
        ("instruct_samples.json", "instruct"),
    ],
)
def test_real_records_meet_their_kinds_suite(realdata: Path, name: str, kind: str) -> None:
    records = json.loads((realdata / name).read_text(encoding="utf-8"))
    table = record_table(records)
    result = run_expectations(table, kind, suites_dir=SUITES, docs_dir=None, dataset=kind)
    assert [f.severity for f in result.findings] == [Severity.WARNING]  # only the row count
    assert "expect_table_row_count_to_be_between" in result.findings[0].message


def test_dataset_markup_is_text_in_data_docs_and_verbatim_in_findings(tmp_path: Path) -> None:
    hostile = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>", "a&b'\""]
    records = [lcs_record(i) for i in range(20)]
    for i, rid in enumerate(hostile):
        records[i] = lcs_record(i, id=rid)
    docs = tmp_path / "dd"
    table = record_table(records)
    result = run_expectations(table, "lcs-chat", suites_dir=SUITES, docs_dir=docs, dataset="x")
    pages = "".join(p.read_text(encoding="utf-8") for p in docs.rglob("*.html"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages
    assert "<script>alert(1)" not in pages and "<img src=x" not in pages
    (id_rule,) = [f for f in result.findings if "column 'id'" in f.message]
    assert "3 of 20 rows unexpected" in id_rule.message
    assert "'<script>alert(1)</script>'" in id_rule.message
    assert table.loc[0, "id"] == hostile[0], "the caller's table is left as it was"


def test_unchanged_table_and_suite_reuse_the_last_result_and_its_data_docs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.probes import expectations as module

    records = [lcs_record(i) for i in range(30)]
    records[4] = lcs_record(4, id="bad")
    cache = tmp_path / "cache"

    def run(table: Any, docs: str) -> Any:
        return run_expectations(
            table,
            "lcs-chat",
            suites_dir=SUITES,
            docs_dir=tmp_path / docs,
            dataset="lcs",
            cache_dir=cache,
        )

    first = run(record_table(records), "run1")
    assert first.cached is False

    def no_gx(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("GX ran although nothing changed")

    monkeypatch.setattr(module, "_run_checkpoint", no_gx)
    second = run(record_table(records), "run2")
    assert second.cached is True and second.findings == first.findings
    assert (tmp_path / "run2" / "index.html").is_file()
    assert list((tmp_path / "run2" / "validations" / "lcs").rglob("*.html"))
    assert second.data_docs == str(tmp_path / "run2" / "index.html")
    monkeypatch.undo()

    records[7] = lcs_record(7, id="worse")
    changed = run(record_table(records), "run3")
    assert changed.cached is False
    assert "2 of 30 rows unexpected" in next(
        f.message for f in changed.findings if "'id'" in f.message
    )
    unprobed = record_table(records, image_findings=[image_finding(3)])
    assert run(unprobed, "run4").cached is False, "a probe column changed"


def test_an_edited_suite_is_run_again(tmp_path: Path) -> None:
    suite = {
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}
        ]
    }
    (tmp_path / "generic.json").write_text(json.dumps(suite))
    table = record_table([lcs_record(i) for i in range(3)])

    def run() -> Any:
        return run_expectations(
            table,
            "generic",
            suites_dir=tmp_path,
            docs_dir=None,
            dataset="d",
            cache_dir=tmp_path / "c",
        )

    assert [run().cached, run().cached] == [False, True]
    suite["expectations"][0]["kwargs"]["mostly"] = 0.5
    (tmp_path / "generic.json").write_text(json.dumps(suite))
    assert run().cached is False


def test_mix665k_shapes_pass_the_mix_suite_without_errors() -> None:
    def chat(first: str) -> list[dict[str, str]]:
        return [{"from": "human", "value": first}, {"from": "gpt", "value": "Yes"}]

    folders = [
        "coco/train2017",
        "gqa/images",
        "ocr_vqa/images",
        "textvqa/train_images",
        "vg/VG_100K",
    ]
    records: list[dict[str, Any]] = [
        {
            "id": i if folder == "gqa/images" else f"{i:012d}",
            "image": f"{folder}/{i}.jpg",
            "conversations": chat("<image>\nIs it red?"),
        }
        for i, folder in enumerate(folders * 4)
    ]
    records.append({"id": "wgByO4Y_0", "model": "", "conversations": chat("Write a poem.")})
    result = run_expectations(
        record_table(records), "mix", suites_dir=SUITES, docs_dir=None, dataset="mix"
    )
    assert not [f.message for f in result.findings if f.severity == Severity.ERROR]
