"""The packaged licence policy: the §8.2 matrix as data, its evidence, settings, and bad policy files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import realsamples

from audit import config
from audit.config import LicenseConfig
from audit.errors import ConfigError
from audit.licensing.inputs import coco_license_map
from audit.licensing.policy import (
    COLUMNS,
    Verdict,
    evaluate,
    load_policy,
    packaged_policy_text,
)

F, U, C, AO, A = "forbidden", "unknown", "conditional", "allowed_with_obligations", "allowed"

#: spec/licensing.md §8.2 with the default settings: research, commercial, redistribute, modified.
MATRIX = {
    "CC-BY-4.0": (AO, AO, AO, AO),
    "CC-BY-2.0": (AO, AO, AO, AO),
    "CC-BY-SA-2.0": (AO, AO, AO, AO),
    "CC-BY-ND-2.0": (C, C, C, F),  # copies: unmodified originals only, which the tool cannot see
    "CC-BY-NC-2.0": (AO, F, AO, AO),
    "CC-BY-NC-4.0": (AO, F, AO, AO),
    "CC-BY-NC-SA-2.0": (AO, F, AO, AO),
    "CC-BY-NC-ND-2.0": (C, F, C, F),
    "LicenseRef-Flickr-Commons-NKCR": (AO, AO, AO, AO),  # the courtesy credit
    "LicenseRef-US-Gov-Work": (AO, AO, AO, AO),  # courtesy credit, public domain in the US only
    "ODC-By-1.0": (AO, AO, AO, AO),
    "BSD-3-Clause": (A, A, AO, AO),
    "Apache-2.0": (A, A, AO, AO),
    "LicenseRef-Google-Conceptual-Captions": (A, A, A, A),
    "LicenseRef-All-Rights-Reserved": (U, F, F, F),
    "NOASSERTION": (U, F, F, F),
    "LicenseRef-LLaVA-images-zip-unlicensed": (C, F, F, F),  # never allowed
    "LicenseRef-ShareGPT-User-Prompts": (AO, U, F, F),
}
RESTRICTIONS = {
    "LicenseRef-OpenAI-ToU": (A, C, AO, AO),
    "LicenseRef-LLaVA-images-research-reproduction-only": (C, F, F, F),
    "LicenseRef-TDM-Opt-Out": (C, F, C, C),  # EU DSM Art. 3 covers research organisations only
}


def _row(term_id: str, settings: LicenseConfig | None = None) -> tuple[str, ...]:
    policy = load_policy()
    term = policy.term(term_id)
    return tuple(evaluate(term, col, settings or LicenseConfig()).verdict.value for col in COLUMNS)


@pytest.mark.parametrize(("term_id", "expected"), sorted({**MATRIX, **RESTRICTIONS}.items()))
def test_matrix_row_matches_the_spec(term_id: str, expected: tuple[str, ...]) -> None:
    assert _row(term_id) == expected


def test_every_licence_restriction_and_source_carries_evidence() -> None:
    policy = load_policy()
    entries = [
        *policy.licenses.values(),
        *policy.restrictions.values(),
        *policy.sources.values(),
        *policy.cards.values(),
    ]
    assert len(entries) > 35
    for entry in entries:
        assert entry.evidence, entry.name
        for ev in entry.evidence:
            assert len(ev.quote) > 20 and ev.source.strip(), entry.name


def test_the_issue_sources_are_all_in_the_policy() -> None:
    wanted = {"cc3m", "coco", "laion", "sbu", "blip_caption", "vg", "gqa", "ocrvqa", "textvqa"}
    wanted |= {"sharegpt", "gpt4_generated", "vqav2", "aokvqa", "refcoco", "textcaps"}
    assert wanted <= set(load_policy().sources)


def test_unknown_never_means_allowed() -> None:
    """Nothing without a known licence is usable for anything but (at most) flagged research."""
    for term_id in ("NOASSERTION", "LicenseRef-All-Rights-Reserved"):
        for col in COLUMNS:
            assert not evaluate(load_policy().term(term_id), col, LicenseConfig()).verdict.usable


def test_nc_and_nd_flags_follow_the_coco_table() -> None:
    policy = load_policy()
    nc = {i for i, lic in policy.coco.license_ids.items() if policy.licenses[lic].non_commercial}
    nd = {i for i, lic in policy.coco.license_ids.items() if policy.licenses[lic].no_derivatives}
    assert nc == {"1", "2", "3"}
    assert nd == {"3", "6"}


# ---- settings (§8.7 open points) flip verdicts ------------------------------------------------------


def test_training_is_derivative_decides_nd_training() -> None:
    assert _row("CC-BY-ND-2.0")[:2] == (C, C)
    assert _row("CC-BY-ND-2.0", LicenseConfig(training_is_derivative="yes"))[:2] == (F, F)
    assert _row("CC-BY-ND-2.0", LicenseConfig(training_is_derivative="no"))[:2] == (AO, AO)
    assert _row("CC-BY-NC-ND-2.0", LicenseConfig(training_is_derivative="no"))[:2] == (AO, F)


def test_research_exception_covers_unlicensed_images_for_research_only() -> None:
    on = LicenseConfig(research_exception=True)
    assert _row("LicenseRef-All-Rights-Reserved", on) == (C, F, F, F)
    assert _row("NOASSERTION", on) == (C, F, F, F)


def test_openai_terms_switch() -> None:
    assert _row("LicenseRef-OpenAI-ToU", LicenseConfig(openai_terms_bind=False)) == (A, A, A, A)


def test_internal_training_switch_only_softens_nc_commercial() -> None:
    off = LicenseConfig(internal_training_is_commercial=False)
    for lic in ("CC-BY-NC-2.0", "CC-BY-NC-4.0", "CC-BY-NC-SA-2.0"):
        assert _row(lic, off)[1] == C
    assert _row("CC-BY-NC-ND-2.0", off)[1] == C
    both = LicenseConfig(internal_training_is_commercial=False, training_is_derivative="yes")
    assert _row("CC-BY-NC-ND-2.0", both)[1] == F  # the derivative question decides first
    for lic in ("CC-BY-2.0", "LicenseRef-All-Rights-Reserved", "NOASSERTION"):
        assert _row(lic, off) == _row(lic)


def test_verdict_order_is_most_restrictive_first() -> None:
    ranks = [v.rank for v in (Verdict.FORBIDDEN, Verdict.UNKNOWN, Verdict.CONDITIONAL)]
    assert ranks == sorted(ranks)
    assert Verdict.ALLOWED_WITH_OBLIGATIONS.rank < Verdict.ALLOWED.rank


# ---- COCO licence block join --------------------------------------------------------------------


def test_real_coco_licence_block_maps_to_spdx() -> None:
    block = realsamples.load(realsamples.COCO)["licenses"]  # the full real block (tests/data)
    mapping = coco_license_map(load_policy(), {b["id"]: (b["name"], b["url"]) for b in block})
    assert mapping == {
        1: "CC-BY-NC-SA-2.0",
        2: "CC-BY-NC-2.0",
        3: "CC-BY-NC-ND-2.0",
        4: "CC-BY-2.0",
        5: "CC-BY-SA-2.0",
        6: "CC-BY-ND-2.0",
        7: "LicenseRef-Flickr-Commons-NKCR",
        8: "LicenseRef-US-Gov-Work",
    }


def test_coco_join_prefers_the_licence_url_over_the_id() -> None:
    """A COCO-format file with its own numbering still joins right; an unknown licence is never allowed."""
    file_block = {
        1: ("Attribution License", "https://creativecommons.org/licenses/by/2.0"),
        9: ("Something else", "http://example.org/licence"),
    }
    assert coco_license_map(load_policy(), file_block) == {1: "CC-BY-2.0", 9: "NOASSERTION"}


# ---- user overrides and bad policy files --------------------------------------------------------


def _policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_user_policy_overrides_a_cell_and_adds_a_source(tmp_path: Path) -> None:
    path = _policy_file(
        tmp_path,
        """
