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


def _load(name):
    spec = importlib.util.spec_from_file_location(name, f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_estimator_headroom_on_games_with_known_structure():
    import itertools

    import numpy as np
    from common.exact import coalitions_of
    headroom = _load("estimator_headroom")
    n = 6
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=n), np.triu(rng.normal(size=(n, n)), 1), rng.normal(size=(n, n, n))
    x = coalitions_of(np.arange(2 ** n), n).astype(float)
    pairwise = x @ a + np.einsum("ci,ij,cj->c", x, b, x)
    cubic = pairwise + sum(c[i, j, k] * x[:, i] * x[:, j] * x[:, k] for i, j, k in itertools.combinations(range(n), 3))
    two_outputs = np.stack([pairwise, cubic], 1)

    # the variance bookkeeping against brute force: unit 0's marginals over coalitions of size 2 without it
    var, mean = headroom.size_variances(two_outputs, n)
    marginals = [cubic[(1 << (n - 1)) + code] - cubic[code] for code in range(2 ** n)
                 if not x[code, 0] and x[code].sum() == 2]
    assert len(marginals) == 10
    np.testing.assert_allclose([var[0, 2, 1], mean[0, 2, 1]], [np.var(marginals), np.mean(marginals)])

    on_pairwise = headroom.headroom(pairwise[:, None], n, degrees=(1, 2))
    assert on_pairwise["+ cv degree 1"] == pytest.approx(on_pairwise["size-stratified"])  # additive: removes nothing
    assert on_pairwise["+ cv degree 2"] == float("inf")  # the surrogate is the game
    assert 1 < on_pairwise["size-stratified"] <= on_pairwise["+ neyman"] < float("inf")
    on_cubic = headroom.headroom(cubic[:, None], n, degrees=(2, 3))
    assert 1 < on_cubic["+ cv degree 2"] < on_cubic["+ cv degree 3"] == float("inf")
    size_only = headroom.headroom((x.sum(1) ** 2)[:, None], n, degrees=())
    assert size_only["size-stratified"] == float("inf")  # every marginal is fixed by the coalition size


def test_bench_estimators_spends_the_same_evaluations_on_every_method():
    import numpy as np

    from common.exact import exact_shapley_modes
    bench = _load("bench_estimators")
    weights = np.random.default_rng(0).normal(size=(8, 3))

    def game(c):  # nonlinear: the methods differ
        return np.tanh(c.astype(float) @ weights) ** 2
    truth = exact_shapley_modes(game, 8)
    budget = 28 * 8 + 2  # 28 orderings' worth, the intact and lesioned networks included
    methods = ["iid", "antithetic", "latin-antithetic", "orthogonal", "chain-kernel", "surrogate", "kadd", "auto"]
    if bench.peers.available():
        methods += list(bench.peers.PEERS)
    for method in methods:
        run = bench.run_method(method, game, 8, 28, seed=0)
        assert run["cost"] <= budget
        if method in bench.peers.PEERS:  # shapiq spends its budget in rows per element, some of them repeats
            assert budget / 2 < (run["rows"] - 1) / 3  # (after one call that finds the output's shape)
        elif method not in bench.SAMPLERS:  # the estimators spend the evaluations; the samplers walk 28 orderings
            assert budget / 2 < run["cost"]  # less than a unit of work left: a coalition, or 16 orderings here
        assert run["distinct"] <= run["rows"] and run["own_seconds"] <= run["seconds"]
        if method in ("shapiq-owen", "shapiq-stratified"):  # samplers of marginals: noisy at 28 orderings' worth
            run = bench.run_method(method, game, 8, 2000, seed=0)
            assert np.sqrt(np.mean((run["modes"] - truth) ** 2) / np.mean(truth ** 2)) < 0.25
        else:
            assert np.abs(run["modes"] - truth).max() < 0.5 * np.abs(truth).max()
        assert (run["se"] is None) == (method in bench.peers.PEERS)
    assert all(bench.run_method(m, game, 8, 28, seed=0)["rows"] == bench.run_method(m, game, 8, 28, 0)["distinct"]
               for m in ("kadd", "iid"))  # our engine sends no coalition twice


