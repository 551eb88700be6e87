"""Benchmark: the same expert coalitions scored one coalition per `generate` call vs many per call.

Many per call: the batch rows are coalitions x prompts, each row with its own excluded experts, rows that
finish early padded while the others go on. Both ways must give identical answers (checked); the last line
printed is the speed ratio. Uses the trained tiny model if LLM/runs/tiny_moe exists, else an untrained one
of the same shape (the timing is what matters here).

    python benchmarks/bench_llm_generate.py                       # ~1-2 min on 2 CPU cores
    python benchmarks/bench_llm_generate.py --model PATH --load-in-4bit --coalitions 32 --per-call 16
"""
import argparse
import time

import numpy as np
import torch

from LLM import tasks as T
from LLM.generate import ExpertGame
from LLM.load import load_model
from LLM.moe import EXCLUSIONS
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
    answers = game.answers(coalitions)
    return answers, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (default), a hub id or a local folder")
    parser.add_argument("--load-in-4bit", action="store_true")
    parser.add_argument("--exclusion", choices=EXCLUSIONS, default="paper")
    parser.add_argument("--sizes", choices=tuple(T.SIZES), default="tiny")
    parser.add_argument("--coalitions", type=int, default=16, help="random coalitions to score (default: %(default)s)")
    parser.add_argument("--per-call", type=int, default=8, help="coalitions per generate call, batched way")
    parser.add_argument("--items", type=int, default=None, help="only the first N items of each task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores but one)")
    args = parser.parse_args()

    device = pick_device(args.device)
    if device.type == "cpu":
        set_cpu_threads(args.threads)
    model, tokenizer, name = get_model(args.model, args.load_in_4bit, device)
    tasks = T.make_tasks(T.SIZES[args.sizes])
    if args.items:
        tasks = [T.Task(t.name, t.items[:args.items], t.max_new_tokens) for t in tasks]
    one = ExpertGame(model, tokenizer, tasks, args.exclusion, coalitions_per_call=1)
    many = ExpertGame(model, tokenizer, tasks, args.exclusion, coalitions_per_call=args.per_call)
    rng = np.random.default_rng(args.seed)
    # coalitions like those of an MSA walk: a random number of experts excluded
    coalitions = np.stack([rng.permutation(len(one.players)) >= rng.integers(0, len(one.players))
                           for _ in range(args.coalitions)])
    timed(many, coalitions[:1])  # warm-up: first-call costs are not what we compare
    answers_one, seconds_one = timed(one, coalitions)
    answers_many, seconds_many = timed(many, coalitions)
    mismatches = sum(a != b for row_a, row_b in zip(answers_one, answers_many) for a, b in zip(row_a, row_b))
    rows = sum(len(t.items) for t in tasks)
    print(f"device: {device} ({torch.get_num_threads()} threads)" if device.type == "cpu" else
          f"device: {torch.cuda.get_device_name(device)}")
    print(f"model: {name}; {len(one.players)} experts; {args.coalitions} coalitions x {rows} prompts; "
          f"exclusion {args.exclusion}")
    print(f"one coalition per generate call:  {args.coalitions / seconds_one:8.3f} coalitions/s")
    print(f"{args.per_call:>3} coalitions per generate call: {args.coalitions / seconds_many:8.3f} coalitions/s")
    if mismatches:
        raise SystemExit(f"answers differ in {mismatches} of {args.coalitions * rows} rows")
    print(f"identical answers: all {args.coalitions * rows} rows")
    print(f"speedup (many per call / one per call): {seconds_one / seconds_many:.2f}x")


if __name__ == "__main__":
    main()
