"""Bad input is a clear error that names the problem, with a nonzero exit, before any model loads or trains,
and nothing is written or changed."""
import importlib
from functools import partial
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from common import Budget, Checkpoint, Compute, Method, Ray, TargetSE, load, shapley_modes

ROOT = Path(__file__).resolve().parents[1]
SKIP = {".venv", ".git", "__pycache__", ".pytest_cache", ".cache"}


def snapshot(*folders) -> dict:
    files = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if d not in SKIP]
            for name in filenames:
                path = Path(dirpath, name)
                stat = path.stat()
                files[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return files


SCRIPTS = ("MLP.compute_msa", "MLP.train", "DCGAN.compute_msa", "DCGAN.train", "DCGAN.cluster", "DCGAN.lesion_clusters",
           "LLM.compute_msa", "LLM.train_tiny_moe", "LLM.removal_curves", "MLP.compress", "DCGAN.compress",
           "LLM.compress")


@pytest.fixture
def sentinels(monkeypatch):
    """Loading or training anything fails the test: errors must come first. Every module that holds one of the
    loaders (imported by name) gets the sentinel, and monkeypatch puts the real ones back afterwards."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded or trained before the bad input was caught")
    for script in SCRIPTS:  # imported before patching, so that no module binds the sentinel for good
        importlib.import_module(script)
    loaders = {getattr(importlib.import_module(module), name) for module, name in (
        ("LLM.load", "load_model"), ("LLM.train_tiny_moe", "train"), ("MLP.train", "load_model"),
        ("DCGAN.model", "load_generator"), ("MLP.train", "train_mlp"))}
    for module in [m for name, m in list(sys.modules.items()) if name.split(".")[0] in ("MLP", "LLM", "DCGAN")]:
        for attribute, value in list(vars(module).items()):
            if callable(value) and value in loaders:
                monkeypatch.setattr(module, attribute, forbidden)


def cases(tmp):
    """(script, argv, what the error says); `tmp` is the test's folder, holding a_file and the folder empty/."""
    a_file = tmp / "a_file"
    empty = tmp / "empty"
    result = tmp / "result.npz"
    mlp, dcgan, llm = "MLP.compute_msa", "DCGAN.compute_msa", "LLM.compute_msa"
    return [
        (mlp, ["--test-images", "-5"], "--test-images: must be a positive integer"),
        (mlp, ["--test-images", "0"], "--test-images: must be a positive integer"),
        (mlp, ["--budget", "0"], "--budget: must be a whole number of evaluations"),
        (mlp, ["--budget", "12x"], "--budget: must be a number of evaluations \\(20000\\) or of orderings"),
        (mlp, ["--n-permutations", "200"], "--n-permutations 200 is now --budget 200n"),
        (mlp, ["--seed", "-1"], "--seed: must be an integer >= 0"),
        (mlp, ["--batch-size", "0"], "--batch-size: must be a positive integer"),
        (mlp, ["--checkpoint-every", "-1"], "--checkpoint-every: must be a finite number >= 0"),
        (mlp, ["--threads", "0"], "--threads: must be a positive integer"),
        (mlp, ["--backend", "ray", "--workers", "0"], "--workers: must be a positive integer"),
        (mlp, ["--sampler", "sobol"], "--sampler: invalid choice"),
        (mlp, ["--backend", "ray", "--resume"], "checkpoints are written by the local runner"),
        (mlp, ["--backend", "ray", "--target-se", "0.1"], "on Ray the shards run to the end"),
        (mlp, ["--address", "localhost:6379"], "--address and --workers are options of --backend ray"),
        (mlp, ["--target-se", "0"], "--target-se: must be a finite number > 0"),
        (mlp, ["--target-relative"], "a target needs se, the standard error to stop at"),
        (mlp, ["--pairs", "1,2"], "--pairs needs --interactions pairs"),
        (mlp, ["--interactions", "pairs", "--pairs", "1"], "--pairs takes pairs of two indices"),
        (mlp, ["--interactions", "pairs", "--backend", "msapy"], "--interactions runs on the batched engine"),
        (mlp, ["--engine", "msapy"], "--engine msapy: msapy's walk is now --backend msapy"),
        (mlp, ["--estimator", "msapy"], "--estimator msapy: msapy's walk is now --backend msapy"),
        (mlp, ["--backend", "msapy", "--estimator", "kadd"], "msapy's walk computes the chain mean only"),
        (mlp, ["--estimator", "kadd", "--sampler", "latin"], "the kadd estimator walks no orderings"),
        (mlp, ["--estimator", "chain-kernel", "--interactions", "spex"], "it cannot take --estimator chain-kernel"),
        (mlp, ["--backend", "msapy", "--target-se", "0.1"], "msapy's own lazy walk, which cannot honour a target"),
        (mlp, ["--estimator", "kadd", "--target-se", "0.1"], "the kadd estimator fits once its whole plan is in"),
        (mlp, ["--backend", "msapy", "--checkpoint-every", "5"], "cannot honour a checkpoint"),
        (mlp, ["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
        (mlp, ["--out", str(a_file)], "is a file; give a folder"),
        (mlp, ["--models", str(empty), "--out", str(tmp / "r")], "no models"),
        ("MLP.train", ["--epochs", "0"], "--epochs: must be a positive integer"),
        ("MLP.train", ["--trials", "-1"], "--trials: must be a positive integer"),
        ("MLP.train", ["--sizes", "1", "--out", str(tmp / "m")], "every size at least 2"),
        ("MLP.train", ["--lr", "0"], "--lr: must be a finite number > 0"),
        (dcgan, ["--n-images", "-30"], "--n-images: must be a positive integer"),
        (dcgan, ["--max-rows", "0"], "--max-rows: must be a positive integer"),
        (dcgan, ["--checkpoint", str(tmp / "missing.pt"), "--out", str(result)], "no generator checkpoint"),
        (dcgan, ["--out", str(tmp)], "is a folder; give a file name"),
        ("DCGAN.train", ["--max-steps", "0"], "--max-steps: must be a positive integer"),
        ("DCGAN.train", ["--batch-size", "-1"], "--batch-size: must be a positive integer"),
        ("DCGAN.train", ["--widths", "0"], "--widths: must be a positive integer"),
        ("DCGAN.cluster", ["--n-runs", "0"], "--n-runs: must be a positive integer"),
        ("DCGAN.cluster", ["--consensus-threshold", "2"], "--consensus-threshold is a fraction"),
        ("DCGAN.cluster", ["--resolution", "-1"], "--resolution: must be a finite number > 0"),
        ("DCGAN.lesion_clusters", ["--checkpoint", str(tmp / "missing.pt")], "--checkpoint .* no such file"),
        (llm, ["--budget", "0n"], "--budget: must be a whole number"),
        (llm, ["--items", "0"], "--items: must be a positive integer"),
        (llm, ["--batch-size", "0"], "--batch-size: must be a positive integer"),
        (llm, ["--threads", "0"], "--threads: must be a positive integer"),
        (llm, ["--model", "./typo/path"], "no such model folder"),
        (llm, ["--model", str(empty)], "holds no config.json"),
        (llm, ["--units", "experts", "--ablation", "mean"], "--ablation mean applies to heads"),
        (llm, ["--layers", "4:2"], "--layers: layers must be N or START:STOP with 0 <= START < STOP"),
        (llm, ["--out", str(a_file / "x.npz")], "cannot be written"),
        ("LLM.train_tiny_moe", ["--steps", "0"], "--steps: must be a positive integer"),
        ("LLM.removal_curves", ["--msa", str(tmp / "missing.npz")], "--msa .*: no such file"),
        ("LLM.removal_curves", ["--msa", str(a_file), "--ks", "a,b"], "--ks takes comma-separated whole numbers"),
        ("MLP.compress", ["--remove", "1"], "--remove: must be a fraction strictly between 0 and 1"),
        ("MLP.compress", ["--results", str(empty)], "has a result in"),
        ("MLP.compress", ["--out", str(a_file)], "--out .* exists; pass --force"),
        ("MLP.compress", ["--out", str(a_file / "x"), "--force"], "cannot be written"),
        ("DCGAN.compress", ["--remove", "0.5", "--out", str(a_file)], "--out .* exists; pass --force"),
        ("DCGAN.compress", ["--remove", "0", "--out", str(tmp / "g.pt")], "--remove: must be a fraction"),
        ("DCGAN.compress", ["--remove", "0.5", "--out", str(tmp / "g.pt")], "--checkpoint is needed without --msa"),
        ("DCGAN.compress", ["--ranking", "shapley", "--remove", "0.5", "--out", str(tmp / "g.pt")], "needs --msa"),
        ("DCGAN.compress", ["--msa", str(tmp / "missing.npz"), "--remove", "0.5", "--out", str(tmp / "g.pt")],
         "--msa .*: no such file"),
        ("DCGAN.compress", ["--checkpoint", str(tmp / "missing.pt"), "--remove", "0.5", "--out", str(tmp / "g.pt")],
         "--checkpoint .*: no such file"),
        ("LLM.compress", ["--out", str(tmp / "small")], "one of the arguments --keep-per-group --remove is required"),
        ("LLM.compress", ["--keep-per-group", "0", "--out", str(tmp / "small")], "must be a positive integer"),
        ("LLM.compress", ["--keep-per-group", "1", "--remove", "0.5", "--out", str(tmp / "s")], "not allowed with"),
        ("LLM.compress", ["--remove", "0.5", "--out", str(a_file)], "--out .* exists; pass --force"),
        ("LLM.compress", ["--ranking", "shapley", "--remove", "0.5", "--out", str(tmp / "s")], "needs --msa"),
        ("LLM.compress", ["--msa", str(tmp / "missing.npz"), "--remove", "0.5", "--out", str(tmp / "s")],
         "--msa .*: no such file"),
        ("LLM.compress", ["--layers", "3:1", "--remove", "0.5", "--out", str(tmp / "s")], "layers must be N or"),
        ("LLM.compress", ["--model", "./typo/path", "--remove", "0.5", "--out", str(tmp / "s")], "no such model"),
    ]


TMP = Path("/TMP-OF-THE-TEST")  # the table is built once for parametrize; each test puts its own folder there
CASES = cases(TMP)


@pytest.mark.parametrize("case", CASES, ids=[f"{script}:{' '.join(argv)}" for script, argv, _ in CASES])
def test_bad_command_lines_fail_first_and_write_nothing(case, tmp_path, sentinels, capsys):
    (tmp_path / "a_file").write_text("not a result")
    (tmp_path / "empty").mkdir()
    script, argv, message = case
    argv = [a.replace(str(TMP), str(tmp_path)) for a in argv]
    before = snapshot(ROOT, tmp_path)
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(script).main(argv)
    said = f"{stop.value.code} {capsys.readouterr().err}"
    assert stop.value.code not in (0, None), said
    import re
    assert re.search(message, said), said
    assert snapshot(ROOT, tmp_path) == before  # nothing created or changed, in the repository or beside the output


def constant(c):
    return np.ones((len(c), 2))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(compute=partial(Compute, dtype=np.int32)), ValueError, "dtype must be float32 or float64"),
    (dict(compute=partial(Compute, dtype="complex128")), ValueError, "dtype must be float32 or float64"),
    (dict(game=lambda c: np.ones((len(c), 2)) * 1j), TypeError, "complex"),
    (dict(game=lambda c: np.array([["a"]] * len(c))), TypeError, "numbers"),
    (dict(compute=partial(Compute, batch_size=1.5)), ValueError, "batch_size must be a positive integer"),
    (dict(compute=partial(Compute, batch_size=True)), ValueError, "batch_size must be a positive integer"),
    (dict(batch_size=8), TypeError, r"batch_size= is now compute=Compute\(batch_size=...\)"),
    (dict(compute=8), ValueError, r"compute must be a common.Compute\(...\)"),
    (dict(estimator="chain", sampler="iid"), TypeError,
     r"estimator= is now method=Method\(estimator=...\); sampler= is now method=Method\(sampler=...\)"),
    (dict(method="chain"), ValueError, r"method must be a common.Method\(...\)"),
    (dict(method=Method(estimator="kadd", settings=dict(order=3))), ValueError, "the kadd estimator takes no setting"),
    (dict(seed=-1), ValueError, "seed must be a non-negative integer"),
    (dict(seed=1.5), ValueError, "seed must be a non-negative integer"),
    (dict(budget=True), ValueError, "budget must be a positive integer"),
    (dict(n_permutations=4), TypeError, r"n_permutations= is now budget \(distinct game evaluations; Budget\(orderings=k\)"),
    (dict(ray=partial(Ray)), TypeError, r"ray= is now runner=Ray\(...\)"),
    (dict(resume=True), TypeError, r"resume= is now checkpoint=Checkpoint\(path, resume=True\)"),
    (dict(fingerprint="x"), TypeError, "fingerprint= is now checkpoint=Checkpoint"),
    (dict(n_workers=2, backend="ray"), TypeError, r"n_workers= is now runner=Ray\(workers=...\); backend= is now"),
    (dict(colour="red"), TypeError, "unexpected keyword argument 'colour'"),
    (dict(runner=partial(Ray, workers=0)), ValueError, "workers must be a positive integer"),
    (dict(runner=partial(Ray, game_factory=3)), ValueError, "game_factory must be a picklable callable"),
    (dict(runner=partial(Ray), checkpoint=partial(Checkpoint, "x.ckpt")), ValueError,
     "give checkpoint or a Ray runner, not both"),
    (dict(runner=partial(Ray), target=partial(TargetSE, 0.1)), ValueError, "on Ray the shards run to the end"),
    (dict(runner="cluster"), ValueError, "runner must be 'local', 'msapy' or a common.Ray"),
    (dict(checkpoint="x.ckpt"), ValueError, r"checkpoint must be a common.Checkpoint\(...\)"),
    (dict(runner="msapy", checkpoint=partial(Checkpoint, "x.ckpt")), ValueError, "cannot honour a checkpoint"),
    (dict(runner="msapy", target=partial(TargetSE, 0.1)), ValueError, "cannot honour a target SE"),
    (dict(runner="msapy", method=Method(estimator="kadd")), ValueError, "msapy's walk computes the chain mean only"),
    (dict(method=Method(estimator="msapy")), ValueError, "msapy's own walk is now a runner: runner='msapy'"),
    (dict(target=partial(TargetSE, -1.0)), ValueError, "a target needs se, the standard error to stop at"),
    (dict(target=partial(TargetSE, 0.1, relative=1)), ValueError, "relative must be True or False"),
    (dict(checkpoint=partial(Checkpoint, "x.ckpt", every=-5)), ValueError, "checkpoint every must be a number of seconds"),
    (dict(checkpoint=partial(Checkpoint, "x.ckpt", resume="yes")), ValueError, "resume must be True or False"),
    (dict(players=[1, 1]), ValueError, "distinct"),
    (dict(players="abcd"), TypeError, "players must be an int or a sequence"),
    (dict(progress="yes"), ValueError, "progress must be True or False"),
    (dict(method=Method(sampler="latin", estimator="chain"), budget=partial(Budget, orderings=3)), ValueError,
     r"groups of 4 \(latin sampler\): Budget\(orderings=3\) holds none; give at least 4"),
    (dict(method=Method(sampler="latin", estimator="kadd")), ValueError, "the kadd estimator walks no orderings"),
    (dict(method=Method(estimator="kernel")), ValueError, "unknown estimator 'kernel'"),
    (dict(method=Method(estimator="chain-kernel"), players=3, budget=7), ValueError, "needs at least 4 players, got 3"),
    (dict(method=Method(estimator="chain-kernel")), ValueError,
     "needs sampler groups of at least as many orderings as players"),
    (dict(method=Method(estimator="chain-kernel", sampler="antithetic")), ValueError, "got groups of 2 for 4 players"),
    (dict(method=Method(estimator="surrogate", sampler="antithetic")), ValueError,
     "the surrogate estimator needs sampler groups"),
    (dict(method=Method(estimator="kadd"), target=partial(TargetSE, 0.1)), ValueError,
     "so it cannot stop at a target SE"),
    (dict(method=Method(estimator="kadd"), budget=partial(Budget, orderings=1)), ValueError,
     r"needs a budget of at least 10 evaluations on 4 players; the budget buys 4 \(Budget\(orderings=1\): 1 x 4\)"),
    (dict(method=Method(estimator="exact"), budget=15), ValueError,
     "evaluates every coalition: 2\\^4 = 16 evaluations, the budget buys 15"),
])
def test_bad_api_arguments_are_named(kwargs, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = dict(game=constant, players=4, budget=12, progress=False) | kwargs
    with pytest.raises(error, match=message):  # an option object checks itself, as it is made
        shapley_modes(**{k: v() if isinstance(v, partial) else v for k, v in args.items()})
    assert list(tmp_path.iterdir()) == []


def test_a_numpy_integer_seed_checkpoints_and_a_non_result_is_named(tmp_path):
    r = shapley_modes(constant, 4, 12, seed=np.int64(3), checkpoint=Checkpoint(tmp_path / "r.ckpt", every=0),
                      progress=False)
    assert r.seed == 3 and isinstance(r.seed, int)
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match="is not a Shapley result written by ShapleyResult.save: it lacks"):
        load(tmp_path / "other.npz")


