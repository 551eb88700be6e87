"""Rank, compress, check: a DCGAN generator without its least important hidden filters, as a smaller generator
(DCGAN.model.load_generator reads it: torch.load with weights_only=True, then the builder).

    python DCGAN/compress.py --msa DCGAN/runs/msa.npz --remove 0.3 --out DCGAN/runs/generator_small.pt
    python DCGAN/compress.py --checkpoint DCGAN/runs/train/generator.pt --ranking weight-norm --remove 0.5 \
        --per-layer --out DCGAN/runs/generator_small.pt

The ranking: the size of each filter's Shapley mode over the fixed images (the root of its sum of squares; an
--msa run of DCGAN/compute_msa.py), the norm of the next layer's weights that read the filter (weight-norm),
or the filter's mean |activation| on the fixed noise (mean-activation). The R, G, B output channels stay.

--remove F removes the lowest-ranked fraction F of the hidden filters (--per-layer: F of every layer's); a layer
left without a filter is refused. The smaller generator's images equal the original's with the same filters
zero-lesioned (checked before anything is written), and it has fewer parameters.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import cli, load, rankings
from common.cli import entry, open_fraction, positive_int
from common.lesion import lesioned
from common.prune import Wiring, parameter_count, pruned
from common.removal import removal_masks
from DCGAN.compute_msa import generator_units
from DCGAN.model import load_generator, save_generator

RANKINGS = ("shapley", "weight-norm", "mean-activation")


def hidden_wiring(generator) -> dict:
    """{blocks.i.act: Wiring(blocks.i.conv, the next conv, (blocks.i.bn,))} for every hidden block."""
    last = len(generator.blocks) - 1
    return {f"blocks.{i}.act": Wiring(f"blocks.{i}.conv", f"blocks.{i + 1}.conv" if i < last else "out.conv",
                                      (f"blocks.{i}.bn",)) for i in range(last + 1)}


def filter_scores(args, generator, units, noise, result) -> np.ndarray:
    """One score per hidden filter (higher = more important)."""
    if args.ranking == "shapley":
        index = {name: i for i, name in enumerate(result.players)}
        missing = [str(u) for u in units if str(u) not in index]
        if missing:
            raise SystemExit(f"--msa's players are not this generator's filters ({missing[0]} is missing): give the "
                             "--checkpoint of the run")
        modes = np.asarray(result.modes)[[index[str(u)] for u in units]]
        return np.sqrt((modes.reshape(len(units), -1).astype(np.float64) ** 2).sum(1))
    if args.ranking == "weight-norm":
        consumers = {site: wire.consumer for site, wire in hidden_wiring(generator).items()}
        return rankings.weight_norm(generator, units, consumers=consumers).scores
    return rankings.activation_magnitude(generator, units, lambda: generator(noise)).scores


def kept_filters(args, units, scores) -> np.ndarray:
    """keep (True = the filter stays): without the lowest-ranked --remove fraction, overall or per layer."""
    groups = [np.arange(len(units))] if not args.per_layer else \
        [np.flatnonzero([u.module == site for u in units]) for site in dict.fromkeys(u.module for u in units)]
    keep = np.ones(len(units), bool)
    for members in groups:
        k = int(round(args.remove * len(members)))
        keep[members] = removal_masks(np.argsort(scores[members], kind="stable"), [k])[1][0]
    if keep.all():
        raise SystemExit(f"--remove {args.remove} of {len(units)} filters removes none")
    return keep


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a generator written by DCGAN/train.py (default: the --msa run's)")
    p.add_argument("--msa", type=Path, default=None, help="a DCGAN/compute_msa.py result of that generator")
    p.add_argument("--ranking", choices=RANKINGS, default=None,
                   help="shapley (the default with --msa), weight-norm (the default without), mean-activation")
    p.add_argument("--remove", type=open_fraction, required=True, help="fraction of the hidden filters to remove")
    p.add_argument("--per-layer", action="store_true", help="remove that fraction of every layer's filters")
    p.add_argument("--out", type=Path, required=True, help="the smaller generator's file (.pt)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: the free cores)")
    args = p.parse_args(argv)
    try:
        cli.resolve_ranking(args, "DCGAN/compute_msa.py")
        cli.check_replaceable(args.out, args.force)
    except cli.UsageError as error:
        p.error(str(error))
    result = None
    if args.msa is not None:
        if not args.msa.is_file():
            p.error(f"--msa {args.msa}: no such file")
        result = load(args.msa)
        if "checkpoint" not in result.metadata:
            p.error(f"--msa {args.msa} is not a DCGAN/compute_msa.py result (its metadata names no checkpoint)")
        if args.checkpoint is None:
            args.checkpoint = Path(result.metadata["checkpoint"])
    if args.checkpoint is None:
        p.error("--checkpoint is needed without --msa")
    if not args.checkpoint.is_file():
        p.error(f"--checkpoint {args.checkpoint}: no such file")

    args.device = "cpu"
    cli.setup_device(args)
    generator, noise, ckpt = load_generator(args.checkpoint)
    units = [u for u in generator_units(generator, noise) if u.module != "out.act"]
    keep = kept_filters(args, units, filter_scores(args, generator, units, noise, result))
    try:
        small = pruned(generator, units, keep, hidden_wiring(generator))
    except ValueError as error:
        raise SystemExit(f"cannot compress: {error}; remove fewer filters"
                         f"{'' if args.per_layer else ' (or --per-layer)'}") from None
    widths = [int(sum(k for u, k in zip(units, keep) if u.module == f"blocks.{i}.act")) for i in range(len(small.blocks))]
    small.cfg["widths"] = tuple(widths)
    with torch.no_grad():
        intact = generator(noise)
        with lesioned(generator, units, keep):
            masked = generator(noise)
        images = small(noise)
    gap = float((images - masked).abs().max())
    if gap > 1e-4:
        raise SystemExit(f"the smaller generator's images differ from the masked generator's by {gap:.2g}; "
                         "nothing written")
    before, after = parameter_count(generator), parameter_count(small)
    save_generator(args.out, small, noise, train_info=ckpt.get("train_info", "{}"),
                   compressed=json.dumps(dict(checkpoint=str(args.checkpoint), ranking=args.ranking,
                                              remove=args.remove, per_layer=args.per_layer, parameters=[before, after],
                                              removed=[str(u) for u, k in zip(units, keep) if not k])))
    change = float(((images - intact) ** 2).mean())
    print(f"{args.checkpoint}: ranked by {args.ranking}; removed {(~keep).sum()} of {len(units)} hidden filters")
    print(f"  widths {list(generator.cfg['widths'])} -> {widths}; parameters {before:,} -> {after:,} "
          f"({1 - after / before:.1%} fewer)")
    print(f"  the fixed images' mean squared change: {change:.4g} (pixels in [0, 1]); equal to the masked "
          f"generator's to {gap:.1g}")
    print(f"wrote {args.out.resolve()} (DCGAN.model.load_generator reads it)")


if __name__ == "__main__":
    entry(main)
