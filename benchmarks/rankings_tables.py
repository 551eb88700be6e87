"""The results tables of docs/rankings.md and docs/estimators.md, made from the committed JSON (docs/results/): for
benchmarks/bench_rankings.py every ranking a row, with 95% intervals over the trained networks, and per experiment
a verdict on each paired difference in area between the Shapley modes and another ranking; for bench_compress.py
every fraction and ranking; for bench_paper_sizes.py every game, budget and estimator.

    python benchmarks/rankings_tables.py                 # rewrite the tables between their markers
    python benchmarks/rankings_tables.py --check         # exit 1 if a page differs from the JSON

A table sits between `<!-- KIND: FILE WHICH -->` and `<!-- /KIND -->`: KIND rankings or compress (WHICH: the
setting's model), or estimators (every method) or auto (auto against iid and the best peer; WHICH: the games, or
all), or error-bars (bench_error_bars.py's coverage per variance class; WHICH: all, or summary), or cache
(bench_cache.py's; WHICH: all); the rest of the page is left as it is.
tests/test_rankings_tables.py fails when a table differs from its JSON.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DOCS = [ROOT / "docs" / "rankings.md", ROOT / "docs" / "estimators.md", ROOT / "docs" / "estimator_tables.md",
        ROOT / "docs" / "engine.md"]
METRICS = ("area", "top_10", "top_20", "bottom_50")
KINDS = "rankings|compress|estimators|auto|error-bars|cache"
MARKER = re.compile(rf"(<!-- ({KINDS}): (\S+) (.+?) -->\n)(.*?)(<!-- /\2 -->)", re.S)


def interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): a t interval over independent values; (mean, nan, nan) for fewer than two."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def verdict(low: float, high: float) -> str:
    if not np.isfinite(low):
        return "one network: no interval"
    return "ahead" if low > 0 else "behind" if high < 0 else "level"


def per_network(setting) -> dict:
    """{ranking name: (networks, metric columns)}: each network's metrics, its Shapley seeds averaged; columns are
    metric x (overall, per target). Rankings keep the order of their first appearance."""
    names = {}
    for network in setting["networks"]:
        seen = {}
        for row in network["rows"]:
            name = "random" if row["family"] == "random" else row["name"]
            seen.setdefault(name, []).append([v for m in METRICS for v in row["metrics"][m]])
        for name, values in seen.items():
            names.setdefault(name, []).append(np.mean(np.array(values, dtype=np.float64), 0))
    return {name: np.array(values) for name, values in names.items()}


def shapley_seeds(setting) -> dict:
    """{Shapley ranking name: its overall area per Shapley seed} on the setting's first network."""
    found = {}
    for row in setting["networks"][0]["rows"]:
        if row["family"] == "shapley":
            found.setdefault(row["name"], []).append(row["metrics"]["area"][0])
    return {name: np.array(values) for name, values in found.items()}


def costs(setting) -> dict:
    """{ranking name: (mean evaluations, mean seconds, rows averaged)}."""
    found = {}
    for network in setting["networks"]:
        for row in network["rows"]:
            name = "random" if row["family"] == "random" else row["name"]
            found.setdefault(name, []).append((row["evaluations"], row["seconds"]))
    return {name: (*np.mean(values, 0), len(values)) for name, values in found.items()}


