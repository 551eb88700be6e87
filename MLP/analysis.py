"""The analyses of the paper's section 2.1 as plain functions, shared by the figures, notebook and claims."""
from pathlib import Path

import numpy as np
import pandas as pd

from common import load
from common.result import load_extra

CHANCE = 0.1


def distributed_index(contributions: np.ndarray) -> np.ndarray:
    """Index of distributed computation D over units (axis 0): s = c^2, p = s / sum s, D = -sum p ln p / ln N.

    1 when every unit contributes equally, 0 when one unit does everything (and 0 when all are zero).
    Works on (N,) or column-wise on (N, K).
    """
    c = np.asarray(contributions, dtype=np.float64)
    n = c.shape[0]
    s = c ** 2
    total = s.sum(0)
    p = np.divide(s, total, out=np.zeros_like(s), where=total > 0)
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0), axis=0)
    return np.where(total > 0, entropy / np.log(n), 0.0)


def mean_abs_weight(w_in: np.ndarray, w_out: np.ndarray) -> np.ndarray:
    """Per hidden unit: (mean |incoming weight| + mean |outgoing weight|) / 2, biases excluded.

    w_in: fc1.weight (N, 784); w_out: fc2.weight (10, N)."""
    return (np.abs(w_in).mean(1) + np.abs(w_out).mean(0)) / 2


def weight_contribution_correlation(weights: np.ndarray, modes: np.ndarray) -> float:
    """Pearson correlation between units' mean absolute weights and their digit-averaged contributions."""
    c = modes.mean(1)
    if np.std(weights) == 0 or np.std(c) == 0:
        return float("nan")
    return float(np.corrcoef(weights, c)[0, 1])


def digit_correlation(modes: np.ndarray) -> np.ndarray:
    """10 x 10 Pearson correlation between digits' contribution vectors over units (NaN-free: 0 if constant)."""
    c = modes - modes.mean(0)
    norm = np.sqrt((c ** 2).sum(0))
    norm = np.where(norm > 0, norm, np.inf)
    corr = (c / norm).T @ (c / norm)
    np.fill_diagonal(corr, 1.0)
    return corr


