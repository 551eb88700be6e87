"""Benchmark: the same coalitions of an LLM's players scored one coalition per call vs many per call.

Many per call: the batch rows are coalitions x prompts, each row with its own ablated players (experts, heads,
...), rows that finish early padded while the others go on. Both ways must give identical answers (checked;
for --score logprob the largest difference is printed); the last line printed is the speed ratio. Uses the
trained tiny model if LLM/runs/tiny_moe exists, else an untrained one of the same shape (the timing is what
matters here).

    python benchmarks/bench_llm_generate.py                       # tiny MoE experts, ~1-2 min on 2 CPU cores
    python benchmarks/bench_llm_generate.py --model smollm2 --units heads --score logprob --sizes paper --items 2
    python benchmarks/bench_llm_generate.py --model PATH --load-in-4bit --coalitions 32 --per-call 16
"""
import argparse
import time

import numpy as np
import torch

from LLM import tasks as T
from LLM.generate import SCORES, LMGame
from LLM.load import load_model
from LLM.moe import EXCLUSIONS
from LLM.units import UNIT_KINDS, model_players
from common.cli import positive_int
from common.device import pick_device, set_cpu_threads
from LLM.train_tiny_moe import DEFAULT_OUT, build_model, build_tokenizer


def get_model(name, load_in_4bit, device):
    if name == "tiny" and not (DEFAULT_OUT / "config.json").exists():
        print(f"no trained tiny model in {DEFAULT_OUT}: timing an untrained one of the same shape")
        tokenizer = build_tokenizer()
        return build_model(tokenizer, 4, 8, 128, 256, seed=0).eval().to(device), tokenizer, "tiny (untrained)"
    path = str(DEFAULT_OUT) if name == "tiny" else name
    model, tokenizer, _ = load_model(path, load_in_4bit=load_in_4bit, device=str(device))
    return model, tokenizer, name


def timed(game, coalitions):
    started = time.perf_counter()
    values = game.answers(coalitions) if game.score == "generate" else game(coalitions)
    return values, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (default), 'smollm2', a hub id or a local folder")
    parser.add_argument("--units", choices=UNIT_KINDS, default="auto", help="players (default: experts or heads)")
    parser.add_argument("--score", choices=SCORES, default="generate")
    parser.add_argument("--load-in-4bit", action="store_true")
    parser.add_argument("--exclusion", choices=EXCLUSIONS, default="paper")
    parser.add_argument("--sizes", choices=tuple(T.SIZES), default="tiny")
    parser.add_argument("--coalitions", type=positive_int, default=16, help="random coalitions to score (default: %(default)s)")
    parser.add_argument("--per-call", type=positive_int, default=8, help="coalitions per call, batched way")
    parser.add_argument("--items", type=positive_int, default=None, help="only the first N items of each task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: every core)")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    if device.type == "cpu":
        set_cpu_threads(args.threads)
    model, tokenizer, name = get_model(args.model, args.load_in_4bit, device)
    tasks = T.make_tasks(T.SIZES[args.sizes])
    if args.items:
        tasks = [T.Task(t.name, t.items[:args.items], t.max_new_tokens) for t in tasks]
    players = model_players(model, args.units, exclusion=args.exclusion)
    one = LMGame(model, tokenizer, tasks, players, args.score, coalitions_per_call=1)
    many = LMGame(model, tokenizer, tasks, players, args.score, coalitions_per_call=args.per_call)
    rng = np.random.default_rng(args.seed)
    # coalitions like those of an MSA walk: a random number of players lesioned
    coalitions = np.stack([rng.permutation(len(players)) >= rng.integers(0, len(players))
                           for _ in range(args.coalitions)])
    timed(many, coalitions[:1])  # warm-up: first-call costs are not what we compare
    values_one, seconds_one = timed(one, coalitions)
    values_many, seconds_many = timed(many, coalitions)
    rows = sum(len(t.items) for t in tasks)
    print(f"device: {device} ({torch.get_num_threads()} threads)" if device.type == "cpu" else
          f"device: {torch.cuda.get_device_name(device)}")
    print(f"model: {name}; {len(players)} {players.kind}; {args.coalitions} coalitions x {rows} prompts; "
          f"score {args.score}")
    print(f"one coalition per call:  {args.coalitions / seconds_one:8.3f} coalitions/s")
    print(f"{args.per_call:>3} coalitions per call: {args.coalitions / seconds_many:8.3f} coalitions/s")
    if args.score == "generate":
        mismatches = sum(a != b for row_a, row_b in zip(values_one, values_many) for a, b in zip(row_a, row_b))
        if mismatches:
            raise SystemExit(f"answers differ in {mismatches} of {args.coalitions * rows} rows")
        print(f"identical answers: all {args.coalitions * rows} rows")
    else:
        print(f"max |difference| of the scores: {np.abs(values_one - values_many).max():.1e}")
    print(f"speedup (many per call / one per call): {seconds_one / seconds_many:.2f}x")


if __name__ == "__main__":
    main()
