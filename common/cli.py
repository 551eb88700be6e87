"""What every compute_msa.py shares: the run options (same names and defaults everywhere), and `main`, which runs
an experiment's games to .npz files with metadata, checkpointing beside them.

An experiment is a module (or object) with two functions:

    add_arguments(parser)      its own options
    build(args) -> GameSpecs   its games, one GameSpec each (a generator may load them one at a time)

and its compute_msa.py ends with `main(sys.modules[__name__])`. `build` checks its own arguments first and
raises UsageError for a bad one (exit 2, before anything loads). An optional `defaults(args)` fills in options
whose defaults depend on others (the LLM's per-model defaults) before anything is checked. The run's options become common.RunOptions
here, so the rules between them are the API's, and so are the messages.
"""
import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .budget import Budget, parse_budget
from .estimators import ESTIMATOR_CHOICES, help_text
from .options import DEFAULT_CHECKPOINT_EVERY, DEFAULT_ESTIMATOR, DEFAULT_SAMPLER, Method
from .orderings import BEST_FIRST, SAMPLERS


class UsageError(ValueError):
    """A bad command-line value that an experiment finds: reported like argparse's own errors, exit 2."""


# ---------------------------------------------------------------- argument types: bad values fail at parse time
def _checked(convert, ok, wanted: str):
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value
    parse.__name__ = wanted
    return parse


positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
non_negative_float = _checked(float, lambda v: 0 <= v < float("inf"), "a finite number >= 0")
positive_float = _checked(float, lambda v: 0 < v < float("inf"), "a finite number > 0")
open_fraction = _checked(float, lambda v: 0 < v < 1, "a fraction strictly between 0 and 1")


def budget_type(text: str) -> Budget:
    try:
        return parse_budget(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


budget_type.__name__ = "budget"


# ---------------------------------------------------------------- the shared options
DEFAULT_SEED = 1
BUDGET_HELP = ("distinct game evaluations the run may spend (20000), or orderings (1000n: 1000 orderings for the "
               "estimators that walk them, 1000 x n evaluations for the others)")


def add_run_arguments(parser, *, budget: Budget | None = Budget(orderings=1000), budget_help: str = "",
                      out=None, out_help: str = "output .npz", batch_size_help: str = "") -> None:
    """The options every compute_msa.py shares, with the same defaults everywhere (the API's)."""
    g = parser.add_argument_group("the Shapley run (shared by every compute_msa.py)")
    default = budget_help or (budget.as_text() if budget is not None else "none")
    g.add_argument("--budget", type=budget_type, default=budget, help=f"{BUDGET_HELP} (default: {default})")
    g.add_argument("--n-permutations", help=argparse.SUPPRESS)  # before --budget: named in the error
    g.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED,
                   help="seed of the orderings and plans: same seed, same numbers (default: %(default)s)")
    g.add_argument("--sampler", choices=("auto", *SAMPLERS), default=DEFAULT_SAMPLER,
                   help="orderings, for the estimators that walk them. auto (default): the best measured of " +
                        ", ".join(BEST_FIRST) + " of which the budget buys two groups; " +
                        "; ".join(f"{k}: {v.about}" for k, v in SAMPLERS.items()) + ". iid gives msapy's orderings")
    g.add_argument("--estimator", choices=(*ESTIMATOR_CHOICES, "msapy"), default=DEFAULT_ESTIMATOR,
                   metavar="{" + ",".join(ESTIMATOR_CHOICES) + "}",
                   help="how the game's values become modes. " + help_text() + " (default: %(default)s)")
    g.add_argument("--engine", help=argparse.SUPPRESS)  # before --backend msapy: named in the error
    g.add_argument("--target-se", type=positive_float, default=None, metavar="SE",
                   help="stop early, at the first check point where every mode element's standard error is at or "
                        "below SE (--budget is then the most spent); the start of the run prints the orderings "
                        "projected for it")
    g.add_argument("--target-relative", action="store_true",
                   help="--target-se is relative to the modes' range (max - min), e.g. 0.01 for 1%%")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help=batch_size_help or "coalitions per game call (default: the game's own)")
    g.add_argument("--checkpoint-every", type=non_negative_float, default=None, metavar="SECONDS",
                   help=f"save the run's state this often (0: after every block) and on Ctrl-C, SIGTERM or SIGHUP, "
                        f"beside the output as .ckpt (default: {DEFAULT_CHECKPOINT_EVERY:.0f})")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    g.add_argument("--backend", choices=("local", "ray", "msapy"), default="local",
                   help="local (default); ray: shard the work over Ray workers, each with its own model (and GPU), "
                        "no checkpoints, a failed shard is run again; msapy: msapy's own lazy walk of the same "
                        "orderings, one coalition per call (the parity oracle: --estimator chain, no error bars)")
    g.add_argument("--address", default=None, help="Ray cluster address, with --backend ray (default: a local Ray)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help="Ray workers, with --backend ray (default: one per GPU, else per CPU)")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: the cores no other process keeps busy)")
    g.add_argument("--out", type=Path, default=out, help=out_help + (" (default: %(default)s)" if out else ""))
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    i = parser.add_argument_group("interactions between units (optional; writes <out>_interactions.npz too)")
    i.add_argument("--interactions", choices=("pairs", "spex"), default=None,
                   help="pairs: interaction modes of --pairs (default: all pairs) from the same orderings, two more "
                        "coalitions per pair and ordering; spex: screen every pair with SPEX within --spex-budget "
                        "evaluations, then refine the --top pairs with error bars within --budget")
    i.add_argument("--pairs", nargs="+", default=None, metavar="I,J",
                   help="player index pairs for --interactions pairs, e.g. 0,5 3,4")
    i.add_argument("--index", choices=("SII", "STII"), default="SII",
                   help="Shapley interaction index, or Shapley-Taylor of order 2 (default: %(default)s)")
    i.add_argument("--top", type=positive_int, default=10, help="pairs SPEX passes on to refine (default: %(default)s)")
    i.add_argument("--spex-budget", type=positive_int, default=8000,
                   help="SPEX's sample budget, in game evaluations (default: %(default)s)")


