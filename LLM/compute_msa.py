"""Shapley modes of the experts of a mixture-of-experts LLM on nine tasks (paper section 2.2, Figure 2).

Players are the (layer, expert) pairs; a coalition's value is the 9-vector of task scores
[addition, subtraction, multiplication, english, german, french, spanish, italian, capitals] with the
experts outside the coalition excluded. Many coalitions run in one `generate` call (one batch row per
coalition x prompt), so the number of coalitions per call adapts to the device.

    python LLM/compute_msa.py                       # the tiny stand-in model on CPU (trains it first if missing;
                                                    # ~10 min to train once, then ~8 min for the default 40 orderings)
    python LLM/compute_msa.py --model mistralai/Mixtral-8x7B-Instruct-v0.1 --load-in-4bit --n-permutations 1000
                                                    # the paper's run: a GPU with >= 40 GB, days
    python LLM/compute_msa.py --exclusion reroute   # excluded experts' router logits masked before the top 2

Writes an .npz (common.ShapleyResult format: modes (n_experts, 9), se, intact, lesioned, players) with
task_names, layer_expert (n_experts, 2), chance, model, exclusion and sizes beside it.
"""
import argparse
import json
import re
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from common.cli import add_run_arguments, check_output_file, check_run_arguments, entry, positive_int, run_to_npz, \
    setup_device
from common.extras import require_extra
from common.fingerprint import model_fingerprint
from LLM import tasks as T
from LLM.generate import ExpertGame
from LLM.moe import EXCLUSIONS, MIXTRAL, load_model

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


def build_game(model_name, load_in_4bit, device, sizes, items, items_seed, exclusion, per_call):
    """The expert game (loads the model); picklable as a partial, so each Ray worker loads its own copy."""
    model, tokenizer, device = load_model(model_name, load_in_4bit=load_in_4bit, device=device)
    tasks = build_tasks(sizes, items, items_seed)
    return ExpertGame(model, tokenizer, tasks, exclusion, coalitions_per_call=per_call)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="'tiny', a hub id or a local folder (default: tiny without CUDA, Mixtral-8x7B-Instruct "
                             "with CUDA)")
    parser.add_argument("--load-in-4bit", action=argparse.BooleanOptionalAction, default=None,
                        help="bitsandbytes NF4, float16 compute (default: on for Mixtral-8x7B-Instruct, off otherwise)")
    parser.add_argument("--exclusion", choices=EXCLUSIONS, default="paper",
                        help="paper: drop the excluded expert's output, routing unchanged; reroute: mask its router "
                             "logit before the top 2 (default: %(default)s)")
    parser.add_argument("--items-seed", type=int, default=0, help="seed of the arithmetic items (default: %(default)s)")
    parser.add_argument("--sizes", choices=tuple(T.SIZES), default=None,
                        help="task sizes (default: tiny for the tiny model, paper otherwise)")
    parser.add_argument("--items", type=positive_int, default=None,
                        help="only the first N items of each task (quick runs)")
    add_run_arguments(parser, n_permutations=None,
                      n_permutations_help=f"orderings to walk (default: 1000, the paper's; {TINY_PERMUTATIONS} for "
                                          "the tiny model)",
                      out_help="output .npz (default: LLM/runs/msa_<model>_<exclusion>.npz)",
                      batch_size_help=f"coalitions per generate call (default: {ROWS_PER_CALL} rows per call / "
                                      "prompts)")
    args = parser.parse_args(argv)
    check_run_arguments(parser, args)
    if args.out is not None:
        check_output_file(parser, args.out)
    require_extra("llm")

    device = setup_device(args)
    model_name = resolve_model(args.model, device)
    tiny = is_tiny(model_name)
    load_in_4bit = args.load_in_4bit if args.load_in_4bit is not None else model_name == MIXTRAL
    if args.n_permutations is None:
        args.n_permutations = TINY_PERMUTATIONS if tiny else 1000
    sizes = args.sizes if args.sizes is not None else ("tiny" if tiny else "paper")
    out = args.out if args.out is not None else RUNS / f"msa_{slug(model_name)}_{args.exclusion}.npz"

    tasks = build_tasks(sizes, args.items, args.items_seed)
    n_prompts = max(sum(len(t.items) for t in tasks if t.max_new_tokens == k) for k in {t.max_new_tokens for t in tasks})
    per_call = args.batch_size if args.batch_size is not None else max(1, ROWS_PER_CALL[device.type] // n_prompts)
    factory = partial(build_game, model_name, load_in_4bit, args.device, sizes, args.items, args.items_seed,
                      args.exclusion, per_call)
    game = factory()
    model, players = game.model, game.players
    print(f"model {model_name} ({'4-bit' if load_in_4bit else next(model.parameters()).dtype}) on {device}; "
          f"{len(players)} experts; exclusion {args.exclusion}; {args.n_permutations} orderings x {len(players)} "
          f"coalitions; {per_call} coalitions per generate call")

    started = time.perf_counter()
    intact_answers = game.answers(np.ones((1, len(players)), bool))[0]
    intact = game.scores([intact_answers])[0]
    seconds = time.perf_counter() - started
    chance = T.chance_scores(tasks)
    print(f"{'task':<16}{'intact':>8}{'chance':>8}")
    for task, s, c in zip(tasks, intact, chance):
        print(f"{task.name:<16}{s:>8.3f}{c:>8.3f}")
    total = args.n_permutations * len(players)
    print(f"the intact model alone took {seconds:.1f} s; the run walks {total} coalitions, {per_call} per call "
          f"(at most ~{seconds * total / 60:.0f} min, less as batching pays off)")

    small = sum(p.numel() for p in model.parameters()) < 50_000_000  # hash a small model's weights; name a large one
    result = run_to_npz(
        args, game, players, out, game_factory=factory,
        fingerprint=dict(model=model_fingerprint(model) if small else model_name, load_in_4bit=bool(load_in_4bit),
                         exclusion=args.exclusion, sizes=sizes, items=args.items, items_seed=args.items_seed),
        metadata=dict(model=model_name, exclusion=args.exclusion, sizes=sizes, load_in_4bit=bool(load_in_4bit),
                      coalitions_per_call=per_call, device=str(device), items_seed=args.items_seed),
        extras=dict(task_names=np.array([t.name for t in tasks]), layer_expert=np.array(players, dtype=np.int64),
                    chance=chance, model=np.array(model_name), exclusion=np.array(args.exclusion),
                    sizes=np.array(sizes), intact_answers=np.array(json.dumps(intact_answers, ensure_ascii=False))))
    print(f"{result.metadata['coalitions']} coalitions in {result.metadata['seconds']:.0f} s "
          f"({result.metadata['coalitions_per_s']:.2f}/s); efficiency gap {result.efficiency_gap():.2e}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    entry(main)
