"""The per-record table the expectation suites run on: one flat row per record, one column per fact.

Great Expectations compares whole objects and cannot see inside a list of turns, so the suites run on
this flattened view instead of raw conversations (spec/field-anchors.md §1.5). Row ``i`` is record
``i`` of its file, so an unexpected row index is the record's ``index`` in findings. The probe
columns (image, URL, licence) stay null when that stage did not run: GX map expectations skip nulls,
so an unprobed dataset neither passes nor fails a rule about probes by accident.

pandas is imported inside the function: the CLI must start without paying for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from audit.figures import IMAGE_BROKEN_CODES, IMAGE_MISSING_CODES
from audit.findings import Code, Finding, Severity
from audit.models import ChatRecord

if TYPE_CHECKING:
    import pandas

IMAGE_TOKEN = "<image>"

#: Column name -> what it holds; expectations/README.md documents the same list for suite authors.
COLUMNS: dict[str, str] = {
    "id": "the record's id as text (null when absent)",
    "id_type": "str, int, missing or other: the JSON type of `id`",
    "image": "the `image` path (null for text-only records)",
    "url": "the source URL (metadata files; null elsewhere)",
    "n_turns": "number of conversation turns (0 when `conversations` is missing or not a list)",
    "first_from": "`from` of the first turn",
    "last_from": "`from` of the last turn",
    "image_token_count": "how many `<image>` tokens the whole record holds",
    "fingerprint": "hash of the whole record: equal fingerprints are exact duplicates",
    "image_status": "ok, or the most severe images-stage finding code (null: not probed / no image)",
    "image_available": "false when the record's image is missing or broken, the images stage's "
    "unavailable (audit.figures.Availability); true otherwise (null: not probed)",
    "url_status": "ok, or the most severe URL-probe finding code (null: not probed / no URL)",
    "url_alive": "true when the URL probe found the record's source URL answering (its own "
    "`url`, or for a chat record its image's URL from the metadata file; null: not probed)",
    "license_verdict": "the licence verdict for the declared use (null: licence stage not run)",
}

FINGERPRINT = "fingerprint"
#: The columns computed from the record alone (the fingerprint covers them all).
RECORD_COLUMNS = frozenset(list(COLUMNS)[:8])
#: The record columns holding numbers (the others hold text or nothing).
NUMBER_COLUMNS = frozenset({"n_turns", "image_token_count"})
_ENCODER = msgspec.json.Encoder(order="sorted")
#: URL findings (all warnings: the local copy may still train) that mean the URL did answer.
_URL_REACHABLE = frozenset({Code.URL_OPT_OUT})
IMAGE_UNAVAILABLE_CODES = IMAGE_MISSING_CODES | IMAGE_BROKEN_CODES
#: The (status, availability) columns of each probe.
PROBE_COLUMNS = {"image": ("image_status", "image_available"), "url": ("url_status", "url_alive")}


def record_table(
    records: Sequence[object],
    *,
    image_findings: Iterable[Finding] | None = None,
    url_findings: Iterable[Finding] | None = None,
    license_verdicts: Mapping[int, str] | None = None,
) -> pandas.DataFrame:
    """One row per record of one file.

    ``image_findings`` and ``url_findings`` are the findings of the images and URL stages for this
    file (None when the stage did not run): a record the probe covered without an error is
    available. ``license_verdicts`` maps record index to the verdict for the declared use.
    """
    import pandas

    rows = [record_row(record) for record in records]
    frame = pandas.DataFrame(rows, columns=list(COLUMNS)[:9])
    verdicts = license_verdicts or {}
    probes = {
        **_probe_columns(rows, "image", image_findings),
        **_probe_columns(rows, "url", url_findings),
        "license_verdict": [verdicts.get(i) for i in range(len(rows))],
    }
    for name in list(COLUMNS)[9:]:  # object dtype keeps None as None (pandas 3 strings use NaN)
        frame[name] = pandas.Series(probes[name], dtype="object")
    return frame


def record_row(record: object) -> tuple[Any, ...]:
    """The record's columns of the table (the first nine of :data:`COLUMNS`); None for an
    unusable element. Both engines build rows here (the Spark one in its executors)."""
    if type(record) is ChatRecord:
        return _chat_row(record)
    raw_id = _field(record, "id")
    image = _field(record, "image")
    url = _field(record, "url")
    turns = _field(record, "conversations")
    turns = turns if isinstance(turns, list) else []
    roles = [_field(turn, "from") for turn in turns]
    tokens = sum(
        value.count(IMAGE_TOKEN)
        for turn in turns
        if isinstance(value := _field(turn, "value"), str)
    )
    return (
        None if raw_id is None else str(raw_id),
        _id_type(raw_id),
        image if isinstance(image, str) else None,
        url if isinstance(url, str) else None,
        len(turns),
        _text(roles[0]) if roles else None,
        _text(roles[-1]) if roles else None,
        tokens,
        _fingerprint(record),
    )


def _chat_row(record: ChatRecord) -> tuple[Any, ...]:
    """The loader's typed fast path (every turn a valid Turn): plain attribute reads, 3x faster."""
    raw_id, image, turns = record.id, record.image, record.conversations
    return (
        None if raw_id is None else str(raw_id),
        _id_type(raw_id),
        image if isinstance(image, str) else None,
        None,
        len(turns),
        turns[0].from_ if turns else None,
        turns[-1].from_ if turns else None,
        sum(turn.value.count(IMAGE_TOKEN) for turn in turns),
        _fingerprint(record),
    )