@dataclass(frozen=True)
class Interactions:
    """What --interactions asks for: `kind` pairs (interaction modes of `pairs`, or of all pairs) or spex (screen
    every pair within `spex_budget` evaluations, refine the `top` ones)."""
    kind: str
    pairs: list | None = None
    index: str = "SII"
    top: int = 10
    spex_budget: int = 8000


def interactions_of(args) -> Interactions | None:
    """--interactions and its options; UsageError for the rules that belong to the command line alone."""
    if args.interactions is None:
        if args.pairs is not None:
            raise UsageError("--pairs needs --interactions pairs")
        return None
    if args.estimator not in ("auto", "chain", "msapy"):
        raise UsageError(f"--interactions walks chains of its own; it cannot take --estimator {args.estimator}")
    pairs = None
    if args.pairs is not None:
        try:
            pairs = [tuple(int(x) for x in pair.split(",")) for pair in args.pairs]
        except ValueError:
            raise UsageError(f"--pairs takes index pairs like 0,5 3,4; got {' '.join(args.pairs)}") from None
        if any(len(pair) != 2 for pair in pairs):
            raise UsageError("--pairs takes pairs of two indices, like 0,5")
    return Interactions(args.interactions, pairs, args.index, args.top, args.spex_budget)


def run_options(args, checkpoint: Path | None, *, fingerprint: str | None = None, dtype=None, progress=None):
    """The API's RunOptions from the shared command line: a Checkpoint at `checkpoint` (beside the output) for a
    local run, and wherever --resume or --checkpoint-every ask for one (the API refuses it with Ray or msapy);
    the runner of --backend; a TargetSE with --target-se. Raises the API's ValueError for contradictions."""
    import numpy as np

    from .options import Checkpoint, Compute, Ray, RunOptions, TargetSE

    if args.n_permutations is not None:
        raise UsageError(f"--n-permutations {args.n_permutations} is now --budget {args.n_permutations}n: the budget "
                         "counts game evaluations (20000), or orderings with an n (1000n)")
    if args.engine is not None:
        raise UsageError(f"--engine {args.engine}: msapy's walk is now --backend msapy")
    if args.estimator == "msapy":
        raise UsageError("--estimator msapy: msapy's walk is now --backend msapy (with --estimator chain)")
    if args.backend != "ray" and (args.address is not None or args.workers is not None):
        raise UsageError("--address and --workers are options of --backend ray")
    if args.interactions is not None and args.backend == "msapy":
        raise UsageError("--interactions runs on the batched engine (msapy's 2D MSA takes three full runs per pair)")
    if args.budget is None:
        raise UsageError("--budget is needed: distinct evaluations (20000) or orderings (1000n)")
    local = args.backend == "local"
    wanted = local or args.resume or args.checkpoint_every is not None
    every = DEFAULT_CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
    target = None
    if args.target_se is not None or args.target_relative:
        target = TargetSE(args.target_se, relative=args.target_relative)
    runner = {"local": "local", "msapy": "msapy"}.get(args.backend) or Ray(workers=args.workers, address=args.address)
    return RunOptions(
        budget=args.budget, seed=args.seed, sampler=args.sampler,
        estimator="chain" if args.backend == "msapy" and args.estimator == "auto" else args.estimator,
        compute=Compute(args.batch_size, np.float64 if dtype is None else dtype),
        progress=not args.no_progress if progress is None else progress, target=target,
        checkpoint=Checkpoint(checkpoint or "run.ckpt", every, args.resume, fingerprint) if wanted else None,
        runner=runner)


