"""Rank, compress, check: a causal LM without its least important attention heads, as a smaller Hugging Face
model (save_pretrained; from_pretrained loads it).

    python LLM/compress.py --msa LLM/runs/msa_heads.npz --keep-per-group 2 --out LLM/runs/smollm2_small
    python LLM/compress.py --model smollm2 --ranking weight-norm --remove 0.3 --out LLM/runs/smollm2_small

The ranking: the heads' Shapley modes of an --msa run with --units heads (their mean over the nine tasks, or
--task's), or the norm of o_proj's columns that read each head (weight-norm, no run needed).

What goes: --keep-per-group K keeps the K highest-ranked query heads of every key/value group (grouped-query
attention shares one key/value head among a group of query heads), so every layer shrinks by the same heads;
--remove F removes the lowest-ranked fraction F of the heads wherever they are, and the model then keeps, in
every layer, as many query slots per group as the fullest group needs (the slots left over are zero). Either
way the smaller model's logits equal the original's with the same heads zero-ablated (checked before it is
written), and it never has more parameters than the original.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import cli, load
from common.cli import entry, open_fraction, positive_int
from common.prune import parameter_count, pruned_heads
from common.rankings import weight_norm
from common.removal import removal_masks
from common.result import load_extra
from common.weights import replace_folder
from LLM.load import check_model_name, load_model
from LLM.tasks import TASK_NAMES
from LLM.units import model_players, parse_layers

RANKINGS = ("shapley", "weight-norm")


def heads_result(path: Path):
    """(result, extras) of an LLM/compute_msa.py run on attention heads; SystemExit naming what is wrong."""
    if not path.is_file():
        raise SystemExit(f"--msa {path}: no such file")
    result = load(path)
    if result.metadata.get("units") != "heads":
        raise SystemExit(f"--msa {path} ranks {result.metadata.get('units')!r} units; compress removes attention "
                         "heads: run LLM/compute_msa.py with --units heads")
    return result, load_extra(path)


def head_scores(args, model, players, result, extras) -> np.ndarray:
    """One score per head player (higher = more important)."""
    if args.ranking == "weight-norm":
        return weight_norm(model, players.units).scores
    locations = [str(u) for u in players.units]
    if list(extras["unit_locations"]) != locations:
        raise SystemExit(f"--msa's heads ({len(extras['unit_locations'])}) are not this model's heads "
                         f"({len(locations)}): give the --model and --layers of the run")
    modes = np.asarray(result.modes, dtype=np.float64)
    return modes.mean(1) if args.task is None else modes[:, list(extras["task_names"]).index(args.task)]


def kept_heads(args, model, players, scores) -> np.ndarray:
    """keep (True = the head stays) from --remove or --keep-per-group."""
    n, order = len(scores), np.argsort(scores, kind="stable")
    if args.remove is not None:
        k = int(round(args.remove * n))
        if k == 0:
            raise SystemExit(f"--remove {args.remove} of {n} heads removes none")
        return removal_masks(order, [k])[1][0]
    d = players.units[0].features.stop - players.units[0].index
    head = np.array([u.index // d for u in players.units])
    per_group = model.config.num_attention_heads // model.config.num_key_value_heads
    if args.keep_per_group >= per_group:
        raise SystemExit(f"--keep-per-group {args.keep_per_group}: every key/value group has {per_group} query heads; "
                         f"keep 1 to {per_group - 1}")
    keep = np.zeros(n, bool)
    for group in {(layer, h // per_group) for layer, h in zip(players.layer, head)}:
        members = np.flatnonzero((players.layer == group[0]) & (head // per_group == group[1]))
        keep[members[np.argsort(scores[members], kind="stable")[-args.keep_per_group:]]] = True
    return keep


def logit_gap(model, small, players, keep, vocab: int) -> float:
    """Max |logit difference| between the smaller model and the masked original, on random token ids."""
    ids = torch.randint(0, vocab, (2, 24), generator=torch.Generator().manual_seed(0)).to(model.device)
    with torch.no_grad():
        with players.ablated(np.tile(keep, (len(ids), 1))):
            masked = model(ids).logits
        return float((small(ids).logits - masked).abs().max() / masked.abs().max().clamp(min=1))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None,
                   help="a Hugging Face causal LM: folder, hub id or smollm2 (default: the --msa run's, else smollm2)")
    p.add_argument("--msa", type=Path, default=None, help="an LLM/compute_msa.py result on --units heads")
    p.add_argument("--ranking", choices=RANKINGS, default=None,
                   help="shapley (the --msa modes; the default with --msa) or weight-norm (the default without)")
    p.add_argument("--task", choices=TASK_NAMES, default=None, help="rank by this task's modes (default: the mean)")
    p.add_argument("--layers", default=None,
                   help="weight-norm: only heads of these decoder layers may go (N or START:STOP; default: all)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--keep-per-group", type=positive_int, default=None,
                      help="keep the K highest-ranked query heads of every key/value group")
    what.add_argument("--remove", type=open_fraction, default=None,
                      help="remove this fraction of the heads, the lowest-ranked wherever they are")
    p.add_argument("--out", type=Path, required=True, help="folder for the smaller model (save_pretrained)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: the free cores)")
    args = p.parse_args(argv)
    if args.task is not None and args.msa is None:
        p.error("--task ranks by one task's Shapley modes: it needs --msa")
    try:
        cli.resolve_ranking(args, "LLM/compute_msa.py --units heads")
        cli.check_replaceable(args.out, args.force)
        layers = None if args.layers is None else parse_layers(args.layers)
    except (cli.UsageError, ValueError) as error:
        p.error(str(error))
    result, extras = heads_result(args.msa) if args.msa is not None else (None, None)
    if result is not None:
        if args.layers is not None:
            p.error("--layers: the heads are those of the --msa run")
        layers = None if result.metadata.get("layers") is None else parse_layers(result.metadata["layers"])
        if args.model is None:
            args.model = result.metadata["model"]
    model_name = args.model or "smollm2"
    check_model_name(model_name)

    cli.setup_device(args)
    model, tokenizer, _ = load_model(model_name, device=args.device)
    try:
        players = model_players(model, "heads", layers=layers)
    except ValueError as error:
        raise SystemExit(f"--layers: {error}") from None
    keep = kept_heads(args, model, players, head_scores(args, model, players, result, extras))
    try:
        small = pruned_heads(model, players.units, keep)
    except ValueError as error:
        raise SystemExit(f"cannot compress: {error}; remove fewer heads") from None
    gap = logit_gap(model, small, players, keep, model.config.vocab_size)
    if gap > 1e-4:
        raise SystemExit(f"the smaller model's logits differ from the masked model's by {gap:.2g} (relative); "
                         "nothing written")
    record = dict(model=model_name, ranking=args.ranking, task=args.task, msa=None if args.msa is None else
                  str(args.msa), removed=[str(u) for u, k in zip(players.units, keep) if not k],
                  parameters=[parameter_count(model), parameter_count(small)])

    def write(folder):
        small.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "compress.json").write_text(json.dumps(record, indent=1))
    replace_folder(args.out, write)

    before, after = model.config, small.config
    print(f"{model_name}: ranked by {args.ranking}{f' ({args.task})' if args.task else ''}; removed "
          f"{(~keep).sum()} of {len(keep)} heads")
    print(f"  attention per layer: {before.num_attention_heads} query heads on {before.num_key_value_heads} key/value "
          f"heads -> {after.num_attention_heads} query slots on {after.num_key_value_heads}")
    print(f"  parameters: {record['parameters'][0]:,} -> {record['parameters'][1]:,} "
          f"({1 - record['parameters'][1] / record['parameters'][0]:.1%} fewer); logits as the masked model's "
          f"(relative gap {gap:.1g})")
    print(f"wrote {args.out.resolve()} (AutoModelForCausalLM.from_pretrained reads it; --model for compute_msa.py)")


if __name__ == "__main__":
    entry(main)
