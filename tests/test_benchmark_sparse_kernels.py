"""benchmark/sparse_kernels.py at a toy size: the three variants, and a baseline checkout timed in the same rotation
for a paired before/after ratio (here the checkout itself, loaded a second time under other module names)."""

import importlib.util
import json
import os
import sys

from conftest import ROOT

PATH = os.path.join(ROOT, "benchmark", "sparse_kernels.py")
spec = importlib.util.spec_from_file_location("bench_sparse_kernels", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_the_benchmark_times_every_variant_and_a_baseline(tmp_path, monkeypatch):
    out = tmp_path / "kernels.json"
    flags = ["--agents", "td3", "sac", "--widths", "64", "--sparsities", "0.9", "--kernels", "0"]
    flags += ["--steps", "2", "--rounds", "2", "--baseline", ROOT, "--profile", "2", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["sparse_kernels.py", *flags])
    bench.main()
    result = json.loads(out.read_text())
    assert result["meta"]["baseline_commit"]
    for agent in ("td3", "sac"):
        rows = {r["variant"]: r for r in result["rows"] if r["agent"] == agent}
        assert list(rows) == ["dense", "masked", "kernels", "baseline"]
        assert all(len(r["ms_per_step"]) == 2 for r in rows.values())
        assert len(rows["kernels"]["vs_baseline"]) == 2 and "vs_baseline" not in rows["masked"]
        # the baseline builds the same networks, so the same layers go on the kernels ("0": every masked one)
        assert rows["baseline"]["sparse_kernel_layers"] == rows["kernels"]["sparse_kernel_layers"]
        assert rows["kernels"]["sparse_kernel_layers"]["qf1"] == ["fc1", "fc2"]
        assert rows["dense"]["sparse_kernel_layers"] == {"actor": [], "qf1": [], "qf2": []}
        # --profile: the kernels variant's operators, their shares adding up to the whole profiled time
        profile = rows["kernels"]["profile"]
        assert "profile" not in rows["dense"] and any(op["op"] == "aten::sparse_sampled_addmm" for op in profile)
        assert abs(sum(op["share"] for op in profile) - 1.0) < 1e-6