def test_bench_estimators_scores_every_method_on_the_same_pixels_of_an_image_game(tmp_path, monkeypatch, capsys):
    """Outputs of more than 1024 elements: shapiq runs on fixed pixels, and every method after it too."""
    import numpy as np
    bench = _load("bench_estimators")
    weights = np.random.default_rng(1).normal(size=(6, 1100))
    monkeypatch.setattr(bench, "GAMES", {"toy-image": (lambda: lambda c: np.tanh(c.astype(float) @ weights), 6)})
    monkeypatch.setattr(bench, "CACHE", tmp_path)
    monkeypatch.setattr(bench, "PEER_PIXELS", 5)
    methods = ["kadd", "auto", *(["shapiq-kernelshap", "shapiq-permutation"] if bench.peers.available() else [])]
    bench.main(["--games", "toy-image", "--budgets", "4", "--seeds", "2", "--methods", *methods])
    out = capsys.readouterr().out
    assert all(f"toy-image           4n  {m}" in out for m in ["iid", *methods])
    assert "min_coverage=" in out and (tmp_path / "truth2_toy-image.npz").exists()


def test_bench_estimators_defaults_run_each_default_budget_on_its_game(tmp_path, monkeypatch, capsys):
    """--defaults: each (game, budget) of the table once, whatever --games and --budgets say."""
    import numpy as np
    bench = _load("bench_estimators")
    weights = np.random.default_rng(3).normal(size=(6, 2))
    toy = (lambda: lambda c: np.tanh(c.astype(float) @ weights) ** 2, 6)
    monkeypatch.setattr(bench, "GAMES", {"toy-a": toy, "toy-b": toy})
    monkeypatch.setattr(bench, "DEFAULTS", (("toy-a", 30, "every coalition"), ("toy-b", 2.5, "a few")))
    monkeypatch.setattr(bench, "CACHE", tmp_path)
    bench.main(["--defaults", "--seeds", "2", "--methods", "iid", "auto"])
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out if line.startswith("toy-") and "(n=" not in line]
    assert sorted({(r[0], r[1], r[2]) for r in rows}) == [("toy-a", "30n", "auto"), ("toy-a", "30n", "iid"),
                                                          ("toy-b", "2.5n", "auto"), ("toy-b", "2.5n", "iid")]
    assert [r[4] for r in rows if r[:3] == ["toy-a", "30n", "auto"]] == ["exact"] * 2  # 62 coalitions: all of them


def test_bench_estimators_summary_takes_the_worst_game_and_counts_two_exact_methods_level(capsys):
    import numpy as np
    bench = _load("bench_estimators")
    row = lambda g, m, rmse, iid, cov: (g, 4, m, m, iid / rmse, rmse, cov, 1, 1, 0.0, 0.0)  # noqa: E731
    bench.summary([row("a", "iid", 0.01, 0.01, 0.97), row("a", "auto", 1e-17, 0.01, 1.0),
                   row("a", "shapiq-kadd", 1e-15, 0.01, None),  # both exact: level, not 100x
                   row("b", "iid", 0.02, 0.02, 0.96), row("b", "auto", 0.01, 0.02, 0.93),
                   row("b", "shapiq-kernelshap", 0.011, 0.02, None), row("b", "shapiq-kadd", 0.0095, 0.02, None)])
    assert capsys.readouterr().out.split() == ["min_ratio_vs_iid=2.00", "min_ratio_vs_best_peer=0.95",
                                               "min_coverage=0.930"]
    # with each seed's squared errors, the worst ratio gets an interval from resampling the seeds
    rows = [row("b", "iid", 0.02, 0.02, 0.96), row("b", "auto", 0.01, 0.02, 0.93),
            row("b", "shapiq-kadd", 0.01, 0.02, None)]
    ours = np.array([1e-4, 0.5e-4, 1.5e-4, 1e-4])
    bench.summary(rows, {("b", 4, "auto"): ours, ("b", 4, "shapiq-kadd"): ours[[1, 0, 3, 2]],
                         ("b", 4, "iid"): 4 * ours})
    low, high = capsys.readouterr().out.split("95% interval over seeds ")[1].split(")")[0].split("-")
    assert float(low) < 1.0 < float(high) < 2.0


