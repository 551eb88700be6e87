"""The surrogate estimator's fitter: a small network fitted to a lesion game's values, and its Shapley modes phi_g.

g(mask) = lo + (hi - lo) sigmoid(V tanh(U mask + c) + d), from the mask of intact units to every output element,
squashed into the range the values were seen in: it follows an accuracy's saturation (high with many units,
collapsing with few), which first-order surrogates cannot. Fitted by least squares (L-BFGS). phi_g is cheap to
estimate precisely, since g costs a small matrix product: chain-kernel over many orthogonal groups of g alone.
"""
import numpy as np

SHAPLEY_GROUPS = 16      # orthogonal groups of the surrogate's own chains per surrogate (its phi_g), at most
SHAPLEY_ROWS = 2 ** 19   # and about this many surrogate evaluations (fewer groups from 64 players on)
FIT_ITERATIONS = 300     # L-BFGS iterations of each fit
MAX_FIT_ROWS = 4096      # chain coalitions a fit sees at most: whole chains of a group's first orderings (the
                         # group's all up to 64 players); a fit takes seconds, and the memory stays O(n x output)
SURROGATE_SEED = 7919    # the surrogate's initial weights and phi_g's orderings derive from this and the group


def hidden_units(n_players: int) -> int:
    """The surrogate's width: 32 for small games, 64 from 32 players (measured: 64 beat 32 on a 32-unit MLP)."""
    return 32 if n_players < 32 else 64


def fit_surrogate(coalitions: np.ndarray, values: np.ndarray, seed: int):
    """A network g(mask) = lo + (hi - lo) sigmoid(V tanh(U mask + c) + d) fitted by least squares to values (C, D)
    of coalitions (C, n); lo, hi per output element: the values' range widened by 5%. Returns g: (C, n) bool ->
    (C, D) float64. Deterministic for given data and seed."""
    import torch

    x = torch.as_tensor(coalitions, dtype=torch.float64)
    y = torch.as_tensor(values, dtype=torch.float64)
    n, d, h = x.shape[1], y.shape[1], hidden_units(x.shape[1])
    low, high = y.min(0).values, y.max(0).values
    margin = 0.05 * (high - low)
    low, span = low - margin, (high - low) + 2 * margin
    span = torch.where(span > 0, span, torch.ones_like(span))  # a constant element: any span fits it
    target = (y - low) / span  # in [0.05, 0.95] / 1.1: every element weighs alike, whatever its scale
    generator = torch.Generator().manual_seed(int(seed))
    params = [(0.3 * torch.randn(n, h, generator=generator, dtype=torch.float64)).requires_grad_(),
              torch.zeros(h, dtype=torch.float64, requires_grad=True),
              (0.3 * torch.randn(h, d, generator=generator, dtype=torch.float64)).requires_grad_(),
              torch.zeros(d, dtype=torch.float64, requires_grad=True)]

    def squashed(mask):
        return torch.sigmoid(torch.tanh(mask @ params[0] + params[1]) @ params[2] + params[3])

    def forward(mask):
        return low + span * squashed(mask)

    optimiser = torch.optim.LBFGS(params, max_iter=FIT_ITERATIONS, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        value = ((squashed(x) - target) ** 2).mean()
        value.backward()
        return value

    optimiser.step(loss)

    def surrogate(mask):
        with torch.no_grad():
            return forward(torch.as_tensor(np.asarray(mask), dtype=torch.float64)).numpy()
    return surrogate


def surrogate_shapley(surrogate, n_players: int, seed: int) -> np.ndarray:
    """phi_g: chain-kernel on the surrogate over SHAPLEY_GROUPS groups of orthogonal orderings (fewer where they
    would exceed SHAPLEY_ROWS evaluations, two at least), (n, D). The surrogate is cheap: no runner, no cache."""
    from ..orderings import sample
    from .chain_walk import ChainWalk, KernelEstimate, prologue

    n = n_players
    group = 2 * (n - 1)
    groups = max(2, min(SHAPLEY_GROUPS, SHAPLEY_ROWS // (group * n)))
    orderings = sample("orthogonal", n, groups * group, seed).orderings
    ends = surrogate(np.stack([np.ones(n, bool), np.zeros(n, bool)]))
    walk = ChainWalk(n, ends[0], group, np.concatenate([surrogate(prologue(n)), ends[1:]]), lambda g: kernel.add(g))
    kernel = KernelEstimate(walk)
    step = group * max(1, 2 ** 20 // (group * n ** 2))  # ~a million mask entries a call
    for a in range(0, len(orderings), step):
        walk.fold(surrogate(walk.plan(orderings[a:a + step], a)))
    return kernel.finish((n, ends.shape[1]), np.float64)["modes"]
