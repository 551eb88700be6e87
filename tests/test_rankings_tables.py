"""docs/rankings.md's tables are the committed JSON's, every setting and every ranking of it; the intervals and
verdicts are right on numbers whose answer is known."""
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rankings_tables", ROOT / "benchmarks" / "rankings_tables.py")
tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tables)


def test_the_t_interval_and_the_verdicts():
    mean, low, high = tables.interval([1.0, 2.0, 3.0])  # sd 1, se 1/sqrt(3), t(0.975, 2) = 4.3027
    assert mean == 2 and high - mean == pytest.approx(4.302653 / np.sqrt(3), rel=1e-6)
    assert np.isnan(tables.interval([1.0])[1]) and tables.verdict(np.nan, np.nan) == "one network: no interval"
    assert [tables.verdict(0.1, 0.3), tables.verdict(-0.3, -0.1), tables.verdict(-0.1, 0.1)] == \
        ["ahead", "behind", "level"]


def setting(shapley_area, other_area, networks=4):
    def row(name, family, area):
        return dict(name=name, family=family, evaluations=10, seconds=0.5,
                    metrics={m: [area, None] for m in tables.METRICS})
    rng = np.random.default_rng(0)
    return dict(model="m", score="accuracy", per_target=None, networks=[dict(rows=[
        row("shapley (2 orderings' worth)", "shapley", shapley_area + rng.normal(0, 0.01)),
        row("shapley (2 orderings' worth)", "shapley", shapley_area + rng.normal(0, 0.01)),
        row("weight norm", "weight norm", other_area + rng.normal(0, 0.01)),
        row("random", "random", 0.0), row("random", "random", 0.0)]) for _ in range(networks)])


def test_a_clear_lead_a_tie_and_a_loss_are_called_so():
    assert "ahead" in tables.verdict_table(setting(0.5, 0.2)).splitlines()[2]
    assert "level" in tables.verdict_table(setting(0.3, 0.3)).splitlines()[2]
    assert "behind" in tables.verdict_table(setting(0.1, 0.4)).splitlines()[2]
    table = tables.table(setting(0.5, 0.2))
    assert "| random (2 seeds) |" in table and "| weight norm |" in table and table.count("\n| ") == 4



def test_one_network_gets_an_interval_over_its_shapley_seeds():
    """Two seeds 0.5 and 0.7 against 0.2: differences 0.3 and 0.5, mean 0.4, half-width t(0.975, 1) x 0.1."""
    one = setting(0.0, 0.2, networks=1)
    rows = one["networks"][0]["rows"]
    for row, area in zip(rows[:2], (0.5, 0.7)):
        row["metrics"] = {m: [area, None] for m in tables.METRICS}
    rows[2]["metrics"] = {m: [0.2, None] for m in tables.METRICS}
    line = tables.verdict_table(one).splitlines()[2]
    half = 12.706205 * 0.1
    assert f"+0.400 [{0.4 - half:+.3f}, {0.4 + half:+.3f}] level over 2 Shapley seeds (one network)" in line
    rows[1]["metrics"] = {m: [0.5, None] for m in tables.METRICS}  # no spread over seeds: a sure lead
    assert "+0.300 [+0.300, +0.300] ahead over 2" in tables.verdict_table(one).splitlines()[2]

def test_the_docs_tables_are_the_committed_json():
    docs = [path.read_text() for path in tables.DOCS]
    marked = [(m[1], m[2], m[3]) for doc in docs for m in tables.MARKER.findall(doc)]  # (kind, file, which)
    files = sorted((ROOT / "docs" / "results").glob("*.json"))
    assert files and marked, "docs/results/*.json and the markers in docs/rankings.md"
    for path, doc in zip(tables.DOCS, docs):
        assert tables.rendered(doc) == doc, f"a table of {path.name} differs from its JSON: run rankings_tables.py"
    for path in files:  # every setting (or game) of every file has its table: none is left out
        data = json.loads(path.read_text())
        shown = [which for _, name, which in marked if name == path.name]
        kinds = {kind for kind, name, _ in marked if name == path.name}
        if kinds & {"error-bars", "cache"}:  # bench_error_bars.py's and bench_cache.py's: every cell a row
            kind = kinds.pop()
            assert "all" in shown, path.name
            block = tables.block(data, "all", kind)
            cells = [c for g in data["games"].values() for c in g["cells"]] if kind == "error-bars" else data["cells"]
            for c in cells:
                row = f"| {c['game']} | {c['method']} | {c['budget']} |" if kind == "error-bars" else \
                    f"| {c['method']} | {c['n']:,} |"
                assert row in block, (path.name, row)
            continue
        if "games" in data:  # bench_paper_sizes.py's: every game in full (estimator_tables.md); auto's summary, some
            def games(kind):
                return [g for k, name, which in marked if name == path.name and k == kind
                        for g in (data["games"] if which == "all" else which.split())]
            full, summed = games("estimators"), games("auto")
            assert sorted(full) == sorted(data["games"]), path.name
            assert {g.split(":")[0] for g in summed} <= set(data["games"]), path.name
            continue
        assert sorted(shown) == sorted(s["model"] for s in data["settings"]), path.name
    for kind, name, model in marked:  # and every ranking of a setting has its row
        if kind in ("estimators", "auto", "error-bars", "cache"):
            continue
        data = json.loads((ROOT / "docs" / "results" / name).read_text())
        chosen = next(s for s in data["settings"] if s["model"] == model)
        block = tables.block(data, model, kind)
        for row in chosen["networks"][0]["rows"]:
            if kind == "compress":
                assert f"| {row['removed']:.0%} | {row['ranking']} |" in block, (model, row)
                continue
            label = "random (" if row["family"] == "random" else row["name"].replace("|", "\\|")
            assert f"| {label}" in block, (model, row["name"])


def test_check_mode_fails_on_a_stale_table(tmp_path):
    doc = (ROOT / "docs" / "rankings.md").read_text()
    stale = re.sub(r"(<!-- rankings: \S+ .+? -->\n)(.*?)(<!-- /rankings -->)", r"\1| old | table |\n\3", doc,
                   count=1, flags=re.S)
    assert stale != doc
    (tmp_path / "rankings.md").write_text(stale)
    assert tables.main(["--doc", str(tmp_path / "rankings.md"), "--check"]) == 1
    assert tables.main(["--doc", str(tmp_path / "rankings.md")]) == 0
    assert (tmp_path / "rankings.md").read_text() == doc
