"""The benchmarks that tests can afford, at their smallest size: they run and print what they promise."""
import importlib.util

import pytest


def test_paper_scale_runs_all_three_analyses_at_tiny_size(capsys):
    pytest.importorskip("bitsandbytes", reason="the llm extra is not installed")
    spec = importlib.util.spec_from_file_location("paper_scale", "benchmarks/paper_scale.py")
    paper_scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(paper_scale)
    lines = paper_scale.main(["--scale", "tiny", "--device", "cpu"])
    assert set(lines) == {"mlp", "dcgan", "mixtral"}
    for line in lines.values():
        assert line["coalitions_per_s"] > 0 and line["projected_hours"] > 0 and line["peak_host_gib"] > 0
    out = capsys.readouterr().out
    assert "device cpu" in out and "mixtral_projected_hours=" in out
