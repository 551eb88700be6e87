"""The MLP lesion game: per-digit accuracy (recall) of the network with some hidden units lesioned."""
import numpy as np
import torch

from common.lesion import LesionGame, find_units


METRICS = ("recall", "precision")


def per_digit_accuracy(logits: torch.Tensor, labels: torch.Tensor, n_classes: int = 10,
                       metric: str = "recall") -> torch.Tensor:
    """logits (C, B, K), labels (B,) -> (C, K): for each digit, the fraction of its images classified correctly.

    This is recall. metric="precision" reproduces the authors' bug (their metric's arguments were swapped):
    of the images predicted as each digit, the fraction that are that digit (0 when none is).
    """
    onehot = torch.nn.functional.one_hot(labels, n_classes).to(torch.float64)  # (B, K)
    counts = onehot.sum(0)
    if (counts == 0).any():
        raise ValueError(f"digits {(counts == 0).nonzero().flatten().tolist()} have no test images")
    predicted = logits.argmax(-1)  # (C, B)
    hits = (predicted == labels).to(torch.float64) @ onehot  # (C, K)
    if metric == "recall":
        return hits / counts
    if metric != "precision":
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    n_predicted = torch.nn.functional.one_hot(predicted, n_classes).sum(1).to(torch.float64)
    return torch.where(n_predicted > 0, hits / n_predicted.clamp(min=1), 0.0)


class MLPGame:
    """game(coalitions (C, N) bool) -> per-digit accuracy (C, 10) of the MLP with hidden units lesioned.

    The network is linear in the lesion mask after the hidden layer: logits(mask) = b2 + sum over intact
    units u of H[:, u] W2[:, u]. The engine asks for chains of coalitions that differ by one unit per row,
    so each row's logits are the previous row's minus (or plus) one precomputed rank-1 term; a row that
    changes several units is computed directly. Everything is float64, so the running sums match a direct
    forward pass far below the size of any argmax margin.
    """

    MAX_STEPS = 8  # rows this many units from the previous one are updated, not recomputed
    SECONDS_PER_IMAGE = 1e-7  # about what a coalition costs per test image (measured 3-9e-8 on 2 CPU cores)

    def __init__(self, model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024,
                 metric: str = "recall"):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
        self.metric = metric
        # declared, not timed: estimator="auto" weighs it against the surrogate's fits (common.estimators)
        self.cost_per_coalition = self.SECONDS_PER_IMAGE * len(labels)
        order = torch.argsort(labels, stable=True)  # images grouped by digit: per-digit scores are slices
        images, labels = images[order].double(), labels[order]
        w1, b1 = model.fc1.weight.detach().double(), model.fc1.bias.detach().double()
        w2, b2 = model.fc2.weight.detach().double(), model.fc2.bias.detach().double()
        with torch.no_grad():
            hidden = model.act(images.flatten(1) @ w1.T + b1)  # (B, N), computed once
        n_out = w2.shape[0]
        # rank1[u] = unit u's whole contribution to the logits, class-major: (N, n_out * B)
        self.rank1 = (w2.T[:, :, None] * hidden.T[:, None, :]).reshape(hidden.shape[1], -1).numpy().copy()
        self.bias = b2[:, None].expand(n_out, hidden.shape[0]).reshape(-1).numpy().copy()
        counts = torch.bincount(labels, minlength=n_out)
        if (counts == 0).any():
            raise ValueError(f"digits {(counts == 0).nonzero().flatten().tolist()} have no test images")
        self.bounds = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]).tolist()
        self.counts = counts.numpy().astype(np.float64)
        self.n_images, self.n_out, self.batch_size = hidden.shape[0], n_out, batch_size
        self._buffer = None

    def logits(self, coalitions) -> np.ndarray:
        """(C, n_out, B) logits, images sorted by digit."""
        mask = np.asarray(coalitions, dtype=np.float64)
        change = np.diff(mask, axis=0, prepend=0.0)
        n_changed = np.count_nonzero(change, axis=1)
        unit = np.abs(change).argmax(1)
        if self._buffer is None or len(self._buffer) < len(mask):  # reused: fresh 80 MB would page-fault per call
            self._buffer = np.empty((len(mask), self.rank1.shape[1]))
        out = self._buffer[:len(mask)]
        direct = np.flatnonzero(n_changed > self.MAX_STEPS)
        direct = np.union1d(direct, [0]) if len(mask) else direct
        if len(direct):  # one matrix product for every row computed directly: it reads rank1 once, not per row
            out[direct] = mask[direct] @ self.rank1 + self.bias
        for r in np.setdiff1d(np.arange(1, len(mask)), direct):  # in order: each from the row before
            if n_changed[r] == 1:  # one unit more or less than the row before
                step = np.add if change[r, unit[r]] > 0 else np.subtract
                step(out[r - 1], self.rank1[unit[r]], out=out[r])
            else:  # a few units apart (interaction rows): a few steps
                changed = np.flatnonzero(change[r])
                np.add(out[r - 1], change[r, changed] @ self.rank1[changed], out=out[r])
        return out.reshape(len(mask), self.n_out, self.n_images)

    def __call__(self, coalitions) -> np.ndarray:
        logits = self.logits(coalitions)
        hits = []
        for digit in range(self.n_out):  # argmax == digit, ties going to the lower class as torch.argmax does
            lo, hi = self.bounds[digit], self.bounds[digit + 1]
            block = logits[:, :, lo:hi]
            true = block[:, digit:digit + 1]
            hits.append(((true > block[:, :digit]).all(1) & (true >= block[:, digit + 1:]).all(1)).sum(1))
        hits = np.stack(hits, 1).astype(np.float64)
        if self.metric == "recall":
            return hits / self.counts
        predicted = logits.argmax(1)  # (C, B)
        n_predicted = np.stack([(predicted == d).sum(1) for d in range(self.n_out)], 1)
        return np.divide(hits, n_predicted, out=np.zeros_like(hits), where=n_predicted > 0)


def generic_game(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
                 metric: str = "recall") -> LesionGame:
    """The same game through forward hooks on any model: one full forward pass per coalition (batched)."""
    units = find_units(model, ["act"], images[:1])
    return LesionGame(model.eval(), units, images, lambda out: per_digit_accuracy(out, labels, metric=metric),
                      batch_size=batch_size)
