"""Monte Carlo Shapley modes of lesion games: `shapley_modes`, and `estimate`, the driver that composes the parts.

    budget     (common/budget.py)       distinct game evaluations, or Budget(orderings=k)
    estimator  (common/estimators/)     one class per method behind one contract; `auto` is a policy over it
    cache      (common/coalitions.py)   a run never sends the game a coalition twice; the walk's layout and schedule
    runner     (common/runners/)        local (batched, checkpoints, signals), Ray (shards) or msapy (the oracle)
    options    (common/options.py)      the run's options and the rules between them, checked once

A game is a callable on a boolean coalition matrix: game(coalitions) with coalitions of shape (C, n),
True = player intact, returns an array (numpy or torch) of shape (C, *output_shape).
"""
import time

from tqdm.auto import tqdm

from .budget import Budget
from .estimators import ESTIMATORS, Problem, auto_estimator, named_estimator
from .estimators.base import intact_and_empty
from .game import CheckedGame, batch_size_for, player_labels
from .options import Checkpoint, Compute, Method, RunOptions, TargetSE
from .result import ShapleyResult, quantile
from .runners import LocalRunner, MsapyRunner, RayRunner

FEW_DOF = 10  # below this many degrees of freedom, the run says how wide a 95% interval is

# the options of the API before this one, and what replaces each (a clear error, not a silent shift)
RENAMED = dict(n_permutations="budget (distinct game evaluations; Budget(orderings=k) for k orderings)",
               engine="runner='msapy'", ray="runner=Ray(...)",
               checkpoint_every="checkpoint=Checkpoint(path, every=...)",
               resume="checkpoint=Checkpoint(path, resume=True)",
               fingerprint="checkpoint=Checkpoint(path, fingerprint=...)", backend="runner=Ray(...)",
               n_workers="runner=Ray(workers=...)", address="runner=Ray(address=...)",
               game_factory="runner=Ray(game_factory)", target_se="target=TargetSE(se)",
               target_relative="target=TargetSE(se, relative=True)", batch_size="compute=Compute(batch_size=...)",
               dtype="compute=Compute(dtype=...)")
# shapley_modes' own: what runs is one object
METHOD_RENAMED = dict(estimator="method=Method(estimator=...)", sampler="method=Method(sampler=...)",
                      settings="method=Method(settings=...)")


def refuse_renamed(function: str, old: dict, renamed: dict = RENAMED) -> None:
    if old:
        unknown = sorted(set(old) - set(renamed))
        if unknown:
            raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")
        raise TypeError(f"{function}(): " + "; ".join(f"{name}= is now {renamed[name]}" for name in old) +
                        " (common.Budget, Method, Checkpoint, Ray and TargetSE; see docs/engine.md)")


