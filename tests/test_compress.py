"""The three compress.py scripts end to end: rank (from a compute_msa.py run or the weights), remove, save with the
usual call; the saved model loads with the usual call, equals the zero-lesioned original and is smaller; an
output that exists is replaced only with --force, and a layer left empty is refused with nothing written."""
import json

import numpy as np
import pytest
import torch

from common import load
from common.lesion import Unit, lesioned
from common.prune import parameter_count


def files_in(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.exists() else {}


def refused(main, argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    said = f"{stop.value.code} {capsys.readouterr().err}"
    assert stop.value.code not in (0, None) and message in said, said


# ---------------------------------------------------------------- MLP
def test_mlp_compress_reports_held_out_accuracy_and_replaces_only_with_force(tmp_path, capsys):
    from MLP import compress, compute_msa, train
    from MLP.compute_msa import test_set
    from MLP.train import load_model
    models, results, out = tmp_path / "models", tmp_path / "results", tmp_path / "small"
    train.main(["--sizes", "10", "--regs", "l1", "--trials", "1", "--epochs", "1", "--out", str(models)])
    compute_msa.main(["--models", str(models), "--out", str(results), "--budget", "6n", "--test-images", "950"])
    compress.main(["--models", str(models), "--results", str(results), "--out", str(out), "--remove", "0.4"])
    said = capsys.readouterr().out
    assert "10 -> 6" in said and "50 held-out" in said and "ranking saw" not in said  # of the 1,000 test images
    small, config = load_model(out / "mlp_N010_l1_t00.pt")
    model, _ = load_model(models / "mlp_N010_l1_t00.pt")
    keep = np.ones(10, bool)
    keep[load(results / "mlp_N010_l1_t00.npz").modes.mean(1).argsort(kind="stable")[:4]] = False
    x, _ = test_set("mnist5k")
    with torch.no_grad(), lesioned(model, [Unit("act", i) for i in range(10)], keep):
        masked = model(x)
    torch.testing.assert_close(small(x), masked, rtol=1e-5, atol=1e-5)
    assert config["n_hidden"] == 6 and config["compressed_from"] == 10
    assert parameter_count(model) - parameter_count(small) == 4 * (784 + 1 + 10)

    before = files_in(out)
    refused(compress.main, ["--models", str(models), "--results", str(results), "--out", str(out)],
            "exists; pass --force", capsys)
    assert files_in(out) == before
    compress.main(["--models", str(models), "--results", str(results), "--out", str(out), "--remove", "0.7",
                   "--ranking", "weight-norm", "--force"])
    assert load_model(out / "mlp_N010_l1_t00.pt")[1]["n_hidden"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "results", "small"]  # no stray folder


# ---------------------------------------------------------------- DCGAN
@pytest.fixture(scope="module")
def generator_run(tmp_path_factory):
    """A tiny32 generator with BatchNorm statistics that are not the identity, and a short Shapley run of it."""
    from DCGAN import compute_msa
    from DCGAN.model import Generator, fixed_noise, make_config, save_generator
    run = tmp_path_factory.mktemp("dcgan")
    torch.manual_seed(0)
    g = Generator(make_config("tiny32")).eval()
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    save_generator(run / "generator.pt", g, fixed_noise(3))
    compute_msa.main(["--checkpoint", str(run / "generator.pt"), "--out", str(run / "msa.npz"), "--budget", "2n",
                      "--device", "cpu", "--no-progress"])
    return run


@pytest.mark.parametrize("argv, widths", [(["--remove", "0.3"], None),
                                          (["--ranking", "weight-norm", "--remove", "0.5", "--per-layer"], [32, 16, 8]),
                                          (["--ranking", "mean-activation", "--remove", "0.25", "--per-layer"],
                                           [48, 24, 12])])
def test_dcgan_compress_saves_a_smaller_generator_equal_to_the_masked_one(generator_run, tmp_path, argv, widths):
    from DCGAN import compress
    from DCGAN.compute_msa import generator_units
    from DCGAN.model import load_generator
    source = ["--msa", str(generator_run / "msa.npz")] if "--ranking" not in argv else \
        ["--checkpoint", str(generator_run / "generator.pt")]
    out = tmp_path / "small.pt"
    compress.main(source + argv + ["--out", str(out)])
    small, noise, saved = load_generator(out)  # torch.load(weights_only=True) and the builder
    g, _, _ = load_generator(generator_run / "generator.pt")
    record = json.loads(saved["compressed"])
    units = [u for u in generator_units(g, noise) if u.module != "out.act"]
    keep = np.array([str(u) not in record["removed"] for u in units])
    assert (~keep).sum() == (34 if widths is None else 112 - sum(widths))  # round(0.3 x 112) overall
    if widths is not None:
        assert list(small.cfg["widths"]) == widths
    with torch.no_grad(), lesioned(g, units, keep):
        masked = g(noise)
    torch.testing.assert_close(small(noise), masked, rtol=1e-5, atol=1e-6)
    assert parameter_count(small) < parameter_count(g) and record["parameters"] == [parameter_count(g),
                                                                                     parameter_count(small)]


def test_dcgan_compress_refuses_an_empty_layer_and_an_existing_file(generator_run, tmp_path, capsys):
    from DCGAN import compress
    out = tmp_path / "small.pt"
    checkpoint = ["--checkpoint", str(generator_run / "generator.pt"), "--ranking", "weight-norm"]
    refused(compress.main, checkpoint + ["--remove", "0.97", "--per-layer", "--out", str(out)],
            "every feature of blocks.2.act would go", capsys)
    assert not out.exists()
    compress.main(checkpoint + ["--remove", "0.2", "--out", str(out)])
    written = out.read_bytes()
    refused(compress.main, checkpoint + ["--remove", "0.5", "--out", str(out)], "exists; pass --force", capsys)
    assert out.read_bytes() == written
    compress.main(checkpoint + ["--remove", "0.5", "--out", str(out), "--force"])
    assert out.read_bytes() != written


# ---------------------------------------------------------------- LLM attention heads
@pytest.fixture(scope="module")
def heads_run(tmp_path_factory):
    """A random 2-layer Llama (4 query heads on 2 key/value heads a layer) and a short Shapley run of its heads."""
    pytest.importorskip("transformers", reason="the llm extra is not installed")
    from games import save_tiny_llama
    from LLM import compute_msa
    run = tmp_path_factory.mktemp("llama")
    save_tiny_llama(run / "model")
    compute_msa.main(["--model", str(run / "model"), "--units", "heads", "--score", "logprob", "--sizes", "tiny",
                      "--items", "1", "--budget", "4n", "--device", "cpu", "--threads", "1",
                      "--out", str(run / "msa.npz"), "--no-progress"])
    return run


def masked_logits(model, keep, ids):
    from LLM.units import model_players
    players = model_players(model, "heads")
    with torch.no_grad(), players.ablated(np.tile(keep, (len(ids), 1))):
        return model(ids).logits


@pytest.mark.parametrize("argv", [["--keep-per-group", "1"], ["--remove", "0.25", "--ranking", "weight-norm"],
                                  ["--remove", "0.5", "--task", "capitals"]])
def test_llm_compress_saves_a_hugging_face_model_equal_to_the_masked_one(heads_run, tmp_path, argv):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from LLM import compress
    source = ["--model", str(heads_run / "model")] if "weight-norm" in argv else ["--msa", str(heads_run / "msa.npz")]
    out = tmp_path / "small"
    compress.main(source + argv + ["--out", str(out), "--threads", "1"])
    small = AutoModelForCausalLM.from_pretrained(out).eval()  # the usual call
    model = AutoModelForCausalLM.from_pretrained(heads_run / "model").eval()
    AutoTokenizer.from_pretrained(out)
    record = json.loads((out / "compress.json").read_text())
    from LLM.units import model_players
    keep = np.array([str(u) not in record["removed"] for u in model_players(model, "heads").units])
    assert (~keep).sum() == {"1": 4, "0.25": 2, "0.5": 4}[argv[1]]
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(small(ids).logits, masked_logits(model, keep, ids), rtol=1e-4, atol=1e-5)
    assert parameter_count(small) <= parameter_count(model)
    if argv[0] == "--keep-per-group":  # two layers x two heads, each d x hidden in q_proj and in o_proj
        assert parameter_count(model) - parameter_count(small) == 2 * 2 * 2 * 8 * 32
        assert small.config.num_attention_heads == 2 and small.config.num_key_value_heads == 2


def test_llm_compress_refuses_what_would_not_shrink_or_would_empty_a_layer(heads_run, tmp_path, capsys):
    from LLM import compress
    msa, out = ["--msa", str(heads_run / "msa.npz")], tmp_path / "small"
    refused(compress.main, msa + ["--keep-per-group", "2", "--out", str(out)], "keep 1 to 1", capsys)
    refused(compress.main, msa + ["--remove", "0.9", "--out", str(out)], "would go", capsys)
    refused(compress.main, ["--msa", str(heads_run / "msa.npz"), "--layers", "0", "--remove", "0.5", "--out",
                            str(out)], "--layers: the heads are those of the --msa run", capsys)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    compress.main(msa + ["--keep-per-group", "1", "--out", str(out)])
    before = files_in(out)
    refused(compress.main, msa + ["--remove", "0.5", "--out", str(out)], "exists; pass --force", capsys)
    assert files_in(out) == before
    compress.main(msa + ["--remove", "0.5", "--out", str(out), "--force"])
    assert files_in(out) != before and sorted(p.name for p in tmp_path.iterdir()) == ["small"]
