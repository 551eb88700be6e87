"""Command-line options every compute_msa.py shares: checkpoints and resume, and the Ray backend."""
from pathlib import Path


def add_long_run_arguments(parser, checkpoint_every: float = 300.0) -> None:
    parser.add_argument("--checkpoint-every", type=float, default=checkpoint_every, metavar="SECONDS",
                        help="save the run's state this often and on Ctrl-C, beside the output as .ckpt "
                             "(default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="ray: shard the orderings over Ray workers, each with its own model (and GPU); "
                             "no checkpoints, a failed shard is run again")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per GPU, else per CPU)")


def long_run_options(args, checkpoint, game_factory, fingerprint: str) -> dict:
    """shapley_modes keyword arguments for the chosen backend; refuses to overwrite a checkpoint silently."""
    if args.backend == "ray":
        return dict(backend="ray", game_factory=game_factory, n_workers=args.workers, address=args.address)
    if Path(checkpoint).exists() and not args.resume:
        raise SystemExit(f"{checkpoint} exists from an interrupted run: add --resume to continue it, or delete it "
                         "to start over")
    return dict(checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
                fingerprint=fingerprint)