def test_bench_spex_scores_spex_against_exact_fsii_on_a_planted_game(monkeypatch, capsys):
    pytest.importorskip("spectralexplain", reason="the interactions extra is not installed")
    import numpy as np
    bench = _load("bench_spex")
    if not bench.peers.available():
        pytest.skip("the exact values come from shapiq (the bench extra)")
    weights = np.random.default_rng(2).normal(size=(12, 2))

    pairs = [{(0, 1): 0.9, (2, 3): 0.7, (4, 5): 0.5, (6, 7): -0.4, (8, 9): 0.3},
             {(0, 11): -0.8, (1, 10): 0.6, (2, 9): 0.5, (3, 8): 0.35, (4, 7): -0.25}]

    def planted(c):  # two outputs with five pairs each: their FSII of order 2 is exactly these values
        c = c.astype(float)
        return c @ weights + np.stack([sum(v * c[:, i] * c[:, j] for (i, j), v in p.items()) for p in pairs], 1)
    monkeypatch.setattr(bench, "games", lambda: {"mlp-softprob": lambda: planted})
    bench.main(["--games", "mlp-softprob", "--budgets", "500", "--seeds", "1"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("mlp-softprob  ")]
    assert [row[2] for row in rows] == ["common.spex", "shapiq"]
    ours = rows[0]
    assert float(ours[4]) < 0.05 and float(ours[5]) == float(ours[6]) == 1.0  # relative error, top-5, signs


def test_the_peers_wrapper_counts_distinct_coalitions_and_evaluates_each_once_per_element():
    import numpy as np
    peers = _load("peers")
    calls = []
    game = lambda c: calls.append(len(c)) or np.stack([c.sum(1), 10 * c[:, 0]], 1).astype(float)  # noqa: E731
    z = np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1]], bool)
    whole = peers.Cached(game)  # the whole output (our engine's calls): every row evaluated, as in a run
    np.testing.assert_array_equal(whole(z), [[2, 10], [2, 10], [2, 0]])
    assert calls == [3] and whole.rows == 3 and whole.distinct == 2
    calls.clear()
    one = peers.Cached(game, keep=[1])  # one element at a time (shapiq's): each coalition evaluated once
    np.testing.assert_array_equal(one(z, element=1), [10, 10, 0])
    np.testing.assert_array_equal(one(z[::-1], element=1), [0, 10, 10])
    assert calls == [2] and one.rows == 6 and one.distinct == 2
    one.CALL_ROWS = 1  # a whole budget asked at once reaches the game in calls of at most CALL_ROWS
    one(np.array([[1, 1, 1], [0, 0, 1], [1, 0, 1]], bool), element=1)
    assert calls == [2, 1, 1] and one.distinct == 4


def test_bench_rankings_compares_every_ranking_over_networks_and_the_notebook_draws_them(tmp_path, capsys):
    import json

    import numpy as np
    from common.notebooks import run_notebook
    bench = _load("bench_rankings")
    rank, held = bench.split_test(np.repeat(np.arange(10), 5))
    assert len(np.intersect1d(rank, held)) == 0 and len(rank) + len(held) == 50
    bench.main(["--experiments", "mlp", "dcgan", "--sizes", "10", "--regs", "l1", "--epochs", "1", "--networks", "2",
                "--dcgan-networks", "2", "--dcgan-steps", "2", "--budgets", "2", "5", "--shapley-seeds", "2",
                "--random-seeds", "2", "--out", str(tmp_path)])
    mlp, dcgan = (json.loads((tmp_path / f"rankings_{e}.json").read_text()) for e in ("mlp", "dcgan"))
    assert [s["model"] for s in mlp["settings"] + dcgan["settings"]] == ["MLP N = 10 l1", "DCGAN 112 filters"]
    for setting in mlp["settings"] + dcgan["settings"]:
        assert len(setting["networks"]) == 2
        for network in setting["networks"]:
            names = [r["name"] for r in network["rows"]]
            assert names.count("shapley (2 orderings' worth)") == names.count("shapley (5 orderings' worth)") == 2
            assert sum(r["family"] == "random" for r in network["rows"]) == 2
            assert all(len(r["top"]) == len(r["bottom"]) == len(network["ks"]) for r in network["rows"])
    assert len({json.dumps(n["rows"][0]["metrics"]) for n in dcgan["settings"][0]["networks"]}) == 2  # two seeds
    run_notebook("rankings", tmp_path / "rankings.ipynb", RESULTS=f"{tmp_path / 'rankings_mlp.json'},"
                 f"{tmp_path / 'rankings_dcgan.json'}", FIG_DIR=tmp_path / "fig")
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "cost_DCGAN_112_filters.png", "cost_MLP_N_10_l1.png", "removal_DCGAN_112_filters.png",
        "removal_MLP_N_10_l1.png"]
    out = capsys.readouterr().out
    for name in ("shapley (2 orderings' worth)", "leave-one-out", "leave-one-in", "weight norm",
                 "mean \\|activation\\|", "gradient x activation", "random (2 seeds)"):
        assert out.count(name) >= 2, name  # in both tables
    assert "| 11 |" in out and "| 113 |" in out  # leave-one-out's n + 1 evaluations
    assert out.count("area of Shapley minus") == 2