def cell(values, column: int, digits: int = 3) -> str:
    mean, low, high = interval(values[:, column])
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.{digits}f}" if not np.isfinite(low) else f"{mean:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def table(setting) -> str:
    """Every ranking: each metric's mean over the networks ± the half-width of its 95% t interval (overall, and per
    target where the model has targets), and what it cost."""
    metrics, spent = per_network(setting), costs(setting)
    targets = setting.get("per_target")
    head = ["ranking", *(f"{m.replace('_', ' ')}" for m in ("area", "without top 10%", "without top 20%",
                                                              "without bottom 50%"))]
    if targets:
        head.insert(2, f"area per {targets}")
    lines = ["| " + " | ".join(head + ["evaluations", "seconds"]) + " |", "|" + " --- |" * (len(head) + 2)]
    for name, values in metrics.items():
        evaluations, seconds, rows = spent[name]
        cells = [cell(values, 2 * i) for i in range(len(METRICS))]
        if targets:
            cells.insert(1, cell(values, 1))
        label = f"random ({rows // len(setting['networks'])} seeds)" if name == "random" else name
        lines.append(f"| {label.replace('|', chr(92) + '|')} | " + " | ".join(cells) +
                     f" | {evaluations:,.0f} | {seconds:.2f} |")
    return "\n".join(lines)


def shapley_names(metrics) -> list[str]:
    return [name for name in metrics if name.startswith("shapley")]


def verdict_table(setting) -> str:
    """Area of each Shapley budget minus each other ranking's, paired by network: mean [95% t interval], verdict."""
    metrics = per_network(setting)
    shapley = shapley_names(metrics)
    seeds = shapley_seeds(setting) if len(setting["networks"]) == 1 else {}
    lines = ["| area of Shapley minus | " + " | ".join(shapley) + " |", "|" + " --- |" * (len(shapley) + 1)]
    for name, values in metrics.items():
        if name in shapley:
            continue
        row = []
        for s in shapley:
            mean, low, high = interval(metrics[s][:, 0] - values[:, 0])
            if np.isfinite(low):
                row.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] {verdict(low, high)}")
            elif len(seeds.get(s, ())) > 1:  # one network: what the Shapley seeds alone leave uncertain
                mean, low, high = interval(seeds[s] - values[0, 0])
                row.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] {verdict(low, high)} over "
                           f"{len(seeds[s])} Shapley seeds (one network)")
            else:
                row.append(f"{mean:+.3f} ({verdict(low, high)})")
        lines.append(f"| {name.replace('|', chr(92) + '|')} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def compress_table(setting) -> str:
    """Per fraction removed and ranking: the parameters kept and the held-out score straight after pruning and
    after the fine-tune, each the mean over the networks ± the half-width of its 95% t interval."""
    groups = {}
    for network in setting["networks"]:
        for row in network["rows"]:
            groups.setdefault((row["removed"], row["ranking"]), []).append(
                [row["parameters"], row["pruned"], row["finetuned"]])
    score = setting["score"].split(" ")[0]
    lines = [f"| units removed | ranking | parameters kept | {score}, pruned | {score}, fine-tuned |",
             "| --- | --- | --- | --- | --- |"]
    for (removed, ranking), values in groups.items():
        values = np.array(values)
        lines.append(f"| {removed:.0%} | {ranking} | {values[:, 0].mean():.1%} | {cell(values, 1)} | "
                     f"{cell(values, 2)} |")
    return "\n".join(lines)


def compress_verdicts(setting) -> str:
    """The Shapley modes' score minus each other ranking's, paired by network: mean [95% interval], verdict."""
    by = {}
    for network in setting["networks"]:
        for row in network["rows"]:
            by.setdefault((row["removed"], row["ranking"]), []).append((row["pruned"], row["finetuned"]))
    others = list(dict.fromkeys(r for _, r in by if r != "shapley"))
    head = [f"shapley minus {o}, {when}" for o in others for when in ("pruned", "fine-tuned")]
    lines = ["| units removed | " + " | ".join(head) + " |", "|" + " --- |" * (len(head) + 1)]
    for removed in dict.fromkeys(f for f, _ in by):
        cells = []
        for other in others:
            difference = np.array(by[removed, "shapley"]) - np.array(by[removed, other])
            for column in range(2):
                mean, low, high = interval(difference[:, column])
                cells.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] {verdict(low, high)}" if np.isfinite(low)
                             else f"{mean:+.3f} ({verdict(low, high)})")
        lines.append(f"| {removed:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block(results: dict, model: str, kind: str = "rankings") -> str:
    """The markdown between one pair of markers: the setting's table and its verdicts (estimators: the games')."""
    if kind in ("estimators", "auto", "error-bars", "cache"):  # the benchmark that wrote the JSON makes its table
        sys.path.insert(0, str(ROOT / "benchmarks"))
    if kind == "error-bars":
        from bench_error_bars import markdown, summary_markdown
        return (markdown if model == "all" else summary_markdown)(results) + "\n"
    if kind == "cache":
        from bench_cache import markdown
        return markdown(results) + "\n"
    if kind in ("estimators", "auto"):
        from bench_paper_sizes import markdown, summary_markdown
        return (markdown if kind == "estimators" else summary_markdown)(
            results, None if model == "all" else model.split()) + "\n"
    setting = next((s for s in results["settings"] if s["model"] == model), None)
    if setting is None:
        raise KeyError(f"no setting {model!r} in the results (it has {[s['model'] for s in results['settings']]})")
    n = len(setting["networks"])
    if kind == "compress":
        return (f"{setting['model']}: {n} trained network{'s' * (n > 1)}; Shapley at {results['budget']} "
                f"orderings' worth; fine-tune: {setting['finetune']}; held-out {setting['score']} ± the "
                f"half-width of a 95% t interval over the networks.\n\n{compress_table(setting)}\n\n"
                f"{compress_verdicts(setting)}\n")
    seeds = results.get("shapley_seeds", 1)
    return (f"{setting['model']}: {n} trained network{'s' * (n > 1)}, {seeds} Shapley seed{'s' * (seeds > 1)} "
            f"each; held-out {setting['score']}; ± the half-width of a 95% t interval over the networks.\n\n"
            f"{table(setting)}\n\n{verdict_table(setting)}\n")


def rendered(text: str, folder: Path = RESULTS) -> str:
    """`text` with every marked table made again from its JSON file in `folder`."""
    cache = {}

    def fill(match):
        kind, name = match.group(2), match.group(3)
        if name not in cache:
            if not (folder / name).exists():
                raise SystemExit(f"{folder / name} is missing: the page names the command that writes it")
            cache[name] = json.loads((folder / name).read_text())
        return match.group(1) + block(cache[name], match.group(4), kind) + match.group(6)
    return MARKER.sub(fill, text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--doc", type=Path, nargs="+", default=DOCS, help="the pages (default: %(default)s)")
    p.add_argument("--results", type=Path, default=RESULTS, help="the folder of the JSON files")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page differs")
    args = p.parse_args(argv)
    stale = 0
    for doc in args.doc:
        text = doc.read_text()
        new = rendered(text, args.results)
        if args.check:
            if new != text:
                print(f"{doc}: its tables differ from {args.results}; run benchmarks/rankings_tables.py")
                stale += 1
            else:
                print(f"{doc}: every table as its JSON says")
            continue
        doc.write_text(new)
        print(f"{doc}: {len(MARKER.findall(text))} tables written from {args.results}")
    return int(stale > 0)


if __name__ == "__main__":
    sys.exit(main())
