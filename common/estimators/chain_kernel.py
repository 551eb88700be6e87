"""Shapley modes from two estimators on the same lesion chains: the permutation mean and a KernelSHAP regression.

The chain of an ordering visits one coalition of every size, uniform among those of its size, so its coalitions
are exactly the samples that KernelSHAP with uniform sizes (leverage-score sampling, Musco & Witter 2024) asks
for; with orderings that come with their reverses (orthogonal, antithetic) they come in complementary pairs too.
The Shapley-kernel regression of the values on which units are intact (constrained to sum to v(N) - v(empty))
estimates the modes from the values' levels, the chain mean from their differences. Their errors are only weakly
correlated (0.1-0.3 on the benchmark's games), so a weighted average beats both; the weight is the one that
minimises the variance summed over every mode element, estimated from the spread across sampler groups (about
1/2 on 12-unit games, 1/4 on a 32-unit MLP, where the regression alone is no better than iid).

Two savings on the chains: the 2n + 1 coalitions of size 0, 1 and n - 1 are evaluated once, up front (the
`prologue`), and never again; a chain then costs n - 3 evaluations instead of n (a saving that matters for small
n only). In the regression these sizes enter with their exact weight, not a sampled one.

The modes: the pooled chain mean and the pooled regression (consistent: its bias shrinks with the number of
orderings), weighted. Their error bars: the spread, across sampler groups, of the same weighted average computed
group by group (each group's own regression), whose variance equals the pooled estimator's up to terms that
shrink with the group's size. State: nine O(n x output) float64 arrays and two n x n matrices.
"""
import numpy as np

from .base import Estimator, chain_coalitions

MIN_PLAYERS = 4  # below this every coalition is in the prologue: enumerate instead (common.exact)


def unfit(n_players: int, group: int, name: str = "chain-kernel") -> str | None:
    """Why the estimator (chain-kernel, or `name`, built on it) cannot run on n players in sampler groups of `group`
    orderings; None where it can."""
    if n_players < MIN_PLAYERS:
        return (f"the {name} estimator needs at least {MIN_PLAYERS} players, got {n_players}: use "
                "estimator='chain', or common.exact.exact_shapley_modes")
    # Each group's own regression gives the weight and the error bars, so a group must hold many more coalitions
    # than there are players: with antithetic pairs of 200-unit chains, each pair's regression leaned on the
    # size-1 and n-1 coalitions (the same in every pair), its spread understated the pooled regression's, and the
    # estimate came out 4.5x worse than the chain mean's (measured on a 200-unit MLP).
    if group < n_players:
        return (f"the {name} estimator needs sampler groups of at least as many orderings as players "
                f"(orthogonal, latin, latin-antithetic), got groups of {group} for {n_players} players")
    return None


def prologue(n_players: int) -> np.ndarray:
    """The (2n, n) coalitions evaluated once, before the walk: each unit alone, then each unit lesioned alone. With
    the fully lesioned network's value appended, their values are the estimator's `border`."""
    one = np.eye(n_players, dtype=bool)
    return np.concatenate([one, ~one])


def constrained_fit(a: np.ndarray, b: np.ndarray, total: np.ndarray) -> np.ndarray:
    """argmin beta'a beta - 2 beta'b subject to sum(beta) = total, for every column of b (n, D); total (D,)."""
    solved = np.linalg.solve(a, np.concatenate([b, np.ones((len(a), 1))], 1))
    fit, ones = solved[:, :-1], solved[:, -1]
    return fit - ones[:, None] * ((fit.sum(0) - total) / ones.sum())[None]


