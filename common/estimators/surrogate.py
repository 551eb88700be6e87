"""chain-kernel with a learned control variate: a small network fitted to the lesion game stands in for it.

The chain mean and the KernelSHAP regression (chain_kernel.py) are linear in the game's values, so for any cheap
surrogate game g whose Shapley modes phi_g are known

    estimate(v) = phi_g + estimate(v - g)

is as unbiased as estimate(v), and its variance is that of the residual game v - g. A first-order surrogate
removes nothing (its marginal contributions never vary); what does is one that follows the game's saturation and
interactions: here a one-hidden-layer network from the mask of intact units to every output element, squashed
into the range the values were seen in. On a 32-unit MLP's digit accuracies that took the error at equal
evaluations from 1/1.73 of iid orderings' (chain-kernel) to 1/2.27 (benchmarks/bench_estimators.py).

Cross-fitting keeps the estimate unbiased: the groups come in pairs, and each group's residual uses the
surrogate fitted on the other group of its pair (same game values, other orderings). phi_g is cheap to estimate
precisely, as g costs a small matrix product: chain-kernel over up to SHAPLEY_GROUPS orthogonal groups of g
alone. Each group then gives four estimates, the chain mean and the regression with and without the control
variate (scaled by a coefficient from the group's own chain contributions), and the weights of the four that
minimise the summed variance come from the groups' spread, as chain-kernel's weight does: a surrogate that only
adds variance (a nearly additive game) is dropped. A group left without a partner (an odd number of groups in a
run or a Ray shard) enters plain.

Memory: O(n x output). The group waiting for its partner and the group being walked keep the chains of their first
orderings (all of them up to 64 players; about MAX_FIT_ROWS coalitions beyond), for the fit and the coefficient,
on top of the moments of four estimates: 28 arrays of the modes' size. 2.6 MiB for Mixtral's 256 experts x 9
scores. `estimator="auto"` takes it for outputs of up to 1024 elements.
"""
import numpy as np

from .base import chain_coalitions
from .chain_kernel import ChainKernelModes, constrained_fit

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
    would exceed SHAPLEY_ROWS evaluations, two at least), (n, D)."""
    from ..orderings import sample

    group = 2 * (n_players - 1)
    groups = max(2, min(SHAPLEY_GROUPS, SHAPLEY_ROWS // (group * n_players)))
    orderings = sample("orthogonal", n_players, groups * group, seed)
    ends = surrogate(np.stack([np.ones(n_players, bool), np.zeros(n_players, bool)]))
    border = np.concatenate([surrogate(ChainKernelModes.prologue(n_players)), ends[1:]])
    estimator = ChainKernelModes(n_players, ends[0], orderings.group, border=border)
    step = orderings.group * max(1, 2 ** 20 // (orderings.group * n_players ** 2))  # ~a million mask entries a call
    for a in range(0, len(orderings.orderings), step):
        estimator.fold(surrogate(estimator.plan(orderings.orderings[a:a + step], a)))
    return estimator.finish()["modes"]


def _steps(chains, intact, orders):
    """Each unit's chain contributions (k, n units, D) minus its mean over the k orderings."""
    before = np.concatenate([np.broadcast_to(intact[None], (len(chains), 1, chains.shape[2])), chains[:, :-1]], 1)
    steps = np.empty_like(chains)
    np.put_along_axis(steps, orders[:, :, None], before - chains, axis=1)
    return steps - steps.mean(0)