def check_run_arguments(parser, args) -> None:
    """The shared options, checked as the run will check them, as parser errors (exit 2) before anything loads."""
    if args.device not in ("auto", "cpu") and not str(args.device).startswith("cuda"):
        parser.error(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")
    try:
        interactions_of(args)
        run_options(args, None)
    except ValueError as error:
        parser.error(str(error))


def check_pairs_fit(interactions: Interactions | None, n_players: int, limit: int = 5000) -> None:
    """UsageError for pairs outside the players, or for all pairs of so many players that it is unworkable."""
    if interactions is None:
        return
    bad = [p for p in interactions.pairs or () if not (0 <= min(p) and max(p) < n_players and p[0] != p[1])]
    if bad:
        raise UsageError(f"--pairs {bad[0][0]},{bad[0][1]}: a pair is two different player indices in "
                         f"0..{n_players - 1}")
    if interactions.kind == "pairs" and interactions.pairs is None and n_players * (n_players - 1) // 2 > limit:
        raise UsageError(f"all pairs of {n_players} players are {n_players * (n_players - 1) // 2:,}, each two "
                         "coalitions per ordering: choose --pairs, or --interactions spex to screen them")


def check_output_file(path: Path, option: str = "--out") -> None:
    """UsageError now, not after hours of work, when `path` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file name")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path} cannot be written: {folder} is not a writable folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} exists and is not writable")


def check_output_folder(path: Path, option: str = "--out") -> None:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; give a folder")
    check_output_file(path / "probe", option)


def resolve_ranking(args, run: str) -> None:
    """A compress script's --ranking from --msa (`run`: the script that writes it): shapley with --msa, weight-norm
    without; shapley needs --msa, and another ranking does not read one. UsageError otherwise."""
    if args.ranking is None:
        args.ranking = "shapley" if args.msa is not None else "weight-norm"
    if args.ranking == "shapley" and args.msa is None:
        raise UsageError(f"--ranking shapley needs --msa (a {run} result)")
    if args.ranking != "shapley" and args.msa is not None:
        raise UsageError(f"--msa gives the Shapley ranking; --ranking {args.ranking} does not read it")


def check_replaceable(path: Path, force: bool, option: str = "--out") -> None:
    """UsageError when `path` exists and --force was not given (or cannot be written either way)."""
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{option} {path} exists; pass --force to replace it (only once the new one is whole)")
    check_output_file(path.parent / (path.name + ".probe"), option)


def setup_device(args):
    """torch device from --device, and torch CPU threads from --threads (every core by default)."""
    from .device import pick_device, set_cpu_threads
    device = pick_device(args.device)
    if device.type == "cpu":
        set_cpu_threads(args.threads)
    return device


# ---------------------------------------------------------------- one game to one .npz
@dataclass
class GameSpec:
    """One game of an experiment and everything its .npz needs."""
    settings: object              # a frozen, picklable dataclass whose build() makes the game, here and on Ray
    players: object               # an int n, or n labels
    out: Path                     # the .npz to write; the checkpoint goes beside it as .ckpt
    fingerprint: dict             # what the run depends on (model hash, data, settings): a checkpoint must match
    extras: object = None         # arrays saved beside the result: a dict, or a callable result -> dict
    metadata: dict = field(default_factory=dict)
    dtype: object = None          # accumulator precision (default float64)
    progress: bool | None = None  # None: unless --no-progress
    spex_reduce: object = None    # for --interactions spex on large outputs: (C, *output) -> (C, k)
    game: object = None           # settings.build(), where build(args) made it already (to look at it first)

    def the_game(self):
        if self.game is None:
            self.game = self.settings.build()
        return self.game


def settings_record(settings) -> dict:
    """The settings as the result's metadata keeps them: Settings(**record).build() makes the game again."""
    from dataclasses import asdict
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}