def test_a_damaged_model_file_is_named_and_never_loaded_unsafely(tmp_path):
    from MLP.model import MLP
    from MLP.train import load_model, save_model
    path = tmp_path / "mlp_N008_none_t00.pt"
    save_model(path, MLP(8), dict(n_hidden=8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="mlp_N008_none_t00.pt") as error:
        load_model(path)
    assert "weights_only" not in str(error.value) and "damaged" in str(error.value)


@pytest.mark.parametrize("api, argv", [
    (dict(runner=partial(Ray), checkpoint=partial(Checkpoint, "x.ckpt")), ["--backend", "ray", "--resume"]),
    (dict(runner=partial(Ray), target=partial(TargetSE, 0.1)), ["--backend", "ray", "--target-se", "0.1"]),
    (dict(runner=lambda: "msapy", checkpoint=partial(Checkpoint, "x.ckpt")), ["--backend", "msapy", "--resume"]),
    (dict(runner=lambda: "msapy", target=partial(TargetSE, 0.1)), ["--backend", "msapy", "--target-se", "0.1"]),
    (dict(method=partial(Method, estimator="kadd", sampler="latin")), ["--estimator", "kadd", "--sampler", "latin"]),
    (dict(target=partial(TargetSE, None, relative=True)), ["--target-relative"]),
])
def test_the_command_line_reports_the_api_rules_in_the_api_words(api, argv, tmp_path, sentinels, capsys):
    """Each rule between options lives once, in common.options: the scripts say what the API says, with exit 2."""
    with pytest.raises(ValueError) as error:
        options = {k: v() for k, v in api.items()}
        shapley_modes(constant, 4, 12, progress=False, **options)
    with pytest.raises(SystemExit) as stop:
        importlib.import_module("MLP.compute_msa").main(argv + ["--out", str(tmp_path / "r")])
    assert stop.value.code == 2 and str(error.value) in capsys.readouterr().err


def test_shapley_modes_keeps_its_keywords_few():
    """game, players, budget, then at most 9 keyword-only options: the rest travel as Budget, Checkpoint, Ray and
    TargetSE objects."""
    import inspect
    from common import interaction_modes
    for function in (shapley_modes, interaction_modes):
        kinds = [p.kind for p in inspect.signature(function).parameters.values()]
        assert kinds.count(inspect.Parameter.KEYWORD_ONLY) <= 9
        assert kinds.count(inspect.Parameter.POSITIONAL_OR_KEYWORD) <= 4  # game, players, budget, (pairs)


def test_a_budget_short_of_one_block_is_refused_without_building_the_block():
    """An orthogonal block at 800 units is 1,598 orderings: 1 GiB of coalitions if built at once. The refusal
    counts its distinct coalitions a few orderings at a time (at 1,987 units the block would be 15 GiB)."""
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"needs a budget of at least 1,275,012 evaluations on 800 players"):
            shapley_modes(lambda c: c[:, :3].astype(float), 800, 8002,
                          method=Method(sampler="orthogonal", estimator="chain"), progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300 * 2 ** 20, peak
