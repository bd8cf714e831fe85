"""The three shared sections (the sparse-training algorithm, the optional sparse kernels, and the run infrastructure at
the end of the file) must be the same text in every script that carries them."""

import glob
import os

import pytest
from conftest import ROOT

SECTIONS = {
    "sparse training": (
        "# --- sparse training (identical in every script) ---",
        "# --- end sparse training ---",
        "class SparseNetwork",
    ),
    "sparse kernels": (
        "# --- sparse kernels (identical in every script; optional, --sparse-kernels) ---",
        "# --- end sparse kernels ---",
        "class SparseLinearFunction",
    ),
    "run infrastructure": (
        "# --- run infrastructure (identical in every script; a first-time reader may skip it) ---",
        "# --- end run infrastructure ---",
        "def save_checkpoint",
    ),
}


def sections(begin: str, end: str) -> dict[str, str]:
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "sparse_*.py"))):
        text = open(path, encoding="utf-8").read()
        assert text.count(begin) == 1 and text.count(end) == 1, f"{path} needs exactly one pair of {begin!r} markers"
        out[os.path.basename(path)] = text.split(begin, 1)[1].split(end, 1)[0]
    return out


@pytest.mark.parametrize("section", SECTIONS)
def test_every_script_has_the_same_section(section):
    begin, end, landmark = SECTIONS[section]
    found = sections(begin, end)
    assert len(found) == 4
    reference = found["sparse_td3_continuous.py"]
    assert landmark in reference
    for name, body in found.items():
        assert body == reference, f"{name}'s {section} section differs from sparse_td3_continuous.py's"


def test_the_sections_come_in_the_order_of_learning():
    """Args, then the sparse algorithm, then the agent and train(), then the sparse kernels and the infrastructure,
    then __main__."""
    for path in sorted(glob.glob(os.path.join(ROOT, "sparse_*.py"))):
        text = open(path, encoding="utf-8").read()
        marks = ["class Args", SECTIONS["sparse training"][0], SECTIONS["sparse training"][1], "def train("]
        marks += [SECTIONS["sparse kernels"][0], SECTIONS["sparse kernels"][1]]
        marks += [SECTIONS["run infrastructure"][0], SECTIONS["run infrastructure"][1], 'if __name__ == "__main__":']
        positions = [text.index(m) for m in marks]
        assert positions == sorted(positions), path
