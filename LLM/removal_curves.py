"""Expert-removal curves (paper Figure 2D): accuracy after removing the k lowest- or k highest-contributing
experts for arithmetic, ranked by the experts' mean Shapley mode over the three arithmetic tasks.

Mixtral: GSM8K 3-shot accuracy. The authors' protocol code is lost; we use the test split, the first 3
train-split problems as fixed exemplars (chat turns, calculator annotations <<...>> removed), greedy
decoding, and compare the last number of the answer with the number after '####'.
The tiny model cannot do word problems: its curve is measured on a held-out set of its own arithmetic task
(150 items never trained on), accuracy = first number exactly right (and the mean Levenshtein score).

    python LLM/removal_curves.py --msa LLM/runs/msa_tiny_paper.npz             # tiny model, ~2 min on CPU
    python LLM/removal_curves.py --msa LLM/runs/msa_Mixtral-8x7B-Instruct-v0.1_paper.npz   # GSM8K from the hub
    python LLM/removal_curves.py --msa ... --data-file test.jsonl --train-file train.jsonl  # GSM8K from files

Excluded experts follow the same --exclusion semantics as the Shapley run (default: the run's own).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from common.cli import positive_int
from common import load
from common.result import atomic_savez, load_extra
from LLM import gsm8k
from LLM import tasks as T
from LLM.generate import encode_chat, generate_answers, left_pad
from LLM.load import check_model_name
from LLM.moe import EXCLUSIONS
from common.device import pick_device, set_cpu_threads
from common.extras import require_extra
from common.removal import removal_masks

RUNS = Path(__file__).parent / "runs"
PAPER_KS = [0, 1] + list(range(5, 71, 5))
ROWS_PER_CALL = {"cpu": 600, "cuda": 128}  # GSM8K rows are long (3-shot prompt + 256 new tokens)


def default_ks(n_experts: int) -> list[int]:
    """The paper's k in {0, 1, 5, ..., 70} of 256 experts; for fewer experts every k up to the same ~27%."""
    if n_experts >= 256:
        return PAPER_KS
    return list(range(0, round(70 / 256 * n_experts) + 1))


def arithmetic_ranking(modes: np.ndarray, task_names) -> np.ndarray:
    """Player indices from the lowest to the highest mean contribution to the arithmetic tasks."""
    columns = [list(task_names).index(t) for t in T.DOMAINS["arithmetic"]]
    return np.argsort(modes[:, columns].mean(1), kind="stable")


