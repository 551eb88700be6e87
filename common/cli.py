"""What every compute_msa.py shares: the run options (same names and defaults everywhere), their checks, and one
function that runs a game to an .npz with metadata, checkpointing beside it.

An experiment's compute_msa.py only builds its game (and a picklable factory for Ray workers), its players, a
fingerprint dict of what the run depends on, and its extra arrays; `run_to_npz` does the rest.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

from .orderings import BEST_FIRST, SAMPLERS


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


# ---------------------------------------------------------------- the shared options
DEFAULT_SEED = 1
CHECKPOINT_EVERY = 300.0  # the scripts' runs take hours and their states can be GBs: less often than the API's 60 s


def add_run_arguments(parser, *, n_permutations: int | None = 1000, n_permutations_help: str = "",
                      out=None, out_help: str = "output .npz", batch_size_help: str = "") -> None:
    """--n-permutations --seed --sampler --engine --batch-size --checkpoint-every --resume --backend --address
    --workers --device --threads --out --no-progress, with the same defaults in every script."""
    g = parser.add_argument_group("the Shapley run (shared by every compute_msa.py)")
    g.add_argument("--n-permutations", type=positive_int, default=n_permutations,
                   help=n_permutations_help or "orderings to walk (default: %(default)s, the paper's)")
    g.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED,
                   help="seed of the orderings: same seed, same numbers (default: %(default)s)")
    g.add_argument("--sampler", choices=("auto", *SAMPLERS), default="auto",
                   help="orderings. auto (default): the best measured of " + ", ".join(BEST_FIRST) + " whose block "
                        "fits at least twice, --n-permutations rounded to whole blocks; " +
                        "; ".join(f"{k}: {v.about}" for k, v in SAMPLERS.items()) + ". iid gives msapy's orderings")
    g.add_argument("--estimator", choices=("auto", "chain", "chain-kernel", "surrogate"), default="auto",
                   help="how the chains' values become modes. chain: the mean marginal contribution (msapy's); "
                        "chain-kernel: that mean averaged with a KernelSHAP regression on the same chains, which "
                        "skip the coalitions of size 0, 1 and n-1 (evaluated once): n-3 evaluations an ordering; "
                        "it needs sampler blocks of at least n orderings (orthogonal, latin, latin-antithetic); "
                        "surrogate: chain-kernel with a small network fitted to the game as a control variate "
                        "(cross-fitted, no extra game evaluations); "
                        "auto (default): surrogate where it applies and the output has at most 1024 elements, "
                        "chain-kernel for larger outputs, else chain (see the README)")
    g.add_argument("--target-se", type=positive_float, default=None, metavar="SE",
                   help="stop early, at the first check point where every mode element's standard error is at or "
                        "below SE (--n-permutations is then the most); the start of the run prints the orderings "
                        "projected for it")
    g.add_argument("--target-relative", action="store_true",
                   help="--target-se is relative to the modes' range (max - min), e.g. 0.01 for 1%%")
    g.add_argument("--engine", choices=("batched", "msapy"), default="batched",
                   help="batched: ours; msapy: msapy's lazy interface, one coalition per call, the parity oracle "
                        "(no error bars, checkpoints or Ray) (default: %(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=None,
                   help=batch_size_help or "coalitions per game call (default: the game's own)")
    g.add_argument("--checkpoint-every", type=non_negative_float, default=None, metavar="SECONDS",
                   help=f"save the run's state this often (0: after every block) and on Ctrl-C, SIGTERM or SIGHUP, "
                        f"beside the output as .ckpt (default: {CHECKPOINT_EVERY:.0f})")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    g.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="ray: shard the orderings over Ray workers, each with its own model (and GPU); no "
                        "checkpoints, a failed shard is run again (default: %(default)s)")
    g.add_argument("--address", default=None, help="Ray cluster address, with --backend ray (default: a local Ray)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help="Ray workers, with --backend ray (default: one per GPU, else per CPU)")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--threads", type=positive_int, default=None,
                   help="torch CPU threads (default: every core; on a machine busy with other jobs, fewer)")
    g.add_argument("--out", type=Path, default=out, help=out_help + (" (default: %(default)s)" if out else ""))
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    i = parser.add_argument_group("interactions between units (optional; writes <out>_interactions.npz too)")
    i.add_argument("--interactions", choices=("pairs", "spex"), default=None,
                   help="pairs: interaction modes of --pairs (default: all pairs) from the same orderings, two more "
                        "coalitions per pair and ordering; spex: screen every pair with SPEX within --budget "
                        "evaluations, then refine the --top pairs with error bars")
    i.add_argument("--pairs", nargs="+", default=None, metavar="I,J",
                   help="player index pairs for --interactions pairs, e.g. 0,5 3,4")
    i.add_argument("--index", choices=("SII", "STII"), default="SII",
                   help="Shapley interaction index, or Shapley-Taylor of order 2 (default: %(default)s)")
    i.add_argument("--top", type=positive_int, default=10, help="pairs SPEX passes on to refine (default: %(default)s)")
    i.add_argument("--budget", type=positive_int, default=8000,
                   help="SPEX's sample budget, in game evaluations (default: %(default)s)")


def check_run_arguments(parser, args) -> None:
    """Contradictions between the shared options, as parser errors (exit 2) before anything loads."""
    local = args.backend == "local" and args.engine == "batched"
    if args.resume and not local:
        parser.error("--resume continues a checkpoint, which only --backend local --engine batched writes")
    if args.checkpoint_every is not None and not local:
        parser.error("--checkpoint-every applies to --backend local --engine batched: Ray reruns failed shards, "
                     "msapy keeps no state")
    if args.target_se is not None and not local:
        parser.error("--target-se stops a local batched walk (--backend local --engine batched)")
    if args.target_relative and args.target_se is None:
        parser.error("--target-relative needs --target-se")
    if args.backend == "ray" and args.engine == "msapy":
        parser.error("--engine msapy runs in one process; it cannot use --backend ray")
    if args.backend == "local" and (args.address is not None or args.workers is not None):
        parser.error("--address and --workers are options of --backend ray")
    if args.device not in ("auto", "cpu") and not str(args.device).startswith("cuda"):
        parser.error(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")
    if args.interactions is None and args.pairs is not None:
        parser.error("--pairs needs --interactions pairs")
    if args.estimator not in ("auto", "chain") and args.engine == "msapy":
        parser.error(f"--estimator {args.estimator} runs on the batched engine; msapy walks its own chains")
    if args.estimator not in ("auto", "chain") and args.interactions is not None:
        parser.error(f"--estimator {args.estimator} estimates first-order modes; --interactions walks its own chains")
    if args.interactions is not None and args.engine == "msapy":
        parser.error("--interactions runs on the batched engine (msapy's 2D MSA takes three full runs per pair)")
    if args.pairs is not None:
        try:
            args.pairs = [tuple(int(x) for x in pair.split(",")) for pair in args.pairs]
        except ValueError:
            parser.error(f"--pairs takes index pairs like 0,5 3,4; got {' '.join(args.pairs)}")
        if any(len(pair) != 2 for pair in args.pairs):
            parser.error("--pairs takes pairs of two indices, like 0,5")


def check_pairs_fit(parser, args, n_players: int, limit: int = 5000) -> None:
    """--interactions pairs without --pairs estimates all n (n - 1) / 2 pairs: refuse when that is unworkable."""
    bad = [pair for pair in args.pairs or () if not (0 <= min(pair) and max(pair) < n_players and pair[0] != pair[1])]
    if bad:
        parser.error(f"--pairs {bad[0][0]},{bad[0][1]}: a pair is two different player indices in 0..{n_players - 1}")
    if args.interactions == "pairs" and args.pairs is None and n_players * (n_players - 1) // 2 > limit:
        parser.error(f"all pairs of {n_players} players are {n_players * (n_players - 1) // 2:,}, each two coalitions "
                     f"per ordering: choose --pairs, or --interactions spex to screen them")


def check_output_file(parser, path: Path, option: str = "--out") -> None:
    """Fail now, not after hours of work, when `path` cannot be written."""
    path = Path(path)
    if path.is_dir():
        parser.error(f"{option} {path} is a folder; give a file name")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        parser.error(f"{option} {path} cannot be written: {folder} is not a writable folder")
    if path.exists() and not os.access(path, os.W_OK):
        parser.error(f"{option} {path} exists and is not writable")


def check_output_folder(parser, path: Path, option: str = "--out") -> None:
    path = Path(path)
    if path.exists() and not path.is_dir():
        parser.error(f"{option} {path} is a file; give a folder")
    check_output_file(parser, path / "probe", option)


def setup_device(args):
    """torch device from --device, and torch CPU threads from --threads (every core by default)."""
    from .device import pick_device, set_cpu_threads
    device = pick_device(args.device)
    if device.type == "cpu":
        set_cpu_threads(args.threads)
    return device


# ---------------------------------------------------------------- one game to one .npz
def versions() -> dict:
    import numpy
    out = dict(python=platform.python_version(), numpy=numpy.__version__)
    for name in ("torch", "msapy", "transformers", "bitsandbytes"):
        module = sys.modules.get(name)
        if module is not None:
            out[name] = str(getattr(module, "__version__", "?"))
    return out


def run_to_npz(args, game, players, out: Path, fingerprint: dict, *, game_factory=None, extras=None,
               metadata=None, dtype=None, progress: bool | None = None, spex_reduce=None):
    """Shapley modes of `game` with the shared options in `args`, saved to `out` (atomically) with `extras`
    (a dict of arrays, or a callable result -> dict) and metadata. Checkpoints go to out.with_suffix('.ckpt')
    and are removed once the result is saved. A run stopped by a signal exits with 128 + the signal's number
    after printing one line. With --interactions, the interaction modes of the same run go to
    <out>_interactions.npz (SPEX summarises large outputs with `spex_reduce`)."""
    import numpy as np

    from .checkpoint import remove_checkpoint
    from .fingerprint import run_fingerprint
    from .runners import RunInterrupted
    from .shapley import shapley_modes

    out = Path(out)
    local = args.backend == "local" and args.engine == "batched"
    checkpoint = out.with_suffix(".ckpt") if local else None
    if checkpoint is not None and checkpoint.exists() and not args.resume:
        raise SystemExit(f"{checkpoint} exists from an interrupted run: add --resume to continue it, or delete it "
                         "to start over")
    if checkpoint is not None:
        every = CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
        run = dict(checkpoint=checkpoint, checkpoint_every=every, resume=args.resume,
                   fingerprint=run_fingerprint(fingerprint))
    elif args.backend == "ray":
        run = dict(backend="ray", n_workers=args.workers, address=args.address, game_factory=game_factory)
    else:
        run = {}
    started = time.perf_counter()
    options = dict(n_permutations=args.n_permutations, seed=args.seed, sampler=args.sampler, batch_size=args.batch_size,
                   target_se=args.target_se, target_relative=args.target_relative,
                   dtype=np.float64 if dtype is None else dtype,
                   progress=not args.no_progress if progress is None else progress, **run)
    pairs = None
    try:
        if args.interactions is None:
            result = shapley_modes(game, players, engine=args.engine, estimator=args.estimator, **options)
        else:
            pairs = _interactions(args, game, players, spex_reduce, options)
            result = pairs.first_order
    except RunInterrupted as stop:
        print(f"\nstopped after {stop.done} orderings; resume with --resume (state in {stop.checkpoint})",
              file=sys.stderr)
        raise SystemExit(stop.exit_code) from None
    result.metadata.update(fingerprint=fingerprint, versions=versions(), total_seconds=time.perf_counter() - started,
                           **(metadata or {}))
    arrays = extras(result) if callable(extras) else (extras or {})
    result.save(out, **arrays)
    if pairs is not None:
        pairs.metadata.update(result.metadata)
        pairs.save(interactions_path(out))
    if checkpoint is not None:
        remove_checkpoint(checkpoint)
    return result


def interactions_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + "_interactions.npz")


def _interactions(args, game, players, spex_reduce, options):
    from .interactions import interaction_modes
    from .spex import sparse_interactions
    if args.interactions == "pairs":
        return interaction_modes(game, players, pairs=args.pairs, index=args.index, **options)
    return sparse_interactions(game, players, budget=args.budget, top=args.top, index=args.index, reduce=spex_reduce,
                               **options)


def entry(main) -> None:
    """Run a script's main(); Ctrl-C outside the Shapley walk (while loading, say) exits 130 without a traceback."""
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