def top_k(n_hidden: int) -> int:
    """How many top units the lesion analysis removes: 40 of 200 as the paper, a fifth in general."""
    return max(1, n_hidden // 5)


def load_results(folder) -> tuple[pd.DataFrame, dict]:
    """One row per model .npz in `folder`, and {model name: ShapleyResult}."""
    rows, results = [], {}
    files = sorted(Path(folder).glob("mlp_*.npz"))
    if not files:
        raise FileNotFoundError(f"no mlp_*.npz results in {Path(folder).resolve()}; run compute_msa.py first")
    for path in files:
        result, extra = load(path), load_extra(path)
        config = result.metadata["config"]
        m = result.modes
        results[path.stem] = result
        digit_d = distributed_index(m)
        rows.append(dict(
            name=path.stem, N=config["n_hidden"], reg=config["reg"], trial=config["trial"],
            accuracy=float(extra["intact_accuracy"]), D=float(distributed_index(m.mean(1))),
            **{f"D_digit{d}": float(digit_d[d]) for d in range(m.shape[1])},
            weight_corr=weight_contribution_correlation(extra["mean_abs_weight"], m),
            acc_without_top=float(extra["accuracy_without_top"]),
            acc_without_bottom=float(extra["accuracy_without_bottom"]), k_top=int(extra["k_top"]),
            max_se=float(result.se.max()), orderings=result.orderings, evaluations=result.metadata.get("evaluations")))
    return pd.DataFrame(rows), results


def claims(df: pd.DataFrame, results: dict) -> pd.DataFrame:
    """The paper's section 2.1 claims, each with the number measured here and whether it holds."""
    out = []

    def claim(text, measured, holds):
        out.append(dict(claim=text, measured=measured, verdict="holds" if holds else "does not hold"))

    regs = [r for r in ("none", "l1", "l2") if r in set(df.reg)]
    rho = {r: df[df.reg == r].N.corr(df[df.reg == r].D, method="spearman") for r in regs}
    claim("D falls as N grows (Spearman rho of D vs N < 0 for every regularisation)",
          ", ".join(f"{r}: {v:+.2f}" for r, v in rho.items()), all(v < 0 for v in rho.values()))

    mean_d = df.groupby("reg").D.mean()
    if {"none", "l1", "l2"} <= set(regs):
        claim("D is higher without regularisation than with L2 and with L1 (mean over all N)",
              ", ".join(f"{r}: {mean_d[r]:.3f}" for r in regs), mean_d["none"] > max(mean_d["l1"], mean_d["l2"]))

    big = df[df.N == df.N.max()].groupby("reg")[["accuracy", "acc_without_top", "acc_without_bottom", "k_top"]].mean()
    n_max, k = int(df.N.max()), int(big.k_top.iloc[0])
    if {"none", "l1", "l2"} <= set(big.index):
        reg_top = max(big.acc_without_top["l1"], big.acc_without_top["l2"])
        claim(f"Removing the top {k} of {n_max} units drops L1/L2 nets near chance (<= 0.25) but the "
              "unregularised one much less (>= 0.2 higher)",
              ", ".join(f"{r}: {big.acc_without_top[r]:.3f}" for r in regs),
              reg_top <= 0.25 and big.acc_without_top["none"] >= reg_top + 0.2)
        drop = big.accuracy - big.acc_without_bottom
        claim(f"Removing the bottom {n_max - k} of {n_max} hardly matters for regularised nets (drop <= 0.05)",
              "accuracy drop " + ", ".join(f"{r}: {drop[r]:.3f}" for r in regs), max(drop["l1"], drop["l2"]) <= 0.05)

    if "none" in regs:
        none = df[df.reg == "none"]
        near50 = none[(none.N - 50).abs() == (none.N - 50).abs().min()]
        r50, rho_w = near50.weight_corr.mean(), none.N.corr(none.weight_corr, method="spearman")
        claim(f"Weight/contribution correlation is near 0 (|r| < 0.3) for unregularised nets of "
              f"~50 units (N={int(near50.N.iloc[0])}) and rises with N (Spearman > 0)",
              f"r = {r50:+.2f}, rho(N, r) = {rho_w:+.2f}", abs(r50) < 0.3 and rho_w > 0)
    if "l1" in regs:
        r_l1 = df[df.reg == "l1"].weight_corr.mean()
        claim("Weight/contribution correlation is high under L1 (mean r > 0.5)", f"r = {r_l1:+.2f}", r_l1 > 0.5)

    source = df[df.reg == "l2"] if "l2" in regs else df
    digit_d = source[[f"D_digit{d}" for d in range(10)]].mean().to_numpy()
    claim("Digit 1 has the lowest D and digit 9 the highest (L2 nets, mean over N)",
          f"lowest: {int(digit_d.argmin())} ({digit_d.min():.3f}), highest: {int(digit_d.argmax())} "
          f"({digit_d.max():.3f})", digit_d.argmin() == 1 and digit_d.argmax() == 9)

    n_f = int(df.N.iloc[(df.N - 50).abs().argmin()])
    corr = np.mean([digit_correlation(results[name].modes) for name in df[df.N == n_f].name], axis=0)
    pairs = sorted(((corr[i, j], i, j) for i in range(10) for j in range(i + 1, 10)), reverse=True)
    rank = {(i, j): r + 1 for r, (_, i, j) in enumerate(pairs)}
    claim(f"The most correlated digit pairs are visually similar: 4-9 and 3-8 among the top 5 of 45 (N={n_f})",
          f"top 3: {', '.join(f'{i}-{j} ({c:.2f})' for c, i, j in pairs[:3])}; rank of 4-9: {rank[(4, 9)]}, "
          f"3-8: {rank[(3, 8)]}", rank[(4, 9)] <= 5 and rank[(3, 8)] <= 5)
    return pd.DataFrame(out)


def format_claims(table: pd.DataFrame) -> str:
    lines = [f"{'verdict':<14} claim  [measured]"]
    for row in table.itertuples():
        lines.append(f"{row.verdict:<14} {row.claim}  [{row.measured}]")
    return "\n".join(lines)