def tiny_arithmetic_items(limit):
    from LLM.train_tiny_moe import HELD_OUT_SEED

    per_task = 50 if not limit else max(1, limit // 3)
    items = [T.arithmetic_item(task, a, b) for task, (d, d_b) in T.arithmetic_digits(T.TINY).items()
             for a, b in T.arithmetic_pairs(task, d, per_task, HELD_OUT_SEED, digits_b=d_b)]
    return [i.messages for i in items], [i.target for i in items]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--msa", type=Path, required=True, help=".npz written by LLM/compute_msa.py")
    parser.add_argument("--model", default=None, help="default: the model of the --msa run")
    parser.add_argument("--load-in-4bit", action=argparse.BooleanOptionalAction, default=None,
                        help="default: as the --msa run")
    parser.add_argument("--exclusion", choices=EXCLUSIONS, default=None, help="default: as the --msa run")
    parser.add_argument("--data", choices=("gsm8k", "tiny-arithmetic"), default=None,
                        help="default: tiny-arithmetic for the tiny model, gsm8k otherwise")
    parser.add_argument("--data-file", type=Path, default=None, help="GSM8K test problems as jsonl (question, answer)")
    parser.add_argument("--train-file", type=Path, default=None, help="GSM8K train problems as jsonl (first 3: exemplars)")
    parser.add_argument("--limit", type=positive_int, default=None, help="only the first N test problems")
    parser.add_argument("--ks", default=None, help="comma-separated k (default: 0,1,5,...,70 for 256 experts, "
                                                   "0..27%% of the experts otherwise)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=None, help="default: 256 for GSM8K")
    parser.add_argument("--rows-per-call", type=positive_int, default=None, help=f"rows per generate call (default: {ROWS_PER_CALL})")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: every core)")
    parser.add_argument("--task", choices=T.TASK_NAMES, default=None,
                        help="heads, mlp, layers runs: rank the units by this task's modes and score held-out items of "
                             "it (default: the task the intact model does best against chance)")
    parser.add_argument("--out", type=Path, default=None, help="default: LLM/runs/removal_<msa file name>.npz")
    args = parser.parse_args(argv)
    if not args.msa.is_file():
        parser.error(f"--msa {args.msa}: no such file; LLM/compute_msa.py writes it")
    try:
        ks = None if args.ks is None else [int(k) for k in args.ks.split(",")]
    except ValueError:
        parser.error(f"--ks takes comma-separated whole numbers, like 0,1,5; got {args.ks!r}")
    if ks is not None and min(ks) < 0:
        parser.error(f"--ks must be >= 0, got {args.ks}")
    for path in (args.data_file, args.train_file):
        if path is not None and not path.is_file():
            parser.error(f"{path}: no such file")
    if args.model is not None:
        check_model_name(args.model)
    require_extra("llm")

    device = pick_device(args.device)
    if device.type == "cpu":
        set_cpu_threads(args.threads)
    result, extra = load(args.msa), load_extra(args.msa)
    settings = run_settings(result, args)
    model_name, exclusion = settings.model, settings.exclusion
    tiny = result.metadata.get("sizes") == "tiny"
    data = args.data or ("tiny-arithmetic" if tiny else "gsm8k")
    ks = ks if ks is not None else default_ks(len(result.players))
    if max(ks) > len(result.players):
        raise SystemExit(f"k up to {max(ks)} but the run has only {len(result.players)} players")
    out = args.out or RUNS / f"removal_{args.msa.stem.removeprefix('msa_')}.npz"
    if result.metadata.get("units", "experts") != "experts":
        return unit_removal(args, settings, result, extra, ks, out)

    if data == "gsm8k":
        prompts, references = gsm8k.items(args.data_file, args.train_file, args.limit)
        max_new_tokens = 256 if args.max_new_tokens is None else args.max_new_tokens
    else:
        prompts, references = tiny_arithmetic_items(args.limit)
        max_new_tokens = T.TINY.arithmetic_tokens if args.max_new_tokens is None else args.max_new_tokens
    model, tokenizer, players = settings.load()
    device = next(model.parameters()).device
    if [tuple(p) for p in result.players] != players.labels:
        raise SystemExit(f"the experts of {model_name} are not the players of {args.msa}")

    order = arithmetic_ranking(result.modes, extra["task_names"])
    highest, lowest = removal_masks(order, ks)
    unique, inverse = np.unique(np.concatenate([lowest, highest]), axis=0, return_inverse=True)
    ids, mask = left_pad(tokenizer, [encode_chat(tokenizer, m) for m in prompts])
    print(f"{data}: {len(prompts)} problems x {len(unique)} distinct expert sets ({model_name}, exclusion {exclusion})")
    started = time.perf_counter()
    rows_per_call = ROWS_PER_CALL[device.type] if args.rows_per_call is None else args.rows_per_call
    answers = generate_answers(model, tokenizer, ids, mask, unique, max_new_tokens, players.ablated,
                               rows_per_call, progress=True, desc="removal curves")
    if data == "gsm8k":
        correct = np.array([[gsm8k.correct(a, r) for a, r in zip(row, references)] for row in answers], float)
        per_item = np.full(correct.shape, np.nan)
    else:
        correct = np.array([[T.same_number(T.first_number(a), r) for a, r in zip(row, references)] for row in answers],
                           float)
        per_item = np.array([[T.score_arithmetic(a, r) for a, r in zip(row, references)] for row in answers])
    accuracy, accuracy_se = (a[inverse].reshape(2, len(ks)) for a in mean_and_se(correct))
    score, score_se = (a[inverse].reshape(2, len(ks)) for a in mean_and_se(per_item))
    print(f"{'k':>4}  accuracy: {'remove lowest':>14}{'remove highest':>15}" + (
        "" if data == "gsm8k" else f"   score: {'remove lowest':>14}{'remove highest':>15}"))
    for i, k in enumerate(ks):
        print(f"{k:>4}  {'':>9} {accuracy[0, i]:>14.3f}{accuracy[1, i]:>15.3f}" + (
            "" if data == "gsm8k" else f"   {'':>6} {score[0, i]:>14.3f}{score[1, i]:>15.3f}"))
    atomic_savez(out, ks=np.array(ks), accuracy_lowest=accuracy[0], accuracy_highest=accuracy[1],
                 accuracy_lowest_se=accuracy_se[0], accuracy_highest_se=accuracy_se[1], score_lowest=score[0],
                 score_highest=score[1], score_lowest_se=score_se[0], score_highest_se=score_se[1], order=order,
                 data=np.array(data),
                 n_items=np.array(len(prompts)), model=np.array(model_name), exclusion=np.array(exclusion),
                 seconds=np.array(time.perf_counter() - started),
                 example_answers=np.array(json.dumps([row[:3] for row in answers[:2]], ensure_ascii=False)))
    print(f"wrote {out}")
    return out


def mean_and_se(per_item: np.ndarray):
    """(mean, standard error) over the items of each row (NaN where there is one item, or no score)."""
    n = per_item.shape[1]
    spread = per_item.std(1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(per_item), np.nan)
    return per_item.mean(1), spread


def held_out_task(name: str, sizes: str, used: int | None, n: int, items_seed: int) -> T.Task:
    """Items of `name` the Shapley run did not score: the language and capital items after the first `used`, or
    arithmetic items drawn with another seed."""
    if name in T.OPERATORS:
        task = next(t for t in T.make_tasks(T.SIZES[sizes], seed=items_seed + 1000) if t.name == name)
        return T.Task(name, task.items[:n], task.max_new_tokens)
    task = next(t for t in T.make_tasks(T.SIZES[sizes], seed=items_seed) if t.name == name)
    rest = task.items[used or 0:]
    if not rest:
        raise SystemExit(f"the run scored every {name} item: no held-out items left")
    return T.Task(name, rest[:n], task.max_new_tokens)


def run_settings(result, args):
    """The Shapley run's game settings (LLM/compute_msa.GameSettings), with this command line's model, exclusion,
    4-bit loading and device where it gives them."""
    from dataclasses import replace

    from LLM.compute_msa import GameSettings
    if "settings" not in result.metadata:
        raise SystemExit(f"{args.msa} was written before results kept their game's settings: run LLM/compute_msa.py "
                         "again")
    settings = GameSettings(**result.metadata["settings"])
    given = dict(model=args.model, exclusion=args.exclusion, load_in_4bit=args.load_in_4bit, device=args.device)
    return replace(settings, **{k: v for k, v in given.items() if v is not None})


def unit_removal(args, settings, result, extra, ks, out):
    """Heads, MLP blocks or sub-layers: remove the k units with the lowest or the highest mode for one task, and
    score held-out items of that task with the run's own score (log-probability or generated answers)."""
    from LLM.generate import LMGame
    meta = result.metadata
    tasks = [str(t) for t in extra["task_names"]]
    gain = np.asarray(extra["intact_scores"]) - np.asarray(extra["chance"])
    task = args.task or tasks[int(np.nanargmax(gain))]
    column = tasks.index(task)
    model, tokenizer, players = settings.load()
    if list(players.labels) != [str(p) for p in result.players]:
        raise SystemExit(f"the {meta['units']} of {meta['model']} are not the players of {args.msa}")
    held_out = held_out_task(task, meta["sizes"], meta.get("items"), 20 if args.limit is None else args.limit, meta.get("items_seed", 0))
    game = LMGame(model, tokenizer, [held_out], players, meta.get("score", "generate"), coalitions_per_call=1)
    order = np.argsort(result.modes[:, column], kind="stable")
    highest, lowest = removal_masks(order, ks)
    started = time.perf_counter()
    coalitions = np.concatenate([lowest, highest])
    if game.score == "logprob":
        per_item = game.logprobs(coalitions)  # (coalitions, items)
    else:
        per_item = np.array([[held_out.score(answer, item) for (_, item), answer in zip(game.items, row)]
                             for row in game.answers(coalitions)])
    values, spread = (a.reshape(2, len(ks)) for a in mean_and_se(per_item))
    print(f"{task}, {len(held_out.items)} held-out items, {meta.get('score')} score; units ranked by their {task} mode")
    print(f"{'k':>4}{'remove lowest':>15}{'remove highest':>16}")
    for i, k in enumerate(ks):
        print(f"{k:>4}{values[0, i]:>15.3f}{values[1, i]:>16.3f}")
    atomic_savez(out, ks=np.array(ks), score_lowest=values[0], score_highest=values[1], score_lowest_se=spread[0],
                 score_highest_se=spread[1], order=order,
                 task=np.array(task), units=np.array(meta["units"]), score=np.array(meta.get("score", "generate")),
                 n_items=np.array(len(held_out.items)), model=np.array(meta["model"]), data=np.array(f"held-out {task}"),
                 seconds=np.array(time.perf_counter() - started))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
