"""Monte Carlo Shapley modes of lesion games: `shapley_modes`, a thin composition of the engine's parts.

    orderings (common/orderings.py)   which orderings of the players to walk, in independent groups
    estimator (common/estimators/)    which coalitions each ordering needs; folds the values into its state
    walk      (common/walk.py)        how orderings are cut into blocks and game calls, the same for every runner
    runner    (common/runners/)       local (batched, checkpoints, signals), Ray (shards), or msapy (the oracle)
    options   (common/options.py)     the run's options and the rules between them, checked once

A game is a callable on a boolean coalition matrix: game(coalitions) with coalitions of shape (C, n),
True = player intact, returns an array (numpy or torch) of shape (C, *output_shape).
"""
import time
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import Checkpointer
from .estimators import first_order_estimator
from .game import CheckedGame, batch_size_for, player_labels
from .options import Checkpoint, Compute, Ray, RunOptions, TargetSE
from .orderings import auto_sampler, sample
from .result import ShapleyResult, quantile
from .runners import Precision, run_local, run_msapy, run_ray

FEW_DOF = 10  # below this many degrees of freedom, the run says how wide a 95% interval is

# the options of the API before RunOptions, and what replaces each (a clear error, not a silent shift)
RENAMED = dict(engine="estimator='msapy'", checkpoint_every="checkpoint=Checkpoint(path, every=...)",
               resume="checkpoint=Checkpoint(path, resume=True)",
               fingerprint="checkpoint=Checkpoint(path, fingerprint=...)", backend="ray=Ray(...)",
               n_workers="ray=Ray(workers=...)", address="ray=Ray(address=...)",
               game_factory="ray=Ray(game_factory)", target_se="target=TargetSE(se)",
               target_relative="target=TargetSE(se, relative=True)", batch_size="compute=Compute(batch_size=...)",
               dtype="compute=Compute(dtype=...)")


def refuse_renamed(function: str, old: dict) -> None:
    if old:
        unknown = sorted(set(old) - set(RENAMED))
        if unknown:
            raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
        raise TypeError(f"{function}(): " + "; ".join(f"{name}= is now {RENAMED[name]}" for name in old) +
                        " (common.Checkpoint, common.Ray and common.TargetSE; see docs/long_runs.md)")


