"""Shapley mode of every generator filter for the fixed faces (paper section 2.3, docs/paper_setup.md#dcgan).

    python DCGAN/compute_msa.py --checkpoint DCGAN/runs/train/generator.pt --n-permutations 1000

Players: every channel of every generator layer incl. the 3 output channels (lesion = the channel's output
after its activation set to 0). Value: the generator's images for the checkpoint's fixed noise batch,
(32, 3, H, W), in eval mode. Each filter's mode has that shape. Coalitions are run many at a time through
common.lesion.LesionGame; the engine keeps O(players x image) memory however many orderings are walked.
Output: an .npz (common.load reads the result; common.result.load_extra the arrays listed in `extras`).
"""
import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from common import shapley_modes
from common.checkpoint import fingerprint, remove_checkpoint
from common.cli import add_long_run_arguments, long_run_options
from common.device import pick_device, set_cpu_threads
from common.lesion import LesionGame, find_units
from DCGAN.model import Generator, load_generator
from DCGAN import RUNS


def generator_units(generator: Generator, noise: torch.Tensor):
    """All (layer, channel) units, input side first; checked against the config's widths."""
    units = find_units(generator, generator.lesion_sites(), noise[:1])
    sizes = [sum(u.module == site for u in units) for site in generator.lesion_sites()]
    if sizes != generator.layer_sizes():
        raise RuntimeError(f"found layer sizes {sizes}, config says {generator.layer_sizes()}")
    return units


def images_game(generator: Generator, units, noise: torch.Tensor, batch_size: int = 32, max_rows: int = 4096):
    """The game: coalitions (C, n) -> images (C, B, 3, H, W). The noise -> first layer step runs once per
    call (the first lesion site expands B to C x B rows); later layers run on C x B rows, max_rows at a time."""
    if generator.training:
        raise ValueError("put the generator in eval mode: in train mode BatchNorm mixes coalitions in a batch")
    return LesionGame(generator, units, noise, value_fn=lambda out: out, batch_size=batch_size, max_rows=max_rows)


def layer_info(units, generator: Generator):
    sites = generator.lesion_sites()
    layer = np.array([sites.index(u.module) for u in units], dtype=np.int64)
    return dict(unit_module=np.array([u.module for u in units]), unit_index=np.array([u.index for u in units]),
                unit_layer=layer, layer_names=np.array(sites), layer_sizes=np.array(generator.layer_sizes()))




def build_game(checkpoint, device="auto", n_images=None, batch_size=32, max_rows=4096):
    """(game, units, generator, noise, saved checkpoint); `partial(build_game, ...)` is picklable, so each Ray
    worker loads its own copy of the generator (on its own GPU)."""
    generator, noise, ckpt = load_generator(checkpoint, pick_device(device))
    if n_images is not None:
        noise = noise[:n_images]
    units = generator_units(generator, noise)
    return images_game(generator, units, noise, batch_size, max_rows), units, generator, noise, ckpt


def game_only(*settings):
    return build_game(*settings)[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(RUNS / "train/generator.pt"), help="written by DCGAN/train.py")
    p.add_argument("--out", default=str(RUNS / "msa.npz"), help="result file (.npz)")
    p.add_argument("--n-permutations", type=int, default=1000, help="orderings to walk (the paper: 1000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the orderings (same seed -> same numbers)")
    p.add_argument("--sampler", default="iid", choices=("iid", "antithetic"))
    p.add_argument("--n-images", type=int, default=None, help="use only the first N fixed noise vectors (default all)")
    p.add_argument("--batch-size", type=int, default=32, help="coalitions per game call")
    p.add_argument("--max-rows", type=int, default=4096, help="coalitions x images per forward pass (memory cap)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="accumulator precision (default float32: for the paper's 128x128 network the running mean "
                        "and variance take 25 GB in float32, 50 GB in float64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    add_long_run_arguments(p)
    args = p.parse_args(argv)

    if args.threads:
        set_cpu_threads(args.threads)
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f"no checkpoint at {args.checkpoint}; train one first: python DCGAN/train.py --out-dir ...")
    device = pick_device(args.device)
    settings = (args.checkpoint, args.device, args.n_images, args.batch_size, args.max_rows)
    game, units, generator, noise, ckpt = build_game(*settings)
    factory = partial(game_only, *settings)
    n = len(units)
    dtype = dict(float32=np.float32, float64=np.float64)[args.dtype]
    out_shape = (len(noise), generator.cfg["channels"], generator.cfg["image_size"], generator.cfg["image_size"])
    buffers = 2 * n * int(np.prod(out_shape)) * np.dtype(dtype).itemsize
    print(f"{n} filters {generator.layer_sizes()} x {args.n_permutations} orderings = "
          f"{n * args.n_permutations:,} coalitions; value shape {out_shape}; "
          f"running mean + variance {buffers / 2**30:.2f} GiB ({args.dtype}); device {device}")

    state = Path(args.out).with_suffix(".ckpt")
    run = long_run_options(args, state, factory, f"{fingerprint(generator)}|images={len(noise)}|{float(noise.sum()):.6f}")
    started = time.time()
    result = shapley_modes(game, [str(u) for u in units], args.n_permutations, seed=args.seed,
                           sampler=args.sampler, dtype=dtype, progress=not args.no_progress, **run)
    result.metadata.update(checkpoint=str(args.checkpoint), device=str(device), config=generator.cfg,
                           train_info=ckpt.get("train_info", "{}"))
    extras = layer_info(units, generator)
    extras.update(noise=noise.cpu().numpy(), intact_images=np.asarray(result.intact, dtype=np.float32),
                  config_json=np.array(json.dumps(dict(generator.cfg, widths=list(generator.cfg["widths"])))))
    path = result.save(args.out, **extras)
    remove_checkpoint(state)
    print(f"saved {path}: modes {result.modes.shape} in {time.time() - started:.1f} s "
          f"({result.metadata['coalitions_per_s']:.0f} coalitions/s); efficiency gap "
          f"{result.efficiency_gap():.2e} (sum of modes vs intact - all lesioned)")
    return path


if __name__ == "__main__":
    main()