def _field(obj: object, key: str) -> Any:
    """Read ``key`` from a plain dict or a decoded msgspec Struct (`from` is `from_` there)."""
    if isinstance(obj, dict):
        return obj.get(key)
    if isinstance(obj, msgspec.Struct):
        value = getattr(obj, "from_" if key == "from" else key, None)
        return None if value is msgspec.UNSET else value
    return None


def _id_type(raw_id: object) -> str:
    if raw_id is None:
        return "missing"
    if isinstance(raw_id, bool):
        return "other"
    return {str: "str", int: "int"}.get(type(raw_id), "other")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _fingerprint(record: object) -> str:
    try:
        encoded = _ENCODER.encode(record)
    except (TypeError, msgspec.EncodeError):
        encoded = repr(record).encode()
    return hashlib.blake2b(encoded, digest_size=8).hexdigest()


def _probe_columns(
    rows: Sequence[tuple[Any, ...]], column: str, findings: Iterable[Finding] | None
) -> dict[str, list[Any]]:
    """Status and availability per row from a probe's findings; all null when it did not run."""
    status_col, ok_col = PROBE_COLUMNS[column]
    if findings is None:
        return {status_col: [None] * len(rows), ok_col: [None] * len(rows)}
    by_index: dict[int, list[tuple[str, Severity]]] = {}
    for finding in findings:
        if finding.index is not None:
            by_index.setdefault(finding.index, []).append((finding.code, finding.severity))
    outcomes = {i: record_outcome(found) for i, found in by_index.items()}
    cells = [probe_cell(row, column, outcomes.get(i)) for i, row in enumerate(rows)]
    return {status_col: [c[0] for c in cells], ok_col: [c[1] for c in cells]}


def record_outcome(found: Iterable[tuple[str, Severity]]) -> tuple[str, bool] | None:
    """A probe's outcome for one record from its findings (code, severity) in order: the first
    most severe non-info code, and whether any of them makes the image unavailable; None when
    only info findings (or none) name the record. Both engines reduce a record's findings here."""
    worst: tuple[str, Severity] | None = None
    unavailable = False
    for code, severity in found:
        unavailable = unavailable or code in IMAGE_UNAVAILABLE_CODES
        if severity is Severity.INFO:
            continue
        if worst is None or severity.rank > worst[1].rank:
            worst = (code, severity)
    return None if worst is None else (worst[0], unavailable)


def probe_cell(
    row: Sequence[Any], column: str, outcome: tuple[str, bool] | None
) -> tuple[str | None, bool | None]:
    """The (status, available) cells of a probed row (a :func:`record_row`) for the ``image``
    or ``url`` probe, given its :func:`record_outcome`."""
    if row[2 if column == "image" else 3] is None and row[2] is None:
        return None, None  # no image, no URL (a chat record's URL is its image's)
    if outcome is None:
        return "ok", True
    code, unavailable = outcome
    return code, code in _URL_REACHABLE if column == "url" else not unavailable
