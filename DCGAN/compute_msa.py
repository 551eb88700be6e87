"""Shapley mode of every generator filter for the fixed faces (paper section 2.3, docs/paper_setup.md#dcgan).

    python DCGAN/compute_msa.py --checkpoint DCGAN/runs/train/generator.pt --budget 1000n

Players: every channel of every generator layer incl. the 3 output channels (lesion = the channel's output
after its activation set to 0). Value: the generator's images for the checkpoint's fixed noise batch,
(32, 3, H, W), in eval mode. Each filter's mode has that shape. Coalitions are run many at a time through
common.lesion.LesionGame; the engine keeps O(players x image) memory however many orderings are walked.
Output: an .npz (common.load reads the result; common.result.load_extra the arrays listed in `extras`).
"""
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import cli
from common.cli import GameSpec, UsageError, add_run_arguments, check_output_file, entry, positive_int
from common.fingerprint import model_fingerprint, tensor_fingerprint
from common.lesion import LesionGame, find_units
from DCGAN import RUNS
from DCGAN.model import Generator, load_generator


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


@dataclass(frozen=True, kw_only=True)
class GameSettings:
    """Everything the game depends on. Picklable: `build()` makes it here and on every Ray worker (each loads its
    own copy of the generator, on its own GPU), and `GameSettings(**result.metadata["settings"]).build()` makes it
    again from a result."""
    checkpoint: str             # written by DCGAN/train.py
    device: str = "auto"
    n_images: int | None = None  # the first N of the checkpoint's fixed noise vectors (default all)
    batch_size: int = 32
    max_rows: int = 4096

    def load(self):
        """(generator, its units, the noise, the saved checkpoint)."""
        from common.device import pick_device
        generator, noise, ckpt = load_generator(Path(self.checkpoint), pick_device(self.device))
        if self.n_images is not None:
            noise = noise[:self.n_images]
        return generator, generator_units(generator, noise), noise, ckpt

    def build(self) -> LesionGame:
        generator, units, noise, _ = self.load()
        return images_game(generator, units, noise, self.batch_size, self.max_rows)


def mean_brightness(images):
    """SPEX's summary of a coalition's images: each image's mean intensity, (C, B)."""
    images = np.asarray(images)
    return images.reshape(images.shape[0], images.shape[1], -1).mean(-1)


def add_arguments(p):
    p.add_argument("--checkpoint", type=Path, default=RUNS / "train/generator.pt", help="written by DCGAN/train.py")
    p.add_argument("--n-images", type=positive_int, default=None,
                   help="use only the first N fixed noise vectors (default all)")
    p.add_argument("--max-rows", type=positive_int, default=4096,
                   help="coalitions x images per forward pass (memory cap; default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="accumulator precision (default float32: for the paper's 128x128 network the running mean "
                        "and variance take 25 GB in float32, 50 GB in float64)")
    add_run_arguments(p, out=RUNS / "msa.npz", out_help="result file (.npz)",
                      batch_size_help="coalitions per game call (default: 32)")


def build(args):
    """The game of the generator's filters on its fixed noise batch."""
    check_output_file(args.out)
    if not args.checkpoint.is_file():
        raise UsageError(f"no generator checkpoint at {args.checkpoint}; train one first: python DCGAN/train.py "
                         "--out-dir ...")
    device = cli.setup_device(args)
    settings = GameSettings(checkpoint=str(args.checkpoint), device=args.device, n_images=args.n_images,
                            batch_size=32 if args.batch_size is None else args.batch_size, max_rows=args.max_rows)
    generator, units, noise, ckpt = settings.load()
    game = images_game(generator, units, noise, settings.batch_size, settings.max_rows)
    out_shape = (len(noise), generator.cfg["channels"], generator.cfg["image_size"], generator.cfg["image_size"])
    print(f"{len(units)} filters {generator.layer_sizes()}, a budget of {args.budget}; value shape "
          f"{out_shape} ({args.dtype}); device {device}")
    extras = layer_info(units, generator)
    extras.update(noise=noise.cpu().numpy(),
                  config_json=np.array(json.dumps(dict(generator.cfg, widths=list(generator.cfg["widths"])))))
    yield GameSpec(
        settings, [str(u) for u in units], args.out, dtype=np.dtype(args.dtype), game=game,
        fingerprint=dict(generator=model_fingerprint(generator), noise=tensor_fingerprint(noise)),
        metadata=dict(checkpoint=str(args.checkpoint), device=str(device), config=generator.cfg,
                      train_info=ckpt.get("train_info", "{}")),
        extras=lambda result: dict(extras, intact_images=np.asarray(result.intact, dtype=np.float32)),
        spex_reduce=mean_brightness)


def main(argv=None):
    written = cli.main(sys.modules[__name__], argv)
    return written[0] if written else None


if __name__ == "__main__":
    entry(main)