class SurrogateModes(ChainKernelModes):
    name = "surrogate"
    about = ("chain-kernel with a small network fitted to the game as a control variate (cross-fitted, no extra "
             "game evaluations)")
    # ESTIMATES per group: the chain mean and the regression of the game (chain-kernel's two), and the same two
    # with the control variate; their running means and co-moments (Welford), then the pooled regression sums
    ESTIMATES = ("chain", "regression", "chain+surrogate", "regression+surrogate")
    SUMS = ("est_mean", "est_m2", "b_sum", "b_cv", "gram_sum", "groups", "cv_b", "cv_total", "beta_sum", "pending",
            "pending_first", "pending_orders", "pending_chains", "pending_sum", "pending_b", "pending_gram")

    def __init__(self, n_players, intact, group=1, dtype=np.float64, border=None):
        super().__init__(n_players, intact, group, dtype, border)
        n, d = n_players, self.intact.size
        j = len(self.ESTIMATES)
        self.est_mean, self.est_m2 = np.zeros((j, n, d)), np.zeros((j, j, n, d))
        self.b_sum, self.b_cv = np.zeros((n, d)), np.zeros((n, d))
        self.prologue_mask = np.concatenate([self.prologue(n), np.zeros((1, n), bool)])
        self.border_values = np.concatenate([self.alone, self.without, self.empty[None]])
        # offsets of the pooled regression with the control variate: sums over groups of (own border sums, total)
        # minus the game's
        self.cv_b, self.cv_total = np.zeros((n, d)), np.zeros(d)
        self.beta_sum = np.zeros(())  # the control variate's coefficients, summed over groups (for the record)
        # the group waiting for its partner, and the chains of the group being walked
        self.pending, self.pending_first = np.zeros((), np.int64), np.zeros((), np.int64)
        self.pending_orders = np.zeros((group, n), np.int64)
        self.kept = kept_orderings(n, group)  # orderings whose chains a group keeps, for its fit and coefficient
        self.pending_chains = np.zeros((self.kept, n, d))
        self.pending_sum, self.pending_b, self.pending_gram = np.zeros((n, d)), np.zeros((n, d)), np.zeros((n, n))
        self.group_chains = np.zeros((self.kept, n, d))

    def keep_chain(self, position, chain):
        if position < self.kept:
            self.group_chains[position] = chain

    def _finish_group(self, first):
        g = self.group
        this = dict(first=first, orders=self.orderings[first - self.first:first - self.first + g].copy(),
                    chains=self.group_chains.copy(), p=self.group_sum / g, b=self.group_b / g, gram=self.group_gram / g)
        for buffer in (self.group_sum, self.group_b, self.group_gram):
            buffer[...] = 0
        if int(self.pending):
            self._fold_pair(self._take_pending(), this)
        else:
            self._keep_pending(this)

    def _keep_pending(self, group):
        self.pending[...] = 1
        self.pending_first[...] = group["first"]
        self.pending_orders[...], self.pending_chains[...] = group["orders"], group["chains"]
        self.pending_sum[...], self.pending_b[...], self.pending_gram[...] = group["p"], group["b"], group["gram"]

    def _take_pending(self):
        self.pending[...] = 0
        return dict(first=int(self.pending_first), orders=self.pending_orders.copy(), chains=self.pending_chains.copy(),
                    p=self.pending_sum.copy(), b=self.pending_b.copy(), gram=self.pending_gram.copy())

    def _fit(self, group):
        """The surrogate fitted to a group's chains and the border, and its phi_g."""
        n, d = self.n, self.intact.size
        masks = np.concatenate([chain_coalitions(group["orders"][:self.kept]), self.prologue_mask,
                                np.ones((1, n), bool)])
        values = np.concatenate([group["chains"].reshape(-1, d), self.border_values, self.intact.reshape(1, d)])
        seed = SURROGATE_SEED + group["first"] // self.group
        surrogate = fit_surrogate(masks, values, seed)
        return surrogate, surrogate_shapley(surrogate, n, seed)

    def _fold_pair(self, a, b):
        """Each group's residual against the surrogate fitted on the other, plus that surrogate's phi_g."""
        fitted = [self._fit(a), self._fit(b)]
        for group, (surrogate, phi) in ((a, fitted[1]), (b, fitted[0])):
            self._fold_residual(group, surrogate, phi)

    def _fold_residual(self, group, surrogate, phi):
        n, d = self.n, self.intact.size
        orders = group["orders"]
        chains = surrogate(chain_coalitions(orders)).reshape(len(orders), n, d)
        border, intact = surrogate(self.prologue_mask), surrogate(np.ones((1, n), bool))
        # the control variate's coefficient: how the game's chain contributions follow the surrogate's (least
        # squares, about each unit's mean over the group); 1 where the surrogate fits, less where it adds variance
        kept = orders[:self.kept]
        game_steps, surrogate_steps = (_steps(c, i.reshape(1, d), kept) for c, i in
                                       ((group["chains"], self.intact), (chains[:self.kept], intact)))
        beta = float(np.clip(np.sum(game_steps * surrogate_steps) / max(np.sum(surrogate_steps ** 2), 1e-300), 0, 1))
        chains, border, intact, phi = beta * chains, beta * border, beta * intact, beta * phi
        empty = border[2 * n]
        sums, b = np.zeros((n, d)), np.zeros((n, d))
        for order, chain in zip(orders, chains):
            self.add_chain(order, chain, intact, empty, sums, b)
        # the residual game v - g: its chain mean and regression sums are v's minus g's (all linear in the values)
        k = len(orders)
        p, b = group["p"] - sums / k, group["b"] - b / k
        z = self.prologue_mask[:2 * n].astype(np.float64)
        border_b = self.border_b - z.T @ (border[:2 * n] - empty) / (n * (n - 1))
        total = self.total - (intact[0] - empty)
        own = constrained_fit(group["gram"] + self.border_gram, b + border_b, total)
        # The pooled regression needs sums of one game: the residual's plus phi_g's exact sums (fit(A, A phi,
        # sum(phi)) = phi), so that groups with other surrogates, or none, pool consistently.
        self._fold(group, p + phi, own + phi, b + group["gram"] @ phi,
                   border_b + self.border_gram @ phi - self.border_b, total + phi.sum(0) - self.total)
        self.beta_sum += beta

    def _fold(self, group, p_cv, k_cv, b_cv, offset_b, offset_total):
        """Fold one group's four estimates into the moments, and its regression sums into the pooled ones."""
        k = constrained_fit(group["gram"] + self.border_gram, group["b"] + self.border_b, self.total)
        estimates = np.stack([group["p"], k, p_cv, k_cv])
        self.groups += 1
        delta = estimates - self.est_mean
        self.est_mean += delta / int(self.groups)
        self.est_m2 += delta[:, None] * (estimates - self.est_mean)[None]
        self.b_sum += group["b"]
        self.b_cv += b_cv
        self.gram_sum += group["gram"]
        self.cv_b += offset_b
        self.cv_total += offset_total

    def merge(self, other):
        """Chan et al.'s parallel update of the moments; the sums add; two groups still waiting for a partner
        become a pair."""
        a, b = int(self.groups), int(other.groups)
        if a and b:
            delta = other.est_mean - self.est_mean
            self.est_m2 += other.est_m2 + delta[:, None] * delta[None] * (a * b / (a + b))
            self.est_mean += delta * (b / (a + b))
        elif b:
            self.est_mean[...], self.est_m2[...] = other.est_mean, other.est_m2
        for name in ("b_sum", "b_cv", "gram_sum", "groups", "cv_b", "cv_total", "beta_sum"):
            getattr(self, name)[...] += getattr(other, name)
        if int(other.pending):
            if int(self.pending):
                self._fold_pair(self._take_pending(), other._take_pending())
            else:
                self._keep_pending(other._take_pending())

    def weights(self) -> np.ndarray:
        """Non-negative weights of the four estimates, summing to 1, that minimise the summed variance over every
        mode element, from the groups' spread; (0, 0, 1/2, 1/2) until there are two groups."""
        j = len(self.ESTIMATES)
        if int(self.groups) < 2:
            return np.array([0, 0, 0.5, 0.5])
        cov = self.est_m2.sum((2, 3))
        best, best_var = np.array([0, 0, 0.5, 0.5]), np.inf
        for support in range(1, 2 ** j):  # the best non-negative solution lies on some support
            keep = [i for i in range(j) if support >> i & 1]
            sub = cov[np.ix_(keep, keep)]
            try:
                w = np.linalg.solve(sub, np.ones(len(keep)))
            except np.linalg.LinAlgError:
                continue
            if w.sum() <= 0 or (w < 0).any():
                continue
            full = np.zeros(j)
            full[keep] = w / w.sum()
            var = full @ cov @ full
            if var < best_var - 1e-300:
                best, best_var = full, var
        return best

    def _standard_error(self, w, rows):
        m = int(self.groups)
        var = np.einsum("i,j,ij...->...", w, w, self.est_m2[:, :, rows]) / (m - 1)
        return np.sqrt(np.maximum(var, 0) / m)

    def combination(self):
        return self.weights()

    def combined_mean(self, w):
        return np.einsum("i,i...->...", w, self.est_mean)

    def finish(self):
        if int(self.pending):  # no partner: the group enters plain, its control variate zero
            group = self._take_pending()
            k = constrained_fit(group["gram"] + self.border_gram, group["b"] + self.border_b, self.total)
            self._fold(group, group["p"], k, group["b"], 0, 0)
        shape = (self.n, *self.intact.shape)
        m = int(self.groups)
        if m == 0:
            raise ValueError("no sampler group was walked: nothing to estimate")
        w = self.weights()
        a = self.gram_sum / m + self.border_gram
        pooled = constrained_fit(a, self.b_sum / m + self.border_b, self.total)
        pooled_cv = constrained_fit(a, (self.b_cv + self.cv_b) / m + self.border_b, self.total + self.cv_total / m)
        modes = w[0] * self.est_mean[0] + w[1] * pooled + w[2] * self.est_mean[2] + w[3] * pooled_cv
        se = (np.full(shape, np.nan) if m < 2 else np.stack([self._standard_error(w, i) for i in range(self.n)])
              .reshape(shape))
        return dict(modes=modes.reshape(shape).astype(self.dtype), se=se.astype(self.dtype),
                    weight_of_regression=float(w[1] + w[3]), weight_of_surrogate=float(w[2] + w[3]),
                    surrogate_coefficient=float(self.beta_sum) / m, se_dof=m - 1)


def kept_orderings(n_players: int, group: int) -> int:
    """How many of a group's orderings keep their chains: all of them up to MAX_FIT_ROWS coalitions."""
    return min(group, max(2, MAX_FIT_ROWS // n_players))


def state_bytes(n_players: int, output_size: int, group: int) -> int:
    """About how much memory the estimator's arrays take: 28 float64 arrays of the modes' size (the four estimates'
    moments, the sums), two groups' kept chains (at most MAX_FIT_ROWS x output each) and three n x n matrices."""
    kept = kept_orderings(n_players, group)
    return 8 * (n_players * output_size * (28 + 2 * kept) + 3 * n_players * n_players)
