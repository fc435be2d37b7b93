"""Every name of the public contract (../shared/API.md) is importable from `genloss`."""

import inspect
import re
from pathlib import Path

import pytest

import genloss as gl

API = Path(__file__).resolve().parents[2] / "shared" / "API.md"

# The contract's names, section by section (kept here too, so the test runs without ../shared).
CONTRACT = {
    "Reconstruction": ["l1_loss", "mse_loss", "huber_loss", "charbonnier_loss", "gradient_difference_loss"],
    "Adversarial": ["discriminator_loss", "generator_loss"],
    "Regularizers": ["r1_penalty", "r2_penalty", "gradient_penalty", "lecam_penalty", "adaptive_weight"],
    "Composition": ["Schedule", "CompositeLoss"],
    "Diagnostics": ["gradient_norms", "discriminator_stats"],
    "Augmentation": ["diff_augment"],
}

SIGNATURES = {
    "l1_loss": "(pred, target, *, mask=None, reduction='mean')",
    "mse_loss": "(pred, target, *, mask=None, reduction='mean')",
    "huber_loss": "(pred, target, *, delta=1.0, mask=None, reduction='mean')",
    "charbonnier_loss": "(pred, target, *, eps=0.001, mask=None, reduction='mean')",
    "gradient_difference_loss": "(pred, target, *, alpha=1.0, reduction='mean')",
    "discriminator_loss": "(real_logits, fake_logits, *, kind='hinge', reduction='mean')",
    "generator_loss": "(fake_logits, *, kind='hinge', real_logits=None, reduction='mean')",
    "adaptive_weight": "(reconstruction_loss, generator_loss, last_layer_weight, *, eps=0.0001, max_weight=10000.0)",
    "gradient_norms": "(terms, wrt)",
    "discriminator_stats": "(real_logits, fake_logits)",
    "diff_augment": "(x, policy='color,translation,cutout', *, generator=None)",
}


@pytest.mark.parametrize("name", [n for names in CONTRACT.values() for n in names])
def test_importable_and_exported(name):
    assert hasattr(gl, name) and name in gl.__all__


def test_all_is_sorted_and_resolves():
    assert gl.__all__ == sorted(gl.__all__)
    for name in gl.__all__:
        assert getattr(gl, name) is not None


def plain_signature(fn):
    """The signature as written in the contract: names, '*', defaults; no annotations."""
    parts, star = [], False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return "(" + ", ".join(parts) + ")"


@pytest.mark.parametrize("name", SIGNATURES)
def test_signature(name):
    # Extra keyword-only options may follow the contract's (e.g. r1_penalty's grad_scale), so
    # the contract's signature must be a prefix once keywords are compared as a set.
    ours = plain_signature(getattr(gl, name))[1:-1].split(", ")
    expected = SIGNATURES[name][1:-1].split(", ")
    star = expected.index("*") if "*" in expected else len(expected)
    assert ours[:star] == expected[:star]
    assert set(expected[star:]) <= set(ours[star:])


@pytest.mark.skipif(not API.exists(), reason="../shared/API.md is not beside this checkout")
def test_contract_file_names_are_exported():
    # Names the contract defines: lines, list items and table cells that open with `name(`.
    text = API.read_text()
    for section, names in CONTRACT.items():
        body = text.split(f"## {section}")[1].split("\n## ")[0]
        found = set(re.findall(r"^(?:- |\| )?`([A-Za-z_][A-Za-z0-9_]*)\(", body, re.MULTILINE))
        assert set(names) <= found, (section, set(names) - found)
        for name in found:
            assert hasattr(gl, name), name