def estimate(estimator, game, players, options: RunOptions, *, estimator_options=None, desc="Shapley modes"):
    """Run `estimator` (a name, or a class from common.estimators) on the game with `options`; returns
    (estimates, run), `run` holding labels, intact, lesioned, the orderings walked and metadata."""
    labels = player_labels(players)
    n = len(labels)
    sampler, n_permutations = options.sampler, options.n_permutations
    if sampler == "auto":
        sampler, n_permutations = auto_sampler(n, n_permutations)
    orderings = sample(sampler, n, n_permutations, options.seed)
    if estimator != "auto":  # before the game runs
        named = first_order_estimator(estimator, orderings.group, n, 1, 8) if isinstance(estimator, str) else estimator
        why = named.refuses(n, orderings.group, n_permutations)
        if why:
            raise ValueError(why)
    checked = CheckedGame(_the_game(game, options), labels, options.dtype)
    intact, lesioned = checked(np.stack([np.ones(n, bool), np.zeros(n, bool)]))
    batch_size = batch_size_for(options.batch_size, checked, intact.size)
    if isinstance(estimator, str):
        estimator = first_order_estimator(estimator, orderings.group, n, intact.size, options.dtype.itemsize,
                                          cost_per_coalition=getattr(checked.game, "cost_per_coalition", None),
                                          n_orderings=n_permutations, target=options.target is not None)
    if estimator.takes_run:  # it plans coalitions of its own, and the orderings only count them: no whole groups
        wanted = options.n_permutations if options.sampler == "auto" else n_permutations
        most = estimator.most_orderings(n)
        if most is not None and wanted > most:  # a plan that holds every coalition: no more to walk
            if options.progress:
                tqdm.write(f"{estimator.name}: {most} orderings' worth of evaluations hold every coalition of {n} "
                           f"players; walking {most}, not {wanted}")
            wanted = most
        if wanted != n_permutations:
            sampler, n_permutations = "iid", wanted
            orderings = sample(sampler, n, n_permutations, options.seed)
    extra = dict(estimator_options or {})
    if estimator.takes_run:
        extra.update(n_orderings=n_permutations, seed=options.seed)
    once = estimator.prologue(n)
    if once is not None:  # coalitions the estimator needs once, before the walk
        extra["border"] = np.concatenate([checked(once[a:a + batch_size]) for a in range(0, len(once), batch_size)]
                                         + [lesioned[None]])
    make_estimator = partial(estimator, n, intact, orderings.group, options.dtype, **extra)
    state = make_estimator()
    if options.progress:
        state_gib = sum(np.asarray(a).nbytes for a in state.state().values()) / 2 ** 30
        tqdm.write(f"{n_permutations} orderings ({sampler} sampler), {estimator.name} estimator: "
                   f"{state.rows_per_ordering} game evaluations an ordering"
                   f"{'' if once is None else f', plus {len(once)} once'}; state {state_gib:.2g} GiB")
    started, evaluated, walked = time.perf_counter(), 0, n_permutations
    precision = None
    if not options.msapy and options.ray is None and (options.target is not None or options.progress):
        interval = orderings.group * max(2, -(-n_permutations // (50 * orderings.group)))  # ~50 checks, whole groups
        target = options.target
        precision = Precision(None if target is None else target.se, target is not None and target.relative,
                              interval, n_permutations, report=tqdm.write if options.progress else None)
    if options.msapy:
        estimates = dict(modes=run_msapy(checked, labels, orderings.orderings, intact, options.progress))
        estimates["se"] = np.full_like(estimates["modes"], np.nan)
    elif options.ray is not None:
        evaluated = run_ray(options.ray.game_factory, labels, make_estimator, state, orderings, batch_size=batch_size,
                            dtype=options.dtype, n_workers=options.ray.workers, address=options.ray.address,
                            progress=options.progress, desc=desc)
        estimates = state.finish()
    else:
        checkpointer = None if options.checkpoint is None else Checkpointer(
            options.checkpoint.path, options.checkpoint.every,
            _checkpoint_config(options, labels, intact, state, sampler=sampler, n_permutations=n_permutations,
                               batch_size=batch_size))
        walked = run_local(checked, state, orderings, batch_size, progress=options.progress, checkpointer=checkpointer,
                           resume=options.checkpoint is not None and options.checkpoint.resume, precision=precision,
                           desc=desc)
        estimates = state.finish()
    seconds = time.perf_counter() - started
    dof = estimates.get("se_dof")
    if options.progress and dof is not None and dof < FEW_DOF:
        tqdm.write(f"the error bars have {dof:.3g} degrees of freedom: a 95% interval is "
                   f"{quantile(0.95, dof):.3g} SE wide, not 2 "
                   "(ShapleyResult.margin); walk more orderings for tighter error bars")
    coalitions = checked.coalitions + evaluated
    metadata = dict(seconds=seconds, coalitions=int(coalitions), backend="local" if options.ray is None else "ray",
                    batch_size=batch_size, coalitions_per_s=coalitions / max(seconds, 1e-12),
                    estimator="msapy" if options.msapy else estimator.name, sampler_asked=options.sampler,
                    n_permutations_asked=options.n_permutations)
    # e.g. weight_of_regression; se_dof: the standard errors' degrees of freedom (sampler groups or orderings less one)
    metadata.update({k: v for k, v in estimates.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if options.target is not None:
        reached = precision.reached
        metadata.update(target_se=options.target.se, target_relative=options.target.relative,
                        target_reached=reached is not None, max_se=None if reached is None else reached[1])
    return estimates, dict(labels=labels, intact=intact, lesioned=lesioned, orderings=orderings, seed=options.seed,
                           n_permutations=walked, sampler=sampler, metadata=metadata)


def _the_game(game, options: RunOptions):
    if game is not None:
        return game
    if options.ray is None or options.ray.game_factory is None:
        raise ValueError("give a game, or ray=Ray(game_factory) to build one on every worker")
    return options.ray.game_factory()


def _checkpoint_config(options, labels, intact, state, *, sampler, n_permutations, batch_size) -> dict:
    """What a checkpoint must match to be resumed."""
    target = options.target
    return dict(players=[repr(p) for p in labels], n_permutations=n_permutations, seed=options.seed, sampler=sampler,
                dtype=options.dtype.name, output_shape=list(intact.shape), batch_size=batch_size,
                fingerprint=options.checkpoint.fingerprint, target_se=None if target is None else target.se,
                target_relative=target is not None and target.relative, **state.config())


def shapley_modes(game, players, n_permutations: int = 1000, *, seed: int = 1, sampler: str = "iid",
                  estimator: str = "chain", progress: bool = True, compute: Compute = Compute(),
                  checkpoint: Checkpoint | None = None, ray: Ray | None = None, target: TargetSE | None = None,
                  **renamed) -> ShapleyResult:
    """Estimate every player's Shapley mode of `game` from `n_permutations` sampled orderings.

    players: an int n, or n labels (e.g. (layer, expert) tuples).
    sampler: a name in common.SAMPLERS: "iid" (msapy's orderings for this seed), "antithetic", "latin",
        "latin-antithetic", "orthogonal"; or "auto": the best measured one that fits at least twice, with
        n_permutations rounded to whole blocks of it.
    estimator: common.estimators.ABOUT: "kadd" (a regression on distinct coalitions of its own; the orderings
        only count them), what the chains' values become: "chain" (the mean marginal contribution, msapy's),
        "chain-kernel", "surrogate"; "auto" (the best that applies), or "msapy" (msapy's own lazy walk on the same
        orderings, one coalition per call: the parity oracle; no error bars).
    compute: common.Compute(batch_size=None, dtype=float64): coalitions per game call (default: the game's own
        `batch_size` attribute, else by output size), and the accumulators' precision (float32 halves the memory
        of very large outputs).
    checkpoint: common.Checkpoint(path, every=60, resume=False, fingerprint=None): save the state, resume it.
        On SIGINT, SIGTERM or SIGHUP the run saves, prints one line and raises common.RunInterrupted, a
        SystemExit with the shell's code (130, 143, 129): a script exits cleanly, a caller may catch it.
    ray: common.Ray(game_factory, workers=None, address=None): shards of orderings on Ray actors, each building
        its own game (game may then be None).
    target: common.TargetSE(se, relative=False): stop early once every standard error is at or below se;
        n_permutations is then the most orderings walked.
    """
    refuse_renamed("shapley_modes", renamed)
    options = RunOptions(n_permutations=n_permutations, seed=seed, sampler=sampler, estimator=estimator,
                         compute=compute, progress=progress, checkpoint=checkpoint, ray=ray, target=target)
    estimates, run = estimate(options.estimator, game, players, options)
    return ShapleyResult(modes=estimates["modes"], se=estimates["se"], players=run["labels"],
                         n_permutations=run["n_permutations"], intact=run["intact"], lesioned=run["lesioned"],
                         seed=run["seed"], sampler=run["sampler"], engine="msapy" if options.msapy else "batched",
                         metadata=run["metadata"])
