"""Lesion clusters of filters and show what changes (paper Figure 4).

    python DCGAN/lesion_clusters.py --checkpoint G.pt --msa msa.npz --clusters clusters.npz --lesion 3 --lesion 1 4

Each --lesion names one or more cluster labels lesioned together (one figure column group); without any,
the --top clusters with the largest effect on the images are lesioned one at a time. For each lesion the
PNG shows three rows over the first --n-images faces: unlesioned, lesioned, and the difference
(lesioned - unlesioned, mean over R, G, B; red = brighter, blue = darker, shared colour scale).
"""
import argparse
from pathlib import Path

import numpy as np
import torch

from common.cli import non_negative_int, positive_int
from common.lesion import LesionGame, lesioned
from common.removal import scored, without_groups
from DCGAN import RUNS


@torch.no_grad()
def lesion_images(generator, noise, units, keep) -> tuple[np.ndarray, np.ndarray]:
    """(unlesioned, lesioned) images, numpy (B, 3, H, W); keep (n,) True = the unit stays intact."""
    intact = generator(noise)
    with lesioned(generator, units, np.asarray(keep, bool)[None]):
        damaged = generator(noise)
    return intact.cpu().numpy(), damaged.cpu().numpy()


def mean_change(generator, units, noise) -> LesionGame:
    """score(coalitions) -> (C, B): each image's mean |lesioned - unlesioned| pixel change."""
    with torch.no_grad():
        intact = generator(noise)
    return LesionGame(generator, units, noise, lambda out: (out - intact).abs().mean((2, 3, 4)).cpu().numpy(),
                      batch_size=8)


def effect_sizes(generator, noise, units, labels) -> dict:
    """{cluster: (mean |change| over the images, its standard error)} with each cluster lesioned alone."""
    clusters = [int(c) for c in np.unique(labels[labels >= 0])]
    mean, se, _ = scored(mean_change(generator, units, noise), without_groups(labels, [[c] for c in clusters]))
    return {c: (float(m), float(s)) for c, m, s in zip(clusters, mean, se)}


def plot_lesions(rows, titles, path=None, max_images: int = 8):
    """rows: list of (unlesioned, lesioned) pairs; one block of 3 rows x max_images images per pair: the images,
    the images with the cluster lesioned, and the difference on one scale around 0 per block."""
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    from common.figures import note, picture, shared_colorbar
    from DCGAN.figures import rgb
    k = min(max_images, len(rows[0][0]))
    fig, axes = plt.subplots(3 * len(rows), k, figsize=(1.5 * k + 2.5, 1.4 * 3 * len(rows)), squeeze=False,
                             layout="constrained")
    for r, ((a, b), title) in enumerate(zip(rows, titles)):
        diff = (b - a).mean(1)  # (B, H, W), signed
        lim = max(float(np.abs(diff[:k]).max()), 1e-8)
        norm, image = Normalize(-lim, lim), None
        for j in range(k):
            picture(axes[3 * r, j], rgb(a[j]))
            picture(axes[3 * r + 1, j], rgb(b[j]))
            image = axes[3 * r + 2, j].imshow(diff[j], cmap="RdBu_r", norm=norm)
            axes[3 * r + 2, j].axis("off")
        for i, name in enumerate(("unlesioned", "lesioned", "difference")):
            axes[3 * r + i, 0].text(-0.08, 0.5, name, transform=axes[3 * r + i, 0].transAxes, ha="right",
                                    va="center", fontsize=7)
        if np.abs(diff[:k]).max() == 0:
            note(axes[3 * r + 2, 0], "no change")
        axes[3 * r, 0].set_title(title, fontsize=8, loc="left")
        axes[3 * r + 2, 0].set_title(f"difference: {title.split(':')[0].split(' (')[0]}", fontsize=6, loc="left")
        shared_colorbar(fig, image, axes[3 * r + 2, :], label="lesioned - unlesioned")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(RUNS / "train/generator.pt"))
    p.add_argument("--msa", default=str(RUNS / "msa.npz"), help="for the player list (the units' order)")
    p.add_argument("--clusters", default=str(RUNS / "clusters.npz"), help="written by DCGAN/cluster.py")
    p.add_argument("--lesion", type=non_negative_int, nargs="+", action="append", default=None,
                   help="cluster labels to lesion together; repeat for more figure blocks")
    p.add_argument("--top", type=positive_int, default=4, help="without --lesion: the clusters with the largest effect")
    p.add_argument("--n-images", type=positive_int, default=8)
    p.add_argument("--out", default=str(RUNS / "cluster_lesions.png"))
    args = p.parse_args(argv)
    for option, path in (("--checkpoint", args.checkpoint), ("--msa", args.msa), ("--clusters", args.clusters)):
        if not Path(path).is_file():
            p.error(f"{option} {path}: no such file")

    import common
    from dataclasses import replace

    from DCGAN.compute_msa import GameSettings
    result = common.load(args.msa)
    if "settings" not in result.metadata:
        raise SystemExit(f"{args.msa} was written before results kept their game's settings: run "
                         "DCGAN/compute_msa.py again")
    settings = replace(GameSettings(**result.metadata["settings"]), checkpoint=str(args.checkpoint), n_images=None)
    generator, units, noise, _ = settings.load()  # the run's game, on the generator given here
    with np.load(args.clusters) as f:
        labels, cluster_players = f["labels"], [str(x) for x in f["players"]]
    if [str(u) for u in units] != [str(p) for p in result.players]:
        raise SystemExit(f"the filters of {args.checkpoint} are not the players of {args.msa}")
    if [str(p) for p in result.players] != cluster_players:
        raise SystemExit(f"{args.clusters} was not computed from {args.msa}: the player lists differ")
    noise = noise[:args.n_images]
    if args.lesion:
        groups = args.lesion
        unknown = sorted(set(sum(groups, [])) - set(labels.tolist()))
        if unknown:
            raise SystemExit(f"no clusters {unknown}; labels run 0..{labels.max()}")
        change, se, _ = scored(mean_change(generator, units, noise), without_groups(labels, groups))
    else:  # every cluster alone is scored once, to pick the top ones
        effects = effect_sizes(generator, noise, units, labels)
        groups = [[c] for c in sorted(effects, key=lambda c: effects[c][0], reverse=True)[:args.top]]
        change, se = np.array([effects[c] for [c] in groups]).reshape(-1, 2).T
    keeps = without_groups(labels, groups)
    rows, titles = [], []
    for group, keep, m, s in zip(groups, keeps, change, se):
        rows.append(lesion_images(generator, noise, units, keep))
        spread = f" +- {s:.3f}" if np.isfinite(s) else ""
        titles.append(f"lesion cluster(s) {group}: {int((~keep).sum())} filters, mean |change| {m:.3f}{spread}")
        print(titles[-1])
    plot_lesions(rows, titles, args.out, args.n_images)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