class ChainKernelModes(Estimator):
    name = "chain-kernel"
    about = ("the chain mean averaged with a KernelSHAP regression on the same chains, which skip the coalitions of "
             "size 0, 1 and n-1 (evaluated once): n-3 evaluations an ordering; needs sampler groups of at least n "
             "orderings (orthogonal, latin, latin-antithetic)")
    SUMS = ("mean_p", "mean_k", "m2_p", "m2_k", "c_pk", "b_sum", "gram_sum", "groups")

    def __init__(self, n_players, intact, group=1, dtype=np.float64, border=None):
        why = unfit(n_players, group, self.name)
        if why:
            raise ValueError(why)
        super().__init__(n_players, intact, group, dtype)
        n, d = n_players, self.intact.size
        if border is None or np.shape(border) != (2 * n + 1, *self.intact.shape):
            raise ValueError(f"border: the values of prologue({n}) and of no unit intact, shape "
                             f"{(2 * n + 1, *self.intact.shape)}")
        border = np.asarray(border, np.float64).reshape(2 * n + 1, d)
        self.rows_per_ordering = n - 3
        self.alone, self.without, self.empty = border[:n], border[n:2 * n], border[2 * n]
        self.total = self.intact.reshape(d).astype(np.float64) - self.empty
        # Shapley kernel over sizes, per coalition: 1/(s (n - s)) for a sampled one (each chain holds one per
        # size), 1/(n (n - 1)) for each of the n coalitions of size 1 and n - 1 (all of them, so each counts 1/n)
        sizes = n - 1 - np.arange(1, n - 2)              # sizes at chain steps 1 .. n - 3
        self.weight = 1.0 / (sizes * (n - sizes))
        cumulative = np.concatenate([[0.0], np.cumsum(self.weight)])
        ranks = np.arange(n)
        self.rank_gram = cumulative[np.clip(np.minimum.outer(ranks, ranks) - 1, 0, n - 3)]  # w over shared rows
        z = prologue(n).astype(np.float64)
        self.border_gram = z.T @ z / (n * (n - 1))
        self.border_b = z.T @ (border[:2 * n] - self.empty) / (n * (n - 1))
        self.chain = np.empty((n, d))            # the values of the ordering being folded, step by step
        self.group_sum = np.zeros((n, d))        # the group's chain contributions so far
        self.group_b = np.zeros((n, d))          # and its regression sums
        self.group_gram = np.zeros((n, n))
        # over finished groups: running means of the chain mean p and the group's own regression k, their
        # centred second moments and co-moment (Welford; for the weight and the error bars), and the pooled
        # regression sums
        for name in self.SUMS[:6]:
            setattr(self, name, np.zeros((n, d)))
        self.gram_sum = np.zeros((n, n))
        self.groups = np.zeros((), np.int64)

    @classmethod
    def refuses(cls, n_players, group):
        """Why this estimator cannot run here (`unfit`, named after it); None where it can."""
        return unfit(n_players, group, cls.name)

    @staticmethod
    def prologue(n_players):
        return prologue(n_players)

    def plan(self, orderings, first):
        self.orderings, self.first, self.row = orderings, first, 0
        n = self.n
        return chain_coalitions(orderings).reshape(len(orderings), n, n)[:, 1:n - 2].reshape(-1, n)

    def fold(self, values):
        values = np.asarray(values).reshape(len(values), -1)
        rows = self.rows_per_ordering
        done = 0
        while done < len(values):
            which, step = divmod(self.row, rows)
            take = min(len(values) - done, rows - step)
            self.chain[1 + step:1 + step + take] = values[done:done + take]
            done += take
            self.row += take
            if step + take == rows:
                self._finish_ordering(which)

    def _finish_ordering(self, j):
        n, order = self.n, self.orderings[j]
        chain = self.chain
        chain[0], chain[n - 2], chain[n - 1] = self.without[order[0]], self.alone[order[n - 1]], self.empty
        self.keep_chain((self.first + j) % self.group, chain)
        self.add_chain(order, chain, self.intact.reshape(1, -1), self.empty, self.group_sum, self.group_b)
        self.group_gram[np.ix_(order, order)] += self.rank_gram
        if (self.first + j) % self.group == self.group - 1:
            self._finish_group(self.first + j + 1 - self.group)

    def keep_chain(self, position, chain):
        """A hook for subclasses that need the group's chains (n values each, the border filled in)."""

    def add_chain(self, order, chain, intact, empty, sums, b):
        """Add one ordering's chain (its n values, step t lesioning order[t]; `intact` (1, D) before it) to the
        chain-mean sums and the regression sums b."""
        n = self.n
        before = np.concatenate([intact, chain[:-1]])
        sums[order] += before - chain                  # step t lesions order[t]
        # regression sums: the unit ranked r is intact in chain steps 1 .. r - 1
        weighted = np.cumsum(self.weight[:, None] * (chain[1:n - 2] - empty), 0)
        b[order[2:]] += weighted[np.minimum(np.arange(1, n - 1), n - 3) - 1]

    def _finish_group(self, first):
        g = self.group
        p, b, gram = self.group_sum / g, self.group_b / g, self.group_gram / g
        self.fold_group(p, constrained_fit(gram + self.border_gram, b + self.border_b, self.total), b, gram)
        for buffer in (self.group_sum, self.group_b, self.group_gram):
            buffer[...] = 0

    def fold_group(self, p, k, b, gram):
        """Fold one group's chain mean p and own regression k into the running moments, and its regression sums
        (b, gram) into the pooled ones."""
        self.groups += 1
        m = int(self.groups)
        dp, dk = p - self.mean_p, k - self.mean_k
        self.mean_p += dp / m
        self.mean_k += dk / m
        self.m2_p += dp * (p - self.mean_p)
        self.m2_k += dk * (k - self.mean_k)
        self.c_pk += dp * (k - self.mean_k)
        self.b_sum += b
        self.gram_sum += gram

    def state(self):
        return {name: getattr(self, name) for name in self.SUMS}

    def load_state(self, arrays):
        for name in self.SUMS:
            mine = getattr(self, name)
            if np.shape(arrays[name]) != mine.shape:
                raise ValueError(f"saved {name} has shape {np.shape(arrays[name])}, expected {mine.shape}")
            mine[...] = arrays[name]

    def merge(self, other):
        """Chan et al.'s parallel update of the moments; the pooled sums add."""
        a, b = int(self.groups), int(other.groups)
        if b and a:
            dp, dk = other.mean_p - self.mean_p, other.mean_k - self.mean_k
            self.m2_p += other.m2_p + dp * dp * (a * b / (a + b))
            self.m2_k += other.m2_k + dk * dk * (a * b / (a + b))
            self.c_pk += other.c_pk + dp * dk * (a * b / (a + b))
            self.mean_p += dp * (b / (a + b))
            self.mean_k += dk * (b / (a + b))
        elif b:
            for name in ("mean_p", "mean_k", "m2_p", "m2_k", "c_pk"):
                getattr(self, name)[...] = getattr(other, name)
        for name in ("b_sum", "gram_sum", "groups"):
            getattr(self, name)[...] += getattr(other, name)

    def weight_of_regression(self) -> float:
        """The weight a of the regression in (1 - a) chain mean + a regression that minimises the summed
        variance over every mode element, from the groups' spread; 1/2 until there are two groups or when
        neither varies. One number for all elements, so that it is estimated from all of them."""
        if int(self.groups) < 2:
            return 0.5
        var_p, var_k, cov = self.m2_p.sum(), self.m2_k.sum(), self.c_pk.sum()
        spread = var_p + var_k - 2 * cov
        return 0.5 if spread <= 1e-300 else float(np.clip((var_p - cov) / spread, 0.0, 1.0))

    def _standard_error(self, a, rows):
        """Standard error of the combined estimate for players `rows`, from the groups' spread."""
        m = int(self.groups)
        var = ((1 - a) ** 2 * self.m2_p[rows] + a * a * self.m2_k[rows] + 2 * a * (1 - a) * self.c_pk[rows]) / (m - 1)
        return np.sqrt(np.maximum(var, 0) / m)

    def combination(self):
        """How the group estimates are combined: the weight of the regression."""
        return self.weight_of_regression()

    def combined_mean(self, a):
        """The groups' mean of the combined estimate (for a relative target)."""
        return (1 - a) * self.mean_p + a * self.mean_k

    def max_se(self, relative=False):
        m = int(self.groups)
        if m < 2:
            return float("inf")
        a = self.combination()
        se = max(float(self._standard_error(a, i).max()) for i in range(self.n))  # one player at a time
        if not relative:
            return se
        estimate = self.combined_mean(a)
        scale = float(estimate.max() - estimate.min())
        return se / scale if scale > 0 else float("inf")

    def pooled_regression(self):
        """The regression on every group's chains at once (its bias shrinks as groups are added)."""
        m = int(self.groups)
        return constrained_fit(self.gram_sum / m + self.border_gram, self.b_sum / m + self.border_b, self.total)

    def finish(self):
        shape = (self.n, *self.intact.shape)
        m = int(self.groups)
        if m == 0:
            raise ValueError("no sampler group was walked: nothing to estimate")
        a = self.weight_of_regression()
        modes = ((1 - a) * self.mean_p + a * self.pooled_regression()).reshape(shape).astype(self.dtype)
        se = (np.full(shape, np.nan) if m < 2 else np.stack([self._standard_error(a, i) for i in range(self.n)])
              .reshape(shape)).astype(self.dtype)
        return dict(modes=modes, se=se, weight_of_regression=a, se_dof=m - 1)


def state_bytes(n_players: int, output_size: int, itemsize: int = 8) -> int:
    """About how much memory the estimator's arrays take (ChainMeanModes': 2 or 3 x n x output x itemsize)."""
    return n_players * output_size * (9 * 8 + itemsize) + 3 * n_players * n_players * 8
