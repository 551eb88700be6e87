"""Cluster generator filters by their Shapley modes (paper section 4.2.4, docs/paper_setup.md#dcgan).

    python DCGAN/cluster.py --msa DCGAN/runs/msa.npz --out DCGAN/runs/clusters.npz

Similarity: Pearson correlation between the filters' flattened modes. Negative entries are zeroed by
default (the authors' code, docs/paper_setup.md#dcgan); --negative abs takes absolute values instead (the paper's text). The matrix is a weighted
graph; Louvain communities (python-louvain, --resolution, the authors used 3) from --n-runs seeded runs,
merged into one consensus partition: the co-association matrix (how often two filters share a community)
thresholded at --consensus-threshold and clustered again by Louvain until the runs agree.
Dead filters (constant modes: their correlation is undefined) get label -1 and stay out of the graph.
"""
import argparse
from pathlib import Path

import numpy as np

from common.cli import non_negative_int, positive_float, positive_int
from common.extras import require_extra
from common.result import atomic_savez
from DCGAN import RUNS

DEAD = -1


def dead_filters(modes: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
    """True where a filter's mode is constant (std tiny relative to the largest filter's std)."""
    flat = modes.reshape(len(modes), -1)
    std = np.array([row.std(dtype=np.float64) for row in flat])  # row by row: no full float64 copy
    return std <= rtol * max(std.max(), np.finfo(float).tiny)


def pearson(modes: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """n x n Pearson correlation of the flattened modes, accumulated over element chunks in float64 so a
    float32 (n, 32, 3, 128, 128) array is never copied whole. Rows with zero variance give 0, not NaN."""
    flat = modes.reshape(len(modes), -1)
    n, d = flat.shape
    total = np.zeros(n)
    gram = np.zeros((n, n))
    for start in range(0, d, chunk):
        block = flat[:, start:start + chunk].astype(np.float64)
        total += block.sum(1)
        gram += block @ block.T
    mean = total / d
    cov = gram / d - np.outer(mean, mean)
    var = np.clip(np.diag(cov).copy(), 0, None)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(std, std)
    corr[~np.isfinite(corr)] = 0.0
    corr = np.clip(corr, -1.0, 1.0)
    np.fill_diagonal(corr, np.where(std > 0, 1.0, 0.0))
    return corr


def similarity_graph(corr: np.ndarray, negative: str = "zero") -> np.ndarray:
    """Adjacency weights from correlations: negatives zeroed ("zero") or made positive ("abs"); no self-loops."""
    if negative == "zero":
        w = np.clip(corr, 0.0, None)
    elif negative == "abs":
        w = np.abs(corr)
    else:
        raise ValueError(f"negative must be 'zero' or 'abs', got {negative!r}")
    w = w.copy()
    np.fill_diagonal(w, 0.0)
    return w


def _louvain(weights: np.ndarray, resolution: float, seed: int) -> np.ndarray:
    import networkx as nx
    from community import community_louvain  # python-louvain
    graph = nx.from_numpy_array(weights)
    part = community_louvain.best_partition(graph, weight="weight", resolution=resolution, random_state=seed)
    return np.array([part[i] for i in range(len(weights))])


def canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel 0, 1, ... by decreasing size, ties by first member: the same partition gets the same labels."""
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == g) for g in np.unique(labels[labels != DEAD])]
    groups.sort(key=lambda m: (-len(m), m[0]))
    out = np.full(len(labels), DEAD)
    for k, members in enumerate(groups):
        out[members] = k
    return out


def co_association(partitions: np.ndarray) -> np.ndarray:
    """Fraction of partitions (rows) in which each pair of items shares a community."""
    runs, n = partitions.shape
    a = np.zeros((n, n))
    for part in partitions:
        a += part[:, None] == part[None, :]
    return a / runs


def louvain_consensus(weights: np.ndarray, resolution: float = 1.0, n_runs: int = 100, seed: int = 0,
                      threshold: float = 0.5, max_rounds: int = 10):
    """Consensus Louvain (Lancichinetti & Fortunato 2012): run Louvain n_runs times with seeds seed, seed+1, ...;
    cluster the thresholded co-association matrix again the same way; stop when all runs agree.
    Returns (labels, partitions of the first round, co-association of the first round)."""
    n = len(weights)
    if n == 0:
        return np.array([], int), np.zeros((0, 0), int), np.zeros((0, 0))
    if not np.any(weights > 0):  # no edges: every filter is its own community
        single = np.arange(n)
        return canonical(single), single[None], np.eye(n)
    seeds = seed + np.arange(n_runs)
    partitions = np.array([_louvain(weights, resolution, int(s)) for s in seeds])
    first, first_assoc = partitions, co_association(partitions)
    assoc = first_assoc
    for _ in range(max_rounds):
        if all(np.array_equal(canonical(p), canonical(partitions[0])) for p in partitions[1:]):
            break
        consensus = np.where(assoc >= threshold, assoc, 0.0)
        np.fill_diagonal(consensus, 0.0)
        if not np.any(consensus > 0):
            break
        # on the consensus graph plain modularity (resolution 1): the resolution already shaped the runs
        partitions = np.array([_louvain(consensus, 1.0, int(s)) for s in seeds])
        assoc = co_association(partitions)
    # the runs may still disagree after max_rounds: take the one that agrees most with the others
    agreement = [np.mean([np.array_equal(canonical(p), canonical(q)) for q in partitions]) for p in partitions]
    return canonical(partitions[int(np.argmax(agreement))]), first, first_assoc


def cluster_modes(modes: np.ndarray, resolution: float = 3.0, n_runs: int = 100, seed: int = 0,
                  negative: str = "zero", threshold: float = 0.5):
    """Labels for every filter (DEAD = -1 for constant modes) and the correlation matrix (never NaN)."""
    dead = dead_filters(modes)
    corr = pearson(modes)
    corr[dead, :] = 0.0  # rounding can leave a tiny variance on a constant row: say "no correlation"
    corr[:, dead] = 0.0
    alive = np.flatnonzero(~dead)
    labels = np.full(len(modes), DEAD)
    if len(alive):
        weights = similarity_graph(corr[np.ix_(alive, alive)], negative)
        labels[alive], _, _ = louvain_consensus(weights, resolution, n_runs, seed, threshold)
    return labels, corr, dead


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--msa", default=str(RUNS / "msa.npz"), help="written by DCGAN/compute_msa.py")
    p.add_argument("--out", default=str(RUNS / "clusters.npz"))
    p.add_argument("--resolution", type=positive_float, default=3.0, help="Louvain resolution (the authors: 3)")
    p.add_argument("--n-runs", type=positive_int, default=100, help="seeded Louvain runs for the consensus (the authors: 100)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--negative", default="zero", choices=("zero", "abs"),
                   help="negative correlations: zeroed (the authors' code, default) or absolute values (the paper's text)")
    p.add_argument("--consensus-threshold", type=positive_float, default=0.5,
                   help="co-association below this is dropped before re-clustering")
    p.add_argument("--layers", type=non_negative_int, nargs="*", default=None,
                   help="cluster only filters of these layer numbers (0 = first); default all")
    args = p.parse_args(argv)
    if args.consensus_threshold > 1:
        p.error(f"--consensus-threshold is a fraction of runs, in (0, 1]; got {args.consensus_threshold}")
    require_extra("dcgan")

    import common
    from common.result import load_extra
    if not Path(args.msa).is_file():
        raise SystemExit(f"no MSA result at {args.msa}; run DCGAN/compute_msa.py first")
    result, extra = common.load(args.msa), load_extra(args.msa)
    modes = result.modes
    chosen = np.arange(len(modes))
    if args.layers is not None:
        chosen = np.flatnonzero(np.isin(extra["unit_layer"], args.layers))
        if not len(chosen):
            raise SystemExit(f"no filters in layers {args.layers}; the result has layers "
                             f"{sorted(set(extra['unit_layer'].tolist()))}")
    labels_sub, corr, dead = cluster_modes(modes[chosen], args.resolution, args.n_runs, args.seed, args.negative,
                                           args.consensus_threshold)
    labels = np.full(len(modes), DEAD)  # filters not chosen are left out like dead ones
    labels[chosen] = labels_sub
    atomic_savez(args.out, labels=labels, players=np.array(result.players), chosen=chosen,
                 dead=np.isin(np.arange(len(modes)), chosen[dead]), correlation=corr.astype(np.float32),
                 resolution=args.resolution, n_runs=args.n_runs, seed=args.seed, negative=np.array(args.negative))
    sizes = np.bincount(labels[labels >= 0]) if np.any(labels >= 0) else np.array([], int)
    print(f"{len(sizes)} clusters of {len(chosen)} filters ({int(dead.sum())} dead); sizes {sizes.tolist()}; "
          f"saved {args.out}")
    return args.out


if __name__ == "__main__":
    main()
