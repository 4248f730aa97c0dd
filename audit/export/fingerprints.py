"""Whether a published run still describes the inputs: their fingerprints and the settings' digest.

``export`` reuses the last run's findings and verdicts only when every configured input (dataset
files, image roots, COCO and policy files, the takedown ledger) has the size, mtime, inode and
ctime the run recorded and the settings are the same; otherwise it runs the audit first. A folder
image root is fingerprinted by the folder itself: images changed inside sub-folders need a
`llava-audit run` before the export.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from audit.config import Config, GateConfig, ScheduleConfig
from audit.errors import AuditError
from audit.output.model import AuditReport, InputFingerprint

_MISSING = InputFingerprint(size=-1, mtime_ns=-1, inode=-1, ctime_ns=-1)


def input_paths(config: Config) -> list[str]:
    """Every input a run reads, as configured (the report's keys), in config order."""
    paths: list[str] = []
    for ds in config.datasets:
        paths += [p for p in (ds.chat, ds.metadata, ds.url_tsv, ds.coco_annotations) if p]
        paths += ds.images
    lic = config.license
    paths += [p for p in (lic.policy, lic.vg_image_data) if p]
    paths.append(config.takedown.ledger)
    return list(dict.fromkeys(paths))


def fingerprint(path: Path) -> InputFingerprint:
    try:
        st = path.stat()
    except (OSError, ValueError):
        return _MISSING
    return InputFingerprint(
        size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, ctime_ns=st.st_ctime_ns
    )


def set_fingerprint(path: Path) -> InputFingerprint:
    """A shard set's: its shards' sizes summed, the latest mtime and ctime, and a digest of the
    shards' names and inodes (a shard added, removed, replaced or edited changes it; the folder's
    own stat does not see a shard edited in place, and a glob has none)."""
    from audit.loaders.shards import expand

    try:
        shards = expand(path)
    except AuditError:
        return _MISSING
    prints = [(s, fingerprint(s)) for s in shards]
    names = hashlib.sha256("\0".join(f"{s}:{p.inode}" for s, p in prints).encode())
    return InputFingerprint(
        size=sum(p.size for _, p in prints),
        mtime_ns=max(p.mtime_ns for _, p in prints),
        inode=int.from_bytes(names.digest()[:7], "big"),
        ctime_ns=max(p.ctime_ns for _, p in prints),
    )


def input_fingerprints(config: Config) -> dict[str, InputFingerprint]:
    from audit.loaders.shards import is_shard_set

    sets = {p for ds in config.datasets for p in (ds.chat, ds.metadata) if p}
    return {
        p: set_fingerprint(path) if p in sets and is_shard_set(path) else fingerprint(path)
        for p in input_paths(config)
        if (path := config.path(p))
    }


def settings_digest(config: Config) -> str:
    """The settings that decide findings and verdicts (gate and schedule do not)."""
    relevant = msgspec.structs.replace(config, gate=GateConfig(), schedule=ScheduleConfig())
    return hashlib.sha256(msgspec.json.encode(relevant)).hexdigest()


def stale_because(report: AuditReport, config: Config) -> str | None:
    """Why the run cannot stand for the inputs now (one short phrase), or None when it can."""
    if report.status != "succeeded":
        return f"run {report.run_id} did not succeed"
    if not report.inputs or not report.settings_digest:
        return f"run {report.run_id} recorded no input fingerprints"
    if report.settings_digest != settings_digest(config):
        return "the settings changed since the last run"
    now = input_fingerprints(config)
    changed = [p for p in now if report.inputs.get(p) != now[p]]
    return f"{changed[0]} changed since the last run" if changed else None