def estimate(game, players, options: RunOptions, *, settings=None, enumerate_all=True, desc="Shapley modes"):
    """Run the options' estimator (a name, or a class of common.estimators) with its `settings` on the game;
    returns (estimates, run), `run` holding labels, intact, lesioned, orderings walked and metadata. Every refusal
    and a budget below the estimator's least come before the game is asked anything. enumerate_all: a budget that
    buys every coalition runs the exact estimator instead."""
    labels = player_labels(players)
    n = len(labels)
    problem = Problem(n, options.budget, options.seed, dtype=options.dtype)
    asked = ESTIMATORS.get(options.estimator, options.estimator) if isinstance(options.estimator, str) else \
        options.estimator
    cls, given = named_estimator(asked, problem, sampler=options.sampler, settings=dict(settings or {}),
                                 oracle=options.msapy, enumerate_all=enumerate_all)
    if cls is not None:
        given = cls.checked_settings(**given)
        _refuse(cls, problem, given)
    elif settings:
        raise ValueError(f"settings {sorted(settings)} are a named estimator's: estimator='auto' picks its own")
    game = _the_game(game, options)
    checked = CheckedGame(game, labels, options.dtype)
    runner = _runner(options, checked, labels, desc)
    intact, lesioned = runner.evaluate(intact_and_empty(n))
    runner.batch_size = batch_size_for(options.batch_size, checked, intact.size)
    problem = problem.with_output(intact.shape, options.dtype, getattr(game, "cost_per_coalition", None))
    if cls is None:
        cls, given = auto_estimator(problem, sampler=options.sampler, target=options.target is not None)
    estimator = cls(problem, **given)
    if options.progress:
        tqdm.write(f"{cls.name} estimator, {options.budget}"
                   + (f", {estimator.sampler} sampler" if cls.walks_orderings else ""))
    started = time.perf_counter()
    estimates = estimator.run(runner)
    seconds = time.perf_counter() - started
    dof = estimates.get("se_dof")
    if options.progress and dof is not None and dof < FEW_DOF:
        tqdm.write(f"the error bars have {dof:.3g} degrees of freedom: a 95% interval is "
                   f"{quantile(0.95, dof):.3g} SE wide, not 2 (ShapleyResult.margin); a larger budget tightens them")
    precision = getattr(runner, "precision", None)
    reached = None if precision is None else precision.reached
    units = estimator.units if reached is None else reached[0]
    walked = units * estimator.group if cls.walks_orderings else None
    metadata = dict(seconds=seconds, evaluations=int(runner.evaluations), budget=options.budget.to_json(),
                    runner="ray" if options.ray is not None else options.runner, batch_size=runner.batch_size,
                    evaluations_per_s=runner.evaluations / max(seconds, 1e-12), estimator=cls.name,
                    estimator_asked=options.estimator if isinstance(options.estimator, str) else cls.name,
                    sampler=getattr(estimator, "sampler", None), sampler_asked=options.sampler, orderings=walked,
                    units=units)
    # e.g. weight_of_regression; se_dof: the standard errors' degrees of freedom (sampler groups or orderings less one)
    metadata.update({k: v for k, v in estimates.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if options.target is not None:
        metadata.update(target_se=options.target.se, target_relative=options.target.relative,
                        target_reached=reached is not None, max_se=None if reached is None else reached[1])
    return estimates, dict(labels=labels, intact=intact, lesioned=lesioned, seed=options.seed, orderings=walked,
                           sampler=getattr(estimator, "sampler", None), metadata=metadata)


def _refuse(cls, problem: Problem, settings: dict) -> None:
    why = cls.refuses(problem, **settings)
    if why:
        raise ValueError(why)
    if cls.walks_orderings and problem.budget.orderings is not None:
        return  # k orderings: what they need (refuses says where k holds no sampler group)
    least = cls.minimum_evaluations(problem, **settings)
    if problem.evaluations < least:
        k = problem.budget.orderings
        raise ValueError(f"the {cls.name} estimator needs a budget of at least {least:,} evaluations on "
                         f"{problem.n_players} players; the budget buys {problem.evaluations:,}"
                         + ("" if k is None else f" (Budget(orderings={k}): {k} x {problem.n_players})"))


def _the_game(game, options: RunOptions):
    if game is not None:
        return game
    if options.ray is None or options.ray.game_factory is None:
        raise ValueError("give a game, or runner=Ray(game_factory) to build one on every worker")
    return options.ray.game_factory()


def _runner(options: RunOptions, game: CheckedGame, labels, desc: str):
    batch_size = options.batch_size if options.batch_size is not None else game.batch_size
    common = dict(budget=options.budget.evaluations_for(len(labels)), batch_size=batch_size if batch_size else 2,
                  dtype=options.dtype, cache_bytes=options.compute.cache_bytes, progress=options.progress, desc=desc)
    if options.msapy:
        return MsapyRunner(game, labels=labels, **common)
    if options.ray is not None:
        return RayRunner(game, game_factory=options.ray.game_factory, labels=labels, workers=options.ray.workers,
                         address=options.ray.address, **common)
    return LocalRunner(game, checkpoint=options.checkpoint, config=_checkpoint_config(options, labels),
                       target=options.target, **common)


def _checkpoint_config(options: RunOptions, labels) -> dict:
    """What a checkpoint must match to be resumed, before the estimator is built (its own config comes later)."""
    if options.checkpoint is None:
        return {}
    target = options.target
    return dict(players=[repr(p) for p in labels], budget=options.budget.to_json(), seed=options.seed,
                sampler_asked=options.sampler, estimator_asked=str(options.estimator), dtype=options.dtype.name,
                batch_size=options.batch_size, fingerprint=options.checkpoint.fingerprint,
                target_se=None if target is None else target.se, target_relative=target is not None and target.relative)


def shapley_modes(game, players, budget, *, seed: int = 1, method: Method = Method(), progress: bool = True,
                  compute: Compute = Compute(), checkpoint: Checkpoint | None = None, runner="local",
                  target: TargetSE | None = None, **renamed) -> ShapleyResult:
    """Every player's Shapley mode of `game` within `budget` distinct game evaluations.

    players: an int n, or n labels (e.g. (layer, expert) tuples).
    budget: the distinct game evaluations the run may spend, or common.Budget(orderings=k): k orderings for the
        estimators that walk them (msapy's parity), k x n evaluations for the others. A budget that buys every
        coalition (2^n) gets the exact values.
    method: common.Method(estimator="auto", sampler="auto", settings=None). estimator: a name in
        common.estimators.ESTIMATOR_CHOICES: "auto" (a policy: what was measured best for the size, budget, output
        and the game's declared cost), "kadd", "chain", "chain-kernel", "surrogate", "exact";
        result.metadata["estimator"] says which ran. sampler: the orderings of the estimators that walk them, a
        name in common.SAMPLERS ("iid": msapy's orderings for this seed) or "auto" (the best measured one that
        fits at least twice). settings: a named estimator's own options, e.g. dict(max_order=2) for "kadd".
    compute: common.Compute(batch_size=None, dtype=float64, cache_bytes=2**30): coalitions per game call
        (default: the game's own `batch_size` attribute, else by output size), the accumulators' precision, and
        the coalition cache's size.
    checkpoint: common.Checkpoint(path, every=300, resume=False, fingerprint=None): save the state, resume it.
        On SIGINT, SIGTERM or SIGHUP the run saves, prints one line and raises common.RunInterrupted, a
        SystemExit with the shell's code (130, 143, 129): a script exits cleanly, a caller may catch it.
    runner: "local" (default), "msapy" (msapy's own lazy walk of the same orderings, one coalition per call: the
        parity oracle; no error bars), or common.Ray(game_factory, workers=None, address=None): shards on Ray
        actors, each building its own game (game may then be None).
    target: common.TargetSE(se, relative=False): stop early once every standard error is at or below se; the
        budget is then the most spent.
    """
    refuse_renamed("shapley_modes", renamed, RENAMED | METHOD_RENAMED)
    if not isinstance(method, Method):
        raise ValueError(f"method must be a common.Method(...), got {method!r}")
    options = RunOptions(budget=budget, seed=seed, sampler=method.sampler, estimator=method.estimator,
                         compute=compute, progress=progress, checkpoint=checkpoint, runner=runner, target=target)
    estimates, run = estimate(game, players, options, settings=method.settings)
    return ShapleyResult(modes=estimates["modes"], se=estimates["se"], players=run["labels"],
                         orderings=run["orderings"], intact=run["intact"], lesioned=run["lesioned"],
                         seed=run["seed"], sampler=run["sampler"], engine="msapy" if options.msapy else "batched",
                         metadata=run["metadata"])


__all__ = ["Budget", "estimate", "shapley_modes"]
