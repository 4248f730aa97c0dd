"""The ground-specific steps of `llava-audit takedown` (GDPR, DMCA, illegal content, release).

Not a command itself (no ``register``): :mod:`audit.cli.takedown` calls :func:`register_steps`
with its ``step`` helper, so every step has the same shape (`takedown STEP ID [options]`, --help
with an example) and the same opening of config, state store and ledger.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from audit import config as config_mod
from audit import preflight
from audit.store import Store
from audit.store.ledger import Event

Step = Callable[..., Any]


def date_arg(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


@contextmanager
def opened(
    args: argparse.Namespace, *, reads_datasets: bool = False
) -> Iterator[tuple[config_mod.Config, Store]]:
    """The config and the state store; with ``reads_datasets`` the configured files are checked
    first (a FIFO among them would hang the search), before the store is opened."""
    config = config_mod.load(args.config)
    if reads_datasets:
        preflight.check(
            [
                i
                for ds in config.datasets
                for i in preflight.dataset_inputs(config, ds, ("chat", "metadata"))
            ],
            roots=[config.path(r) for ds in config.datasets for r in ds.images],
        )
    with Store(config.path(config.state)) as store:
        yield config, store


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _when(q: argparse.ArgumentParser, what: str = "when") -> None:
    q.add_argument("--date", type=date_arg, help=f"{what} (YYYY-MM-DD, default: today)")


def register_steps(step: Step) -> None:
    """Add the ground-specific steps through ``step(name, help, handler, example)``."""
    q = step(
        "identity",
        "GDPR: record whether the requester is the data subject, and how it was checked",
        _call("identity", verified=lambda a: not a.failed, method="method", when="date"),
        "TD-0001 --method 'replied from the address on the account'",
    )
    q.add_argument("--method", required=True, help="how the identity was checked")
    q.add_argument("--failed", action="store_true", help="the identity could not be verified")
    _when(q)
    q = step(
        "notice-check",
        "DMCA: record which §512(c)(3)(A) elements the notice holds (intake)",
        _call("notice_check", present="present", when="date"),
        "TD-0002 --present signature,work,material,contact,good-faith,accuracy",
    )
    q.add_argument(
        "--present",
        type=lambda v: [e.strip() for e in v.split(",") if e.strip()],
        default=[],
        help="comma-separated: signature, work, material, contact, good-faith, accuracy",
    )
    _when(q)
    q = step(
        "extend",
        "GDPR Art. 12(3): extend the deadline by two months (once), with the reason",
        _call("extend", reason="reason", when="date"),
        "TD-0001 --reason '40 requests this month' --date 2026-03-10",
    )
    q.add_argument("--reason", required=True, help="why (complexity, number of requests)")
    _when(q, "when the requester was told")
    q = step(
        "exempt",
        "GDPR Art. 17(3): record that erasure is not owed, and on which basis",
        _call("exempt", basis="basis", reason="reason", when="date"),
        "TD-0001 --basis legal-claims --reason 'evidence in pending litigation'",
    )
    q.add_argument(
        "--basis",
        required=True,
        choices=("expression", "legal-obligation", "public-health", "archiving-research",
                 "legal-claims"),
        help="the Art. 17(3) point (a) to (e)",
    )  # fmt: skip
    q.add_argument("--reason", required=True, help="why it applies here")
    _when(q, "decision date")
    q = step(
        "refusal-notice",
        "GDPR Art. 12(4): record that the requester was told why not, and of the right to "
        "complain and to a judicial remedy",
        _call("refusal_notice", when="date", note="note"),
        "TD-0001 --date 2026-03-12",
    )
    q.add_argument("--note", default="", help="what was said")
    _when(q)
    q = step(
        "recipient",
        "GDPR Art. 17(2)/19: record one recipient of the data and when it was told (or --none)",
        _call("recipient", name=lambda a: None if a.none else a.name, notified="notified"),
        "TD-0001 --name 'partner lab (copy of v1)' --notified 2026-03-15",
    )
    q.add_argument("--name", default="", help="who received the data")
    q.add_argument("--notified", type=date_arg, help="when it was told (omit: not yet)")
    q.add_argument("--none", action="store_true", help="the data went to no recipient")
    q = step(
        "counter-notice",
        "DMCA §512(g): record a counter-notice for removed material",
        _call("counter_notice", received="received", note="note"),
        "TD-0002 --received 2026-04-01",
    )
    q.add_argument("--received", type=date_arg, required=True, help="date received")
    q.add_argument("--note", default="", help="who sent it, forwarded to the claimant when")
    q = step(
        "restore",
        "DMCA §512(g)(2)(C): lift the request's blocklist keys by a recorded event",
        _call("restore", reason="reason", when="date"),
        "TD-0002 --reason 'no court action within 14 business days'",
    )
    q.add_argument("--reason", required=True, help="why the material is restored")
    _when(q)
    q = step(
        "preserve",
        "illegal content: record where the evidence is preserved before deletion",
        _call("preserve", where="where", when="date"),
        "TD-0003 --where 'sealed bucket evidence/TD-0003 (access-logged)'",
    )
    q.add_argument("--where", required=True, help="where and how it is kept")
    _when(q)
    q = step(
        "report",
        "illegal content: record the report to the authority or hotline",
        _call("report", to="to", reference="reference", when="date"),
        "TD-0003 --to 'national hotline' --reference 2026-123",
    )
    q.add_argument("--to", required=True, help="the authority or hotline")
    q.add_argument("--reference", default="", help="their case reference")
    _when(q)
    q = step(
        "release",
        "record the versions that held the data, the new version and its published diff",
        _call(
            "release",
            versions_affected="affected",
            new_version="new_version",
            diff_url="diff_url",
            when="date",
        ),
        "TD-0001 --affected v1.0,v1.1 --new-version v1.2 --diff-url https://example.org/diff",
    )
    q.add_argument(
        "--affected",
        type=lambda v: [e.strip() for e in v.split(",") if e.strip()],
        default=[],
        help="comma-separated version ids that held it",
    )
    q.add_argument("--new-version", required=True, help="the version without it")
    q.add_argument("--diff-url", default="", help="where the diff is published")
    _when(q)
    q = step(
        "derived",
        "record what was done to a [[derived]] artefact (shard, zip, checkpoint)",
        _call("derived", name="name", state="state", note="note"),
        "TD-0001 --name shards-v1 --state rebuilt",
    )
    q.add_argument("--name", required=True, help="the artefact's name in [[derived]]")
    q.add_argument("--state", required=True, choices=("rebuilt", "deleted", "kept"))
    q.add_argument("--note", default="", help="why it is kept, or how it was rebuilt")
    q = step(
        "redact",
        "retention over: remove the requester's contact and notes (their SHA-256 stays)",
        _call("redact", early="early"),
        "TD-0001",
    )
    q.add_argument("--early", action="store_true", help="before the retention period ends")


_GDPR = {"identity", "extend", "exempt", "refusal_notice", "recipient", "redact"}


def _call(function: str, **params: str | Callable[[argparse.Namespace], Any]) -> Step:
    """A handler calling ``function(config, store, ID, **params)`` and printing its event."""

    def handler(args: argparse.Namespace) -> int:
        import importlib

        module = importlib.import_module(
            "audit.takedown_gdpr" if function in _GDPR else "audit.takedown_steps"
        )
        kwargs = {k: v(args) if callable(v) else getattr(args, v) for k, v in params.items()}
        with opened(args) as (config, store):
            event: Event = getattr(module, function)(config, store, args.request_id, **kwargs)
        mark = "" if event.ok else " (NOT OK)"
        console().print(
            f"{args.request_id}: {event.step} recorded{mark}, {event.happened_at[:10]}: "
            f"{event.summary}",
            markup=False,
        )
        return 0

    return handler