[licenses.NOASSERTION]
commercial = "unknown"

[sources.mydata]
name = "In-house photos"
components.image = { license = "CC-BY-4.0" }
evidence = [{ quote = "All photos were shot by our staff under contract.", source = "contract 2024-17", url = "https://example.org/contracts/2024-17" }]
""",
    )
    policy = load_policy(path)
    assert evaluate(policy.term("NOASSERTION"), "commercial", LicenseConfig()).verdict == U
    assert policy.sources["mydata"].components["image"].license == "CC-BY-4.0"
    assert "cc3m" in policy.sources  # merged, not replaced


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[licenses."CC-BY-4.0"]\ncommercial = "yes"\n', r"licenses.*CC-BY-4.0.*commercial"),
        (
            '[sources.cc3m.components.image]\nlicense = "CC-BY-9.9"\n',
            r"unknown licence 'CC-BY-9.9'",
        ),
        (
            "[sources.x]\nname = 'x'\ncomponents.image = { license = 'CC-BY-4.0' }\nevidence = []\n",
            r"sources.x: needs at least one evidence",
        ),
        (
            '[[licenses."CC-BY-4.0".when]]\nsetting = "be_nice"\nequals = true\nuses = ["research"]\n'
            'verdict = "allowed"\nreason = "r"\n',
            r"unknown setting 'be_nice'",
        ),
        (
            '[[licenses."CC-BY-4.0".when]]\nsetting = "training_is_derivative"\nequals = true\n'
            'uses = ["research"]\nverdict = "allowed"\nreason = "r"\n',
            r"training_is_derivative' cannot equal True",
        ),
        ('[licenses."CC-BY-4.0"]\nresearh = "allowed"\n', r"unknown field `researh`"),
        ("[image_origins.source]\nrestrictions = ['LicenseRef-Nope']\n", r"unknown restriction"),
        (
            "[sources.x]\nname = 'x'\ncomponents.image = { license = 'CC-BY-4.0' }\n"
            "evidence = [{ quote = 'q', source = 'ticket 12' }]\n",
            r"sources.x: needs an evidence entry with a public url",
        ),
        (
            "[sources.x]\nname = 'x'\ncomponents.image = { license = 'CC-BY-4.0' }\n"
            "evidence = [{ quote = 'q', source = 's', url = 'ticket://12' }]\n",
            r"sources.x.evidence\[0\]: url 'ticket://12' is not an http\(s\) URL",
        ),
        ("[coco.license_ids]\n'3' = 'CC-BY-NC-ND-9.0'\n", r"coco.license_ids.3: unknown licence"),
        ("licenses = [1, 2\n", r"invalid TOML in licence policy"),
    ],
)
def test_bad_policy_is_one_clear_config_error(tmp_path: Path, text: str, message: str) -> None:
    path = _policy_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 2


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="licence policy file not found"):
        load_policy(tmp_path / "nope.toml")


def test_audit_toml_license_settings_are_typed(tmp_path: Path) -> None:
    cfg = tmp_path / "audit.toml"
    cfg.write_text('[license]\ntraining_is_derivative = "maybe"\n')
    with pytest.raises(ConfigError, match="training_is_derivative"):
        config.load(cfg)
    cfg.write_text('[license]\ntraining_is_derivative = "no"\npolicy = "p.toml"\n')
    assert config.load(cfg).license.training_is_derivative == "no"


def test_packaged_policy_is_valid_toml_with_version_1() -> None:
    assert tomllib.loads(packaged_policy_text())["version"] == 1


def test_every_policy_entry_rests_on_a_public_url() -> None:
    """A verdict's evidence chain cites each entry's quote and public URL; no entry cites a ticket."""
    policy = load_policy()
    entries = [
        *policy.licenses.values(),
        *policy.restrictions.values(),
        *policy.sources.values(),
        *policy.image_origins.values(),
    ]
    for entry in entries:
        assert any(e.url.startswith(("https://", "http://")) for e in entry.evidence), entry
    text = packaged_policy_text()
    assert "llava-audit issue" not in text and "LicenseRef-LLaVA-images-zip-research" not in text


def test_images_zip_entry_rests_on_the_llava_notice() -> None:
    policy = load_policy()
    urls = {e.url for e in policy.term("LicenseRef-LLaVA-images-zip-unlicensed").evidence}
    assert "https://github.com/haotian-liu/LLaVA/blob/main/docs/Data.md" in urls
    assert "https://huggingface.co/datasets/liuhaotian/LLaVA-CC3M-Pretrain-595K" in urls


def test_vqav2_is_cc_by_4_and_split_from_okvqa() -> None:
    policy = load_policy()
    vqa = policy.sources["vqav2"]
    assert vqa.components["source_annotation"].license == "CC-BY-4.0"
    assert vqa.evidence[0].url == "https://visualqa.org/terms.html"
    assert policy.sources["okvqa"].components["source_annotation"].license == "NOASSERTION"


def test_us_government_works_are_public_domain_in_the_us_only() -> None:
    policy = load_policy()
    us = policy.term("LicenseRef-US-Gov-Work")
    assert any("United States only" in o for o in us.obligations)
    assert any("courtesy" in o for o in us.obligations)
    assert any("courtesy" in o for o in policy.term("LicenseRef-Flickr-Commons-NKCR").obligations)


def test_a_config_setting_images_zip_permits_research_is_told_it_was_removed(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "audit.toml"
    cfg.write_text("[license]\nimages_zip_permits_research = true\n")
    with pytest.raises(ConfigError, match="images_zip_permits_research was removed") as info:
        config.load(cfg)
    assert info.value.exit_code == 2
    assert "conditional" in str(info.value)
