"""Batched generation and the scripts end to end (compute_msa -> removal_curves -> notebook) on a random tiny Mixtral."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the llm extra is not installed")
pytest.importorskip("Levenshtein", reason="the llm extra is not installed")

from LLM import tasks as T  # noqa: E402
from LLM.generate import ExpertGame, LMGame, encode_chat, generate_answers, generate_tokens, left_pad  # noqa: E402
from LLM.units import model_players  # noqa: E402
from LLM.moe import moe_blocks  # noqa: E402

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture(scope="module")
def tokenizer():
    from LLM.train_tiny_moe import build_tokenizer
    return build_tokenizer()


def random_mixtral(tokenizer, dtype=torch.float64, seed=1):
    from transformers import MixtralConfig, MixtralForCausalLM
    torch.manual_seed(seed)
    config = MixtralConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                           max_position_embeddings=512, sliding_window=None, pad_token_id=tokenizer.pad_token_id,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = MixtralForCausalLM(config).to(dtype).eval()
    with torch.no_grad():
        for block in moe_blocks(model):
            block.gate.weight.mul_(20)
            for expert in block.experts:
                expert.w2.weight.mul_(30)
        # digits and end-of-sequence likely, so answers hold numbers and some rows stop early
        digits = [tokenizer.convert_tokens_to_ids(str(d)) for d in range(10)]
        model.lm_head.weight[digits] *= 4
        model.lm_head.weight[tokenizer.eos_token_id] *= 6
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return random_mixtral(tokenizer)


def small_tasks(n=2):
    return [T.Task(t.name, t.items[:n], t.max_new_tokens) for t in T.make_tasks(T.TINY)]


def test_many_coalitions_per_call_give_the_same_answers_as_one_per_call(model, tokenizer):
    rng = np.random.default_rng(0)
    coalitions = rng.random((5, 16)) < 0.6
    coalitions[0] = True
    one = ExpertGame(model, tokenizer, small_tasks(), coalitions_per_call=1).answers(coalitions)
    many = ExpertGame(model, tokenizer, small_tasks(), coalitions_per_call=5).answers(coalitions)
    assert one == many
    assert len({tuple(row) for row in one}) > 1, "every coalition answered alike: the masks did nothing"


def test_rows_that_finish_early_match_running_alone(model, tokenizer):
    items = [i for t in small_tasks(3) for i in t.items]
    ids, mask = left_pad(tokenizer, [encode_chat(tokenizer, i.messages) for i in items])
    coalitions = np.ones((2, 16), bool)
    coalitions[1, [1, 4, 9, 12]] = False
    ablate = model_players(model, "experts").ablated
    together = generate_answers(model, tokenizer, ids, mask, coalitions, 8, ablate, rows_per_call=len(items) * 2)
    tokens = generate_tokens(model, tokenizer, ids.repeat(2, 1), mask.repeat(2, 1),
                             ablate(coalitions.repeat(len(items), 0)), 8)
    lengths = [len(t) for t in tokens]
    assert min(lengths) < 8 == max(lengths), f"want rows that stop early and rows that do not, got lengths {lengths}"
    for c in range(2):
        for j in range(len(items)):
            alone = generate_answers(model, tokenizer, ids[j:j + 1], mask[j:j + 1], coalitions[c:c + 1], 8, ablate)
            assert alone[0][0] == together[c][j]


def test_game_scores_are_task_means(model, tokenizer):
    game = ExpertGame(model, tokenizer, small_tasks(), coalitions_per_call=2)
    coalitions = np.ones((2, 16), bool)
    coalitions[1, :8] = False
    answers = game.answers(coalitions)
    scores = game.scores(answers)
    for c in range(2):
        for k, task in enumerate(game.tasks):
            expected = np.mean([task.score(a, item) for (kk, item), a in zip(game.items, answers[c]) if kk == k])
            assert scores[c, k] == pytest.approx(expected)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("random_mixtral")
    random_mixtral(tokenizer, dtype=torch.float32).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def msa_file(saved_model, tmp_path_factory):
    from LLM import compute_msa
    out = tmp_path_factory.mktemp("runs") / "msa_small.npz"
    compute_msa.main(["--model", str(saved_model), "--sizes", "tiny", "--items", "1", "--budget", "2n",
                      "--seed", "3", "--device", "cpu", "--threads", "1", "--out", str(out), "--no-progress",
                      "--sampler", "iid"])
    return out


def test_compute_msa_writes_modes_per_expert_and_task(msa_file):
    from common import load
    from common.result import load_extra
    result, extra = load(msa_file), load_extra(msa_file)
    assert result.modes.shape == (16, 9) and result.se.shape == (16, 9)
    assert list(extra["task_names"]) == list(T.TASK_NAMES)
    assert extra["layer_expert"].tolist() == [[layer, e] for layer in range(2) for e in range(8)]
    assert result.players == [(layer, e) for layer in range(2) for e in range(8)]
    assert result.metadata["exclusion"] == "paper" and str(extra["exclusion"]) == "paper"
    # each ordering's contributions sum to V(intact) - V(none), up to float32: the model's numbers can differ in the
    # last bits between batches (they do with torch's AVX2 kernels), and V(none) is evaluated in the chains too
    assert result.efficiency_gap() < 1e-5
    assert np.abs(result.modes).sum() > 0
    assert len(json.loads(str(extra["intact_answers"]))) == 9


def test_compute_msa_is_reproducible(msa_file, saved_model, tmp_path):
    from common import load
    from LLM import compute_msa
    again = compute_msa.main(["--model", str(saved_model), "--sizes", "tiny", "--items", "1", "--budget",
                              "2n", "--seed", "3", "--device", "cpu", "--threads", "1", "--batch-size", "3",
                              "--out", str(tmp_path / "again.npz"), "--no-progress"])
    np.testing.assert_array_equal(load(again).modes, load(msa_file).modes)


def test_compute_msa_resumes_an_interrupted_run_bit_identically(msa_file, saved_model, tmp_path, monkeypatch):
    from common import load
    from LLM import compute_msa
    out = tmp_path / "resumed.npz"
    argv = ["--model", str(saved_model), "--sizes", "tiny", "--items", "1", "--budget", "2n", "--seed", "3",
            "--device", "cpu", "--threads", "1", "--batch-size", "16", "--out", str(out), "--no-progress",
            "--checkpoint-every", "0"]
    real_call, calls = LMGame.__call__, [0]

    def crash_after_the_first_ordering(self, coalitions):
        calls[0] += 1
        if calls[0] > 2:  # call 1: intact and empty coalitions; call 2: the first ordering (16 coalitions)
            raise KeyboardInterrupt("simulated crash")
        return real_call(self, coalitions)
    monkeypatch.setattr(LMGame, "__call__", crash_after_the_first_ordering)
    with pytest.raises(KeyboardInterrupt):
        compute_msa.main(argv)
    assert out.with_suffix(".ckpt").exists() and not out.exists()
    monkeypatch.setattr(LMGame, "__call__", real_call)
    with pytest.raises(SystemExit, match="--resume"):
        compute_msa.main(argv)
    compute_msa.main(argv + ["--resume"])
    assert out.exists() and not out.with_suffix(".ckpt").exists()
    reference = load(msa_file)
    np.testing.assert_array_equal(load(out).modes, reference.modes)
    np.testing.assert_array_equal(load(out).se, reference.se)


def write_gsm8k(path: Path, n: int, offset: int = 0):
    rows = [{"question": f"Tom has {i + offset} apples and buys {i + 2} more. How many apples does he have?",
             "answer": f"He has {i + offset} + {i + 2} = <<{i + offset}+{i + 2}={2 * i + offset + 2}>>"
                       f"{2 * i + offset + 2} apples.\n#### {2 * i + offset + 2:,}"} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def removal_file(msa_file, tmp_path_factory):
    from LLM import removal_curves
    folder = tmp_path_factory.mktemp("gsm8k")
    test, train = write_gsm8k(folder / "test.jsonl", 3), write_gsm8k(folder / "train.jsonl", 4, offset=1000)
    return removal_curves.main(["--msa", str(msa_file), "--data", "gsm8k", "--data-file", str(test), "--train-file",
                                str(train), "--ks", "0,1,4", "--max-new-tokens", "6", "--device", "cpu",
                                "--threads", "1", "--out", str(folder / "removal.npz")])


def test_removal_curves_on_gsm8k_files(removal_file):
    data = dict(np.load(removal_file))
    assert data["ks"].tolist() == [0, 1, 4] and int(data["n_items"]) == 3 and str(data["data"]) == "gsm8k"
    assert data["accuracy_lowest"][0] == data["accuracy_highest"][0]  # k = 0 is the intact model either way
    assert np.all((0 <= data["accuracy_lowest"]) & (data["accuracy_lowest"] <= 1))


def test_removal_coalitions_remove_the_right_experts():
    from common.removal import removal_masks
    from LLM.removal_curves import arithmetic_ranking, default_ks
    modes = np.zeros((6, 9))
    modes[:, 0] = [5, -1, 3, 0, 2, 4]   # addition only: ranking by the arithmetic mean
    order = arithmetic_ranking(modes, T.TASK_NAMES)
    assert order.tolist() == [1, 3, 4, 2, 5, 0]
    highest, lowest = removal_masks(order, [0, 2])
    assert lowest[0].all() and highest[0].all()
    assert np.flatnonzero(~lowest[1]).tolist() == [1, 3] and np.flatnonzero(~highest[1]).tolist() == [0, 5]
    assert default_ks(256) == [0, 1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70]
    assert default_ks(32) == list(range(10))


def test_gsm8k_files_need_exemplars(msa_file, tmp_path):
    from LLM import removal_curves
    test = write_gsm8k(tmp_path / "test.jsonl", 2)
    with pytest.raises(SystemExit, match="train-file"):
        removal_curves.main(["--msa", str(msa_file), "--data", "gsm8k", "--data-file", str(test), "--device", "cpu"])


def test_notebook_runs_headless_on_a_small_run(msa_file, removal_file, saved_model, tmp_path):
    pytest.importorskip("papermill")
    from games import save_tiny_llama

    from common.notebooks import run_notebook
    from LLM import compute_msa, removal_curves
    pairs = tmp_path / "pairs.npz"  # expert pairs, and a heads run of a tiny Llama, for the notebook's new sections
    compute_msa.main(["--model", str(saved_model), "--sizes", "tiny", "--items", "1", "--budget", "4n",
                      "--device", "cpu", "--threads", "1", "--out", str(pairs), "--no-progress", "--interactions",
                      "pairs", "--pairs", "0,1", "0,2", "8,9"])
    llama = save_tiny_llama(tmp_path / "llama")
    units = tmp_path / "units.npz"
    compute_msa.main(["--model", str(llama), "--units", "heads", "--score", "logprob", "--sizes", "tiny", "--items",
                      "1", "--budget", "4n", "--device", "cpu", "--threads", "1", "--out", str(units),
                      "--no-progress"])
    removal_curves.main(["--msa", str(units), "--ks", "0,1", "--limit", "2", "--device", "cpu", "--threads", "1",
                         "--out", str(tmp_path / "units_removal.npz")])
    nb = run_notebook("llm_figures", tmp_path / "llm_figures.ipynb", timeout=300, MSA=msa_file, REMOVAL=removal_file,
                      FIG_DIR=tmp_path / "figures", INTERACTIONS=tmp_path / "pairs_interactions.npz",
                      UNITS_MSA=units, UNITS_REMOVAL=tmp_path / "units_removal.npz")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "of 3 pairs interact" in text and "early vs late layers" in text
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert any(f.startswith("figure2_ABC") for f in figures) and any(f.startswith("figure2_D") for f in figures)
    assert any(f.startswith("claims_") for f in figures)