def versions() -> dict:
    import numpy
    out = dict(python=platform.python_version(), numpy=numpy.__version__)
    for name in ("torch", "msapy", "transformers", "bitsandbytes"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


def run_to_npz(game, players, out: Path, options, *, fingerprint: dict, interactions: Interactions | None = None,
               extras=None, metadata=None, spex_reduce=None):
    """Shapley modes of `game` with `options` (common.RunOptions), saved to `out` (atomically) with `extras` (a
    dict of arrays, or a callable result -> dict) and metadata. A checkpoint is removed once the result is saved.
    With `interactions`, the interaction modes of the same run go to <out>_interactions.npz (SPEX summarises large
    outputs with `spex_reduce`)."""
    from .checkpoint import remove_checkpoint
    from .shapley import shapley_modes

    out = Path(out)
    checkpoint = options.checkpoint
    if checkpoint is not None and checkpoint.path.exists() and not checkpoint.resume:
        raise SystemExit(f"{checkpoint.path} exists from an interrupted run: add --resume to continue it, or delete "
                         "it to start over")
    started = time.perf_counter()
    run = dict(seed=options.seed, compute=options.compute, progress=options.progress, checkpoint=checkpoint,
               runner=options.runner, target=options.target)
    pairs = None
    if interactions is None:
        result = shapley_modes(game, players, options.budget,
                               method=Method(estimator=options.estimator, sampler=options.sampler), **run)
    else:
        pairs = _interactions(interactions, game, players, spex_reduce, options.budget,
                              dict(run, sampler=options.sampler))
        result = pairs.first_order
    result.metadata.update(fingerprint=fingerprint, versions=versions(), total_seconds=time.perf_counter() - started,
                           **(metadata or {}))
    arrays = extras(result) if callable(extras) else (extras or {})
    result.save(out, **arrays)
    if pairs is not None:
        pairs.metadata.update(result.metadata)
        pairs.save(interactions_path(out))
    if checkpoint is not None:
        remove_checkpoint(checkpoint.path)
    return result


def interactions_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + "_interactions.npz")


def _interactions(interactions: Interactions, game, players, spex_reduce, budget, run):
    from .interactions import interaction_modes
    from .spex import sparse_interactions
    if interactions.kind == "pairs":
        return interaction_modes(game, players, budget, pairs=interactions.pairs, index=interactions.index, **run)
    return sparse_interactions(game, players, budget, spex_budget=interactions.spex_budget, top=interactions.top,
                               index=interactions.index, reduce=spex_reduce, **run)


def main(experiment, argv=None):
    """Parse the experiment's and the shared options, build its games, and run each one to its .npz. Returns the
    files written. Bad options exit 2 before anything loads; a run stopped by a signal exits 128 + its number."""
    from tqdm.auto import tqdm

    from .fingerprint import run_fingerprint

    parser = argparse.ArgumentParser(description=experiment.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    experiment.add_arguments(parser)
    args = parser.parse_args(argv)
    if hasattr(experiment, "defaults"):
        experiment.defaults(args)
    check_run_arguments(parser, args)
    written = []
    try:
        interactions = interactions_of(args)
        for spec in experiment.build(args):
            check_pairs_fit(interactions, len(spec.players) if not isinstance(spec.players, int) else spec.players)
            out = Path(spec.out)
            options = run_options(args, out.with_suffix(".ckpt"), fingerprint=run_fingerprint(spec.fingerprint),
                                  dtype=spec.dtype, progress=spec.progress)
            if options.ray is not None:
                options = _with_factory(options, spec.settings.build)
            result = run_to_npz(spec.the_game(), spec.players, out, options, fingerprint=spec.fingerprint,
                                interactions=interactions, extras=spec.extras,
                                metadata=dict(spec.metadata, settings=settings_record(spec.settings)),
                                spex_reduce=spec.spex_reduce)
            meta = result.metadata
            tqdm.write(f"wrote {out}: modes {result.modes.shape} ({meta['estimator']}), {meta['evaluations']:,} "
                       f"evaluations in {meta['seconds']:.1f} s ({meta['evaluations_per_s']:.3g}/s); efficiency gap "
                       f"{result.efficiency_gap():.1e}")
            written.append(out)
    except UsageError as error:
        parser.error(str(error))
    return written


def _with_factory(options, factory):
    from dataclasses import replace
    return replace(options, runner=replace(options.ray, game_factory=factory))


def entry(run) -> None:
    """Run a script's main(); Ctrl-C outside the Shapley walk (while loading, say) exits 130 without a traceback."""
    try:
        run()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