def test_bench_rankings_held_out_scores_average_to_the_games_recall():
    import numpy as np
    import torch
    from MLP.game import MLPGame
    from MLP.model import MLP
    bench = _load("bench_rankings")
    torch.manual_seed(0)
    model, x = MLP(12), torch.rand(60, 784)
    y = torch.as_tensor(np.random.default_rng(0).permutation(np.repeat(np.arange(10), 6)))
    coalitions = np.random.default_rng(1).random((5, 12)) > 0.3
    recall, held = MLPGame(model, x, y)(coalitions), bench.HeldOut(model, x, y)
    for digit in range(10):
        np.testing.assert_allclose(held.score(digit)(coalitions).mean(1), recall[:, digit], atol=1e-12)
    np.testing.assert_allclose(held.score()(coalitions).mean(1), recall.mean(1), atol=1e-12)


def test_bench_rankings_compares_the_experts_of_a_mixture_of_experts_and_the_heads_of_a_llama(tmp_path, capsys):
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    import json

    from games import save_tiny_llama, save_tiny_mixtral
    bench = _load("bench_rankings")
    save_tiny_mixtral(tmp_path / "moe")
    save_tiny_llama(tmp_path / "llama")
    bench.main(["--experiments", "moe", "heads", "--moe-model", str(tmp_path / "moe"), "--heads-model",
                str(tmp_path / "llama"), "--heads-layers", "1", "--llm-items", "2", "--budgets", "4",
                "--shapley-seeds", "1", "--random-seeds", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "tiny MoE 8 experts" in out and "gradient x activation" in out and "weight norm (w2)" in out
    assert "| 9 |" in out  # leave-one-out's n + 1 evaluations of the 8 experts
    assert "one network: no interval" in out
    moe, heads = (json.loads((tmp_path / f"rankings_{e}.json").read_text())["settings"] for e in ("moe", "heads"))
    assert [moe[0]["model"], heads[0]["model"]] == ["tiny MoE 8 experts", "llama 4 heads"]
    import numpy as np
    rows = {row["name"]: row for row in heads[0]["networks"][0]["rows"]}
    assert rows["leave-one-out"]["evaluations"] == 5 and "weight norm" in rows
    assert all(np.isfinite(row["metrics"]["area"][0]) for row in rows.values())


def test_bench_compress_prunes_by_each_ranking_and_fine_tunes(tmp_path, capsys):
    import json

    import numpy as np
    import torch
    from MLP.model import MLP
    bench = _load("bench_compress")
    torch.manual_seed(0)
    model = MLP(6)
    expected = [np.sqrt(float((model.fc1.weight[i] ** 2).sum() + model.fc1.bias[i] ** 2 +
                              (model.fc2.weight[:, i] ** 2).sum())) for i in range(6)]
    np.testing.assert_allclose(bench.magnitude(model), expected, rtol=1e-6)
    bench.main(["--experiments", "mlp", "--sizes", "10", "--regs", "l2", "--networks", "2", "--epochs", "1",
                "--fractions", "0.5", "0.9", "--budget", "4", "--out", str(tmp_path)])
    settings = json.loads((tmp_path / "compress_mlp.json").read_text())["settings"]
    rows = settings[0]["networks"][0]["rows"]
    assert [(r["ranking"], r["removed"]) for r in rows] == [(k, f) for k in ("shapley", "magnitude", "taylor")
                                                            for f in (0.5, 0.9)]
    assert all(0 <= r["pruned"] <= 1 and 0 <= r["finetuned"] <= 1 for r in rows)
    assert rows[0]["parameters"] == (5 * 795 + 10) / (10 * 795 + 10)  # 784 + 1 in, 10 out per unit; fc2's bias
    out = capsys.readouterr().out
    assert "shapley minus magnitude, pruned" in out and "| 90% | taylor |" in out


def test_bench_compress_dcgan_prunes_every_layer_alike_and_distils(tmp_path, capsys):
    import json

    import numpy as np
    import torch
    from common.lesion import find_units
    from common.prune import pruned
    from DCGAN.compress import hidden_wiring
    from DCGAN.model import Generator, make_config
    bench = _load("bench_compress")
    torch.manual_seed(0)
    generator = Generator(make_config("tiny32", widths=(6, 4, 2))).eval()
    for block in generator.blocks:  # a BatchNorm scale that is not 1, so that it counts
        block.bn.weight.data.uniform_(-2, 2)
    noise = torch.randn(4, generator.cfg["nz"], 1, 1)
    units = find_units(generator, [f"blocks.{i}.act" for i in range(3)], noise[:1])
    reader = {0: generator.blocks[1].conv, 1: generator.blocks[2].conv, 2: generator.out.conv}
    expected = [abs(float(generator.blocks[int(u.module.split(".")[1])].bn.weight[u.index])) *
                float(reader[int(u.module.split(".")[1])].weight[u.index].norm()) for u in units]
    np.testing.assert_allclose(bench.filter_magnitude(generator, units), expected, rtol=1e-6)
    # distillation brings a pruned generator's images closer to the original's
    keep = np.ones(len(units), bool)
    keep[[0, 1, 6]] = False
    small = pruned(generator, units, keep, hidden_wiring(generator))
    held = torch.randn(16, generator.cfg["nz"], 1, 1)
    with torch.no_grad():
        intact = generator(held)
    before = bench.psnr(small, held, intact)
    args = type("Args", (), dict(distill_steps=30, distill_lr=1e-2))
    assert bench.psnr(bench.distilled(small, generator, args, seed=0), held, intact) > before + 0.5

    bench.main(["--experiments", "dcgan", "--dcgan-networks", "2", "--dcgan-steps", "3", "--fractions", "0.5",
                "--budget", "2", "--distill-steps", "3", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "compress_dcgan.json").read_text())
    assert not (tmp_path / "compress_mlp.json").exists()
    (setting,) = results["settings"]
    assert setting["model"] == "DCGAN 112 filters" and len(setting["networks"]) == 2
    rows = setting["networks"][0]["rows"]
    assert [r["ranking"] for r in rows] == ["shapley", "magnitude", "taylor"]
    # half of every layer: (64, 32, 16) -> (32, 16, 8), whichever ranking chose them
    small = Generator(make_config("tiny32", widths=(32, 16, 8)))
    full = Generator(make_config("tiny32"))
    share = sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in full.parameters())
    assert all(r["parameters"] == share for r in rows)
    assert all(np.isfinite(r["pruned"]) and np.isfinite(r["finetuned"]) for r in rows)
    out = capsys.readouterr().out
    assert "PSNR, pruned" in out and "shapley minus taylor, fine-tuned" in out


def test_bench_rankings_trains_one_tiny_moe_per_seed_where_missing(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    import json
    import shutil

    import LLM.train_tiny_moe as tiny
    from games import save_tiny_mixtral
    bench = _load("bench_rankings")
    save_tiny_mixtral(tmp_path / "made", experts=2)
    trained = []

    def train(out, seed, progress):  # stands in for the minutes of training: records what it was asked
        trained.append((out.name, seed))
        shutil.copytree(tmp_path / "made", out)
        return dict(train_seconds=0, steps=0, parameters=0, scores={})
    monkeypatch.setattr(tiny, "DEFAULT_OUT", tmp_path / "runs" / "tiny_moe")
    monkeypatch.setattr(tiny, "train", train)
    shutil.copytree(tmp_path / "made", tmp_path / "runs" / "tiny_moe_seed4")  # already there: not trained again
    bench.main(["--experiments", "moe", "--moe-networks", "3", "--seed", "3", "--llm-items", "2", "--budgets", "2",
                "--shapley-seeds", "1", "--random-seeds", "2", "--out", str(tmp_path)])
    assert trained == [("tiny_moe_seed3", 3), ("tiny_moe_seed5", 5)]
    assert tiny.seed_folder(0) == tmp_path / "runs" / "tiny_moe"
    (setting,) = json.loads((tmp_path / "rankings_moe.json").read_text())["settings"]
    assert [network["seed"] for network in setting["networks"]] == [3, 4, 5]
    assert "3 networks" in capsys.readouterr().out


def test_an_interrupted_benchmark_goes_on_from_its_last_finished_network(tmp_path, monkeypatch, capsys):
    import json
    bench = _load("bench_rankings")
    argv = ["--experiments", "mlp", "--sizes", "6", "--regs", "l1", "--epochs", "1", "--networks", "3",
            "--budgets", "2", "--shapley-seeds", "1", "--random-seeds", "1"]
    bench.main(argv + ["--out", str(tmp_path / "whole")])
    trained, train_mlp = [], bench.train_mlp

    def train(*a, seed, **k):
        if seed == 1 and not trained.count(1):
            trained.append(1)
            raise KeyboardInterrupt  # the second network is cut off
        trained.append(seed)
        return train_mlp(*a, seed=seed, **k)
    monkeypatch.setattr(bench, "train_mlp", train)
    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        bench.main(argv + ["--out", str(out)])
    assert not (out / "rankings_mlp.json").exists()
    journal = json.loads((out / "rankings_mlp.json.partial").read_text())
    assert len(journal["done"]) == 1 and "threads" not in journal["config"]  # not a setting of the results
    bench.main(argv + ["--out", str(out)])
    assert trained == [0, 1, 1, 2] and "1 network(s) already done" in capsys.readouterr().out
    assert not (out / "rankings_mlp.json.partial").exists()

    def metrics(folder):
        (setting,) = json.loads((folder / "rankings_mlp.json").read_text())["settings"]
        return [[(row["name"], row["metrics"]) for row in network["rows"]] for network in setting["networks"]]
    assert metrics(out) == metrics(tmp_path / "whole")
    # other settings: the journal is not used
    (out / "rankings_mlp.json.partial").write_text(json.dumps(dict(config={"seed": 9}, done={"x": {}})))
    bench.main(argv + ["--out", str(out), "--networks", "1"])
    assert "other settings: starting afresh" in capsys.readouterr().out
    assert len(json.loads((out / "rankings_mlp.json").read_text())["settings"][0]["networks"]) == 1


def test_bench_paper_sizes_judges_against_a_reference_and_flags_a_coarse_one(tmp_path, monkeypatch, capsys):
    import numpy as np
    from common.exact import exact_marginal_variance, exact_shapley_modes
    bench = _load("bench_paper_sizes")
    weights = np.random.default_rng(0).normal(size=(12, 3))

    def game(c):
        return np.tanh(c.astype(float) @ weights / 2) ** 2
    monkeypatch.setattr(bench, "CACHE", tmp_path)
    monkeypatch.setattr(bench, "GAMES", {"toy": dict(build=lambda: (game, "a toy"), n=12, real_cost=lambda g, n: 1e-3,
                                                     real="declared", reference=3000),
                                         "exact-toy": dict(build=lambda: (game, "a toy"), n=12,
                                                           real_cost=lambda g, n: 1e-3, real="declared",
                                                           reference="exact")})
    bench.main(["--games", "toy", "--budgets", "5", "--seeds", "2", "--out", str(tmp_path / "r.json"), "--methods", "iid", "antithetic", "auto", *(["shapiq-permutation"] if bench.peers.available() else [])])
    out = capsys.readouterr().out
    exact = exact_shapley_modes(game, 12)
    modes, variance, spread = bench.reference("toy", game, 12, 3000)  # from the cache the run wrote
    assert modes.shape == (12, 4)  # the three elements and their mean
    assert not list(tmp_path.glob("*.ckpt*"))  # the reference's checkpoint goes once the reference is saved
    z = np.abs(modes[:, :3] - exact) / np.sqrt(variance[:, :3])
    assert z.max() < 5 and np.allclose(modes[:, 3], exact.mean(1), atol=5 * np.sqrt(variance[:, 3]).max())
    table = out[out.index("ratio: RMSE(iid)"):]
    assert table.count("\ntoy:mean ") == 3 + bench.peers.available() and table.count("\ntoy   ") == 3
    assert "coarse reference" not in out and "min_ratio_vs_iid=" in out and "min_coverage=" in out
    import json
    results = json.loads((tmp_path / "r.json").read_text())
    assert bench.markdown(results) in out and "| toy:mean | 5 |" in bench.markdown(results)
    summed = bench.summary_markdown(results).splitlines()
    assert len(summed) == 2 + 2 and summed[2].startswith("| toy | 5 | antithetic/chain | ")  # auto's rows only
    bench.main(["--games", "toy", "--budgets", "30", "--seeds", "2", "--reference-orderings", "20",
                "--methods", "iid", "auto", "--out", str(tmp_path / "coarse.json")])
    out = capsys.readouterr().out
    assert "(coarse reference)" in out and "min_ratio_vs_iid=- (no cell with a fine enough reference)" in out
    classes = bench.variance_classes(np.arange(20.0)[::-1, None])
    assert [list(classes[k]) for k in ("quiet", "middle", "loud")] == [list(range(19, 9, -1)), list(range(9, 1, -1)),
                                                                        [1, 0]]
    # a small game judged against its exact values: the reference adds no variance, kadd fits order 3 there
    bench.main(["--games", "exact-toy", "--budgets", "48", "--seeds", "2", "--methods", "iid", "kadd",
                "--out", str(tmp_path / "exact.json")])
    out = capsys.readouterr().out
    modes, variance, spread = bench.reference("exact-toy", game, 12, "exact")
    np.testing.assert_allclose(modes[:, :3], exact, atol=1e-12)
    np.testing.assert_allclose(spread[:, :3], exact_marginal_variance(game, 12), atol=1e-12)  # what ranks the units
    assert not variance.any() and "kadd (order 3)" in out and "(coarse reference)" not in out
    cells = json.loads((tmp_path / "exact.json").read_text())["games"]["exact-toy"]["cells"]
    assert all(0 <= c[k] <= 1 for c in cells for k in ("coverage", "quiet", "middle", "loud"))
    for bad, message in ((["--seeds", "1"], "--seeds must be at least 2"), (["--out", str(tmp_path)], "is a folder")):
        with pytest.raises(SystemExit):
            bench.main(["--games", "toy", *bad])
        assert message in capsys.readouterr().err


def test_bench_compress_keeps_the_same_heads_per_group_for_every_ranking_and_fine_tunes(tmp_path, capsys):
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    import json

    import numpy as np
    from games import save_tiny_mixtral
    bench = _load("bench_compress")
    model = save_tiny_mixtral(tmp_path / "moe")
    bench.main(["--experiments", "moe", "--moe-model", str(tmp_path / "moe"), "--llm-items", "2", "--budget", "2",
                "--moe-finetune-steps", "3", "--out", str(tmp_path)])
    (setting,) = json.loads((tmp_path / "compress_moe.json").read_text())["settings"]
    rows = setting["networks"][0]["rows"]
    assert [(r["ranking"], r["removed"]) for r in rows] == [("shapley", 0.5), ("magnitude", 0.5), ("taylor", 0.5)]
    # 2 layers of 4 query heads in 2 groups: one per group kept, so q_proj and o_proj lose half of their heads
    d, hidden = 8, 32
    total = sum(p.numel() for p in model.parameters())
    assert all(r["parameters"] == (total - 2 * 2 * (2 * d * hidden)) / total for r in rows)
    assert all(np.isfinite(r["pruned"]) and np.isfinite(r["finetuned"]) and r["pruned"] < 0 for r in rows)
    assert rows[0]["finetuned"] != rows[0]["pruned"]
    out = capsys.readouterr().out
    assert "tiny MoE attention heads" in out and "shapley minus taylor, fine-tuned" in out
    with pytest.raises(SystemExit, match="has 2 query heads per key/value group; keep 1 to 1"):
        bench.main(["--experiments", "moe", "--moe-model", str(tmp_path / "moe"), "--keep-per-group", "2",
                    "--out", str(tmp_path / "other")])
    assert not (tmp_path / "other").exists()


def test_bench_error_bars_moderated_prior_finds_its_strength_and_the_hub_game_is_exact(tmp_path, capsys):
    """limma's estimate of d0 from rows whose variances are drawn around s0^2 with d0 = 4 (and with all alike: d0
    infinite), the hub game's analytic values against exact ones, and a smoke run that writes its table."""
    import json

    import numpy as np
    from scipy import special

    from common.exact import exact_shapley_modes
    from common.moments import Moments
    bench = _load("bench_error_bars")
    assert abs(bench.trigamma_inverse(float(special.polygamma(1, 2.5))) - 2.5) < 1e-8
    rng = np.random.default_rng(0)
    rows, samples = 4000, 9
    for d0, sigma2 in ((4.0, 4 / rng.chisquare(4, rows)), (np.inf, np.ones(rows))):
        m = Moments(1, rows, (1,))
        for _ in range(samples):
            m.add(rng.normal(size=(1, rows, 1)) * np.sqrt(sigma2)[None, :, None])
        prior = bench.moderated_prior(m)
        assert (2.5 < prior.strength < 6) if np.isfinite(d0) else prior.strength > 100, prior.strength
        assert 0.7 < float(prior.variance[0]) < 1.4  # s0^2 = 1 in both
    game, truth = bench.hub_game(12)
    np.testing.assert_allclose(exact_shapley_modes(game, 12), truth, atol=1e-12)
    bench.main(["--games", "hub-12", "--seeds", "3", "--budgets", "5", "40", "--out", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "e.json").read_text())
    cells = results["games"]["hub-12"]["cells"]
    # chain-kernel needs 2 (n - 1) orderings a group and two groups for error bars: not at 5 orderings, nor at 40
    assert {(c["method"], c["budget"]) for c in cells} == {(m, b) for m in ("iid", "antithetic") for b in (5, 40)}
    assert {c["prior"] for c in cells} == {"pooled", "moderated"}
    assert all(0 <= c[k] <= 1 for c in cells for k in ("all", "quiet", "middle", "loud"))
    assert bench.markdown(results) in out and "min_loud_pooled=" in out
    assert bench.summary_markdown(results).count("| hub-12 (12 units) |") == 1


@pytest.mark.parametrize("method", ["iid", "antithetic"])
def test_the_default_error_bars_cover_the_loudest_units_of_a_hub_game_at_200_units(method):
    """The chains' 95% intervals at 10 orderings' worth, over 12 seeds: every class of units at least the floor a
    binomial count allows, the loudest tenth (the hubs and the units that vary most) included."""
    import numpy as np
    from games import coverage_floor
    bench = _load("bench_error_bars")
    game, n, truth, spread, _ = bench.build("hub-200")
    classes = bench.sizes.variance_classes(spread)
    runs = [bench.covered(game, n, truth, method, 10, seed)[0]["pooled"] for seed in range(12)]
    for name, units in classes.items():
        assert np.mean([inside[units].mean() for inside in runs]) >= coverage_floor(0.95, len(runs)), name


def test_bench_cache_counts_what_the_cache_buys_at_equal_evaluations(tmp_path, capsys):
    """On 12 units the chains' coalitions repeat: the cache buys more orderings for the same distinct evaluations;
    kadd plans distinct coalitions either way; both runs spend at most the budget."""
    import json
    bench = _load("bench_cache")
    bench.main(["--methods", "iid chain", "kadd", "--sizes", "12", "--budgets", "100",
                "--out", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "c.json").read_text())
    chain, kadd = results["cells"]
    assert chain["saving"] > 1.5 and kadd["saving"] == 1.0 and kadd["walked_on"] == 100 * 12
    assert all(c[k] <= 100 * 12 + 2 for c in results["cells"] for k in ("evaluations_on", "evaluations_off"))
    assert bench.markdown(results) in out and "| iid chain | 12 |" in out
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "1"])
    assert "at least 2 units" in capsys.readouterr().err
