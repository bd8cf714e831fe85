"""The sparse-training block must be the same text in every script that carries it."""

import glob
import os

from conftest import ROOT

BEGIN = "# --- sparse training (identical in every script) ---"
END = "# --- end sparse training ---"


def blocks() -> dict[str, str]:
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "sparse_*.py"))):
        text = open(path, encoding="utf-8").read()
        assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{path} needs exactly one pair of block markers"
        out[os.path.basename(path)] = text.split(BEGIN, 1)[1].split(END, 1)[0]
    return out


def test_every_script_has_the_same_block():
    found = blocks()
    assert "sparse_td3_continuous.py" in found
    reference = found["sparse_td3_continuous.py"]
    assert "class SparseNetwork" in reference
    for name, body in found.items():
        assert body == reference, f"{name}'s sparse block differs from sparse_td3_continuous.py's"
