"""Monte Carlo Shapley modes of lesion games: `shapley_modes`, a thin composition of the engine's parts.

    orderings (common/orderings.py)   which orderings of the players to walk, in independent groups
    estimator (common/estimators/)    which coalitions each ordering needs; folds the values into its state
    walk      (common/walk.py)        how orderings are cut into blocks and game calls, the same for every runner
    runner    (common/runners/)       local (batched, checkpoints, signals), Ray (shards), or msapy (the oracle)

A game is a callable on a boolean coalition matrix: game(coalitions) with coalitions of shape (C, n),
True = player intact, returns an array (numpy or torch) of shape (C, *output_shape).
"""
import time
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import Checkpointer
from .estimators import FIRST_ORDER, ShapleyModes, first_order_estimator
from .game import CheckedGame, batch_size_for, player_labels
from .orderings import auto_sampler, sample
from .result import ShapleyResult
from .runners import Precision, run_local, run_msapy, run_ray

ENGINES = ("batched", "msapy")
BACKENDS = ("local", "ray")
DEFAULT_CHECKPOINT_EVERY = 60.0


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_options(*, n_permutations, seed, engine, backend, dtype, checkpoint, checkpoint_every, resume, fingerprint,
                  n_workers, address, progress, estimator, target_se=None, target_relative=False) -> dict:
    """ValueError for any option that is out of range or contradicts another; returns the normalised values."""
    n_permutations = _positive_int("n_permutations", n_permutations)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINES}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from error
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64 (the accumulators' precision), got {dtype}")
    if not isinstance(progress, (bool, np.bool_)):
        raise ValueError(f"progress must be True or False, got {progress!r}")
    if checkpoint is None:
        for name, value in (("checkpoint_every", checkpoint_every), ("fingerprint", fingerprint)):
            if value is not None:
                raise ValueError(f"{name} is given but checkpoint is not: it only applies to checkpoints")
        if resume:
            raise ValueError("resume=True needs a checkpoint to resume from")
    elif checkpoint_every is not None and (isinstance(checkpoint_every, bool) or
                                           not isinstance(checkpoint_every, (int, float, np.integer, np.floating))
                                           or not checkpoint_every >= 0):
        raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got {checkpoint_every!r}")
    if backend == "local" and (n_workers is not None or address is not None):
        raise ValueError("n_workers and address are options of backend='ray'")
    if backend == "ray":
        if checkpoint is not None:
            raise ValueError("checkpoints are written by the local backend; with backend='ray', failed shards are "
                             "run again instead")
        if n_workers is not None:
            _positive_int("n_workers", n_workers)
    if target_se is not None:
        if isinstance(target_se, bool) or not isinstance(target_se, (int, float, np.integer, np.floating)) \
                or not 0 < target_se < float("inf"):
            raise ValueError(f"target_se must be a positive number, got {target_se!r}")
        if backend == "ray":
            raise ValueError("target_se stops a local walk at a block boundary; with backend='ray' the shards run "
                             "to the end: give n_permutations instead")
    elif target_relative:
        raise ValueError("target_relative=True needs a target_se")
    if isinstance(estimator, str) and estimator not in ("auto", *FIRST_ORDER):
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {('auto', *FIRST_ORDER)}")
    if engine == "msapy":
        chosen = estimator if isinstance(estimator, str) else estimator.name
        refused = [name for name, given in (("checkpoint", checkpoint is not None), ("backend='ray'", backend == "ray"),
                                            (f"the {chosen} estimator", chosen not in ("auto", ShapleyModes.name)),
                                            ("target_se (msapy keeps no spread)", target_se is not None))
                   if given]
        if refused:
            raise ValueError(f"engine='msapy' runs msapy's own lazy walk, which cannot honour {', '.join(refused)}: "
                             "use engine='batched'")
    return dict(n_permutations=n_permutations, seed=int(seed), dtype=dtype)


def estimate(estimator, game, players, n_permutations=1000, seed=1, sampler="iid", batch_size=None,
             engine="batched", dtype=np.float64, progress=True, checkpoint=None, checkpoint_every=None,
             resume=False, fingerprint=None, backend="local", n_workers=None, address=None, game_factory=None,
             target_se=None, target_relative=False, estimator_options=None, desc="Shapley modes"):
    """Run `estimator` (a class from common.estimators) on the game; returns (estimates, run) where `run` holds
    labels, intact, lesioned, the orderings and metadata. The options are those of `shapley_modes`."""
    options = check_options(n_permutations=n_permutations, seed=seed, engine=engine, backend=backend, dtype=dtype,
                            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                            fingerprint=fingerprint, n_workers=n_workers, address=address, progress=progress,
                            estimator=estimator, target_se=target_se, target_relative=target_relative)
    n_permutations, seed, dtype = options["n_permutations"], options["seed"], options["dtype"]
    labels = player_labels(players)
    n = len(labels)
    asked = (sampler, n_permutations)
    if sampler == "auto":
        sampler, n_permutations = auto_sampler(n, n_permutations)
    orderings = sample(sampler, n, n_permutations, seed)
    refuses = getattr(FIRST_ORDER.get(estimator) if isinstance(estimator, str) else None, "refuses", None)
    if refuses and refuses(n, orderings.group):  # before the game runs
        raise ValueError(refuses(n, orderings.group))
    if game is None:
        if game_factory is None:
            raise ValueError("give a game, or a game_factory that builds one")
        game = game_factory()
    checked = CheckedGame(game, labels, dtype)
    if batch_size is not None:  # checked before the game runs; the default depends on the output size
        _positive_int("batch_size", batch_size)
    intact, lesioned = checked(np.stack([np.ones(n, bool), np.zeros(n, bool)]))
    batch_size = batch_size_for(batch_size, checked, intact.size)
    if isinstance(estimator, str):
        estimator = first_order_estimator(estimator, orderings.group, engine, n, intact.size, dtype.itemsize)
    estimator_options = dict(estimator_options or {})
    if hasattr(estimator, "prologue"):  # coalitions the estimator needs once, before the walk
        once = estimator.prologue(n)
        estimator_options["border"] = np.concatenate([checked(once[a:a + batch_size])
                                                      for a in range(0, len(once), batch_size)] + [lesioned[None]])
    make_estimator = partial(estimator, n, intact, orderings.group, dtype, **estimator_options)
    state = make_estimator()
    if progress:
        once = f", plus {2 * n} once" if "border" in estimator_options else ""
        state_gib = sum(np.asarray(a).nbytes for a in state.state().values()) / 2 ** 30
        tqdm.write(f"{n_permutations} orderings ({sampler} sampler), {estimator.name} estimator: "
                   f"{state.rows_per_ordering} game evaluations an ordering{once}; state {state_gib:.2g} GiB")
    started, evaluated, walked = time.perf_counter(), 0, n_permutations
    precision = None
    if engine == "batched" and backend == "local" and (target_se is not None or progress):
        interval = orderings.group * max(2, -(-n_permutations // (50 * orderings.group)))  # ~50 checks, whole groups
        precision = Precision(None if target_se is None else float(target_se), bool(target_relative), interval,
                              n_permutations, report=tqdm.write if progress else None)
    if engine == "msapy":
        estimates = dict(modes=run_msapy(checked, labels, orderings.orderings, intact, progress))
        estimates["se"] = np.full_like(estimates["modes"], np.nan)
    else:
        if backend == "ray":
            evaluated = run_ray(game_factory, labels, dtype, make_estimator, state, orderings, batch_size,
                                n_workers=n_workers, address=address, progress=progress, desc=desc)
        else:
            config = dict(players=[repr(p) for p in labels], n_permutations=n_permutations, seed=seed, sampler=sampler,
                          dtype=dtype.name, output_shape=list(intact.shape), batch_size=batch_size,
                          fingerprint=fingerprint, target_se=None if target_se is None else float(target_se),
                          target_relative=bool(target_relative),
                          **state.config())
            every = DEFAULT_CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
            checkpointer = None if checkpoint is None else Checkpointer(checkpoint, every, config)
            walked = run_local(checked, state, orderings, batch_size, progress, checkpointer, resume, precision,
                               desc=desc)
        estimates = state.finish()
    seconds = time.perf_counter() - started
    coalitions = checked.coalitions + evaluated
    metadata = dict(seconds=seconds, coalitions=int(coalitions), backend=backend, batch_size=batch_size,
                    coalitions_per_s=coalitions / max(seconds, 1e-12), estimator=estimator.name, sampler_asked=asked[0],
                    n_permutations_asked=asked[1])
    # e.g. weight_of_regression; se_dof: the standard errors' degrees of freedom (sampler groups or orderings less one)
    metadata.update({k: v for k, v in estimates.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if target_se is not None:
        reached = precision.reached
        metadata.update(target_se=float(target_se), target_relative=bool(target_relative),
                        target_reached=reached is not None, max_se=None if reached is None else reached[1])
    return estimates, dict(labels=labels, intact=intact, lesioned=lesioned, orderings=orderings, seed=seed,
                           n_permutations=walked, sampler=sampler, metadata=metadata)


def shapley_modes(game, players, n_permutations: int = 1000, seed: int = 1, sampler: str = "iid",
                  batch_size: int | None = None, engine: str = "batched", dtype=np.float64,
                  progress: bool = True, checkpoint=None, checkpoint_every: float | None = None, resume: bool = False,
                  fingerprint: str | None = None, backend: str = "local", n_workers: int | None = None,
                  address: str | None = None, game_factory=None, target_se: float | None = None,
                  target_relative: bool = False, estimator: str = "chain") -> ShapleyResult:
    """Estimate every player's Shapley mode of `game` from `n_permutations` sampled orderings.

    players: an int n, or n labels (e.g. (layer, expert) tuples).
    sampler: a name in common.SAMPLERS: "iid" (msapy's orderings for this seed), "antithetic" (each ordering
        followed by its reverse), ...
    batch_size: coalitions per game call; default: the game's own `batch_size` attribute, else by output size.
    engine: "batched" (ours) or "msapy" (msapy.interface, lazy, one coalition per call; no error bars, no
        checkpoints, no Ray).
    dtype: accumulator precision, float64 or float32 (halves the memory of very large outputs).
    checkpoint: a file to save the state to every `checkpoint_every` seconds (default 60) and on SIGINT, SIGTERM
        or SIGHUP (then RunInterrupted is raised); with resume=True an existing checkpoint is continued (it
        must match this configuration and `fingerprint`, e.g. common.fingerprint.model_fingerprint(model)).
        The result is bit-identical to a run that was never interrupted.
    backend: "local" or "ray" (shards of orderings on `n_workers` Ray actors, each building its own game
        with `game_factory()`; `address` of an existing cluster, else a local one).
    target_se: stop at the first check point (every ~2% of the orderings, whole groups) where every mode
        element's standard error is at or below it (target_relative=True: relative to the modes' range, max -
        min); n_permutations is then the most orderings walked. The stopping point depends only on the seed.
    sampler="auto": the best measured sampler that fits at least twice (see common.orderings.BEST_FIRST), with
        n_permutations rounded to whole blocks of it.
    estimator: "chain" (the mean marginal contribution along each ordering's lesion chain, msapy's estimator),
        "chain-kernel" (that mean averaged with a KernelSHAP regression on the same chains, which skip the
        coalitions of size 0, 1 and n - 1, evaluated once: n - 3 evaluations an ordering plus 2n once; for samplers
        whose groups hold n orderings or more: orthogonal (best), latin, latin-antithetic; see
        common/estimators/chain_kernel.py), "surrogate" (chain-kernel plus a control variate: a small network
        fitted to the game's values on one group of orderings, used on another; no extra game evaluations; see
        common/estimators/surrogate.py), or "auto" (where chain-kernel applies, there are 4 players or more and
        the state fits in 2 GiB: surrogate for outputs of at most 1024 elements, chain-kernel for larger ones;
        else chain).
    """
    estimates, run = estimate(estimator, game, players, n_permutations, seed, sampler, batch_size, engine, dtype,
                              progress, checkpoint, checkpoint_every, resume, fingerprint, backend, n_workers,
                              address, game_factory, target_se, target_relative)
    return ShapleyResult(modes=estimates["modes"], se=estimates["se"], players=run["labels"],
                         n_permutations=run["n_permutations"], intact=run["intact"], lesioned=run["lesioned"],
                         seed=run["seed"], sampler=run["sampler"], engine=engine, metadata=run["metadata"])
