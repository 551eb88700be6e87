"""The finished networks of a long benchmark, on disk as each one ends (`<out>.partial` beside the results file),
so that a rerun with the same settings picks up where the last one stopped: an interrupt (Ctrl-C, SIGKILL, a
machine shut down) costs at most the network it was on. The results file itself is written once, at the end."""
import json
import os
import sys
import time
from pathlib import Path


def write_json(path: Path, data) -> None:
    """Atomically: a temporary file beside `path`, then rename (NaN as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(as_json(data), separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def as_json(data):
    """`data` as it reads back from JSON: NaN as None, tuples as lists, numpy numbers as floats."""
    return json.loads(json.dumps(data, default=float).replace("NaN", "null"))


class Journal:
    """run(key, work) -> work()'s result, from the journal if an earlier run with the same `config` finished it."""

    def __init__(self, results: Path, config: dict):
        self.path = Path(results).with_name(Path(results).name + ".partial")
        self.config = as_json({k: v if isinstance(v, (bool, int, float, str, list, type(None))) else str(v)
                               for k, v in config.items()})
        self.done, self.reused = {}, {}
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            if saved["config"] == self.config:
                self.done = saved["done"]
                self.reused = dict(self.done)
                print(f"resuming from {self.path}: {len(self.done)} network(s) already done", flush=True)
            else:
                print(f"{self.path} holds a run with other settings: starting afresh", flush=True)

    def run(self, key: str, work):
        if key not in self.done:
            started = time.perf_counter()
            result = as_json(work())
            self.done[key] = dict(result=result, seconds=time.perf_counter() - started)
            write_json(self.path, dict(config=self.config, done=self.done))
        return self.done[key]["result"]

    def reused_seconds(self) -> float:
        """The seconds that the networks taken from an earlier run took there."""
        return sum(entry["seconds"] for entry in self.reused.values())

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def run_experiments(args, run: dict, kind: str, fields: dict, argv=None):
    """For each of args.experiments: settings = run[name](args, journal), written with `fields` to
    args.out / f"{kind}_{name}.json" through a journal of the run's settings (args less experiments, out and
    threads); yields (path, seconds: this run's and those of the networks an earlier run finished)."""
    config = {k: v for k, v in vars(args).items() if k not in ("experiments", "out", "threads")}
    for name in args.experiments:
        started = time.perf_counter()
        path = args.out / f"{kind}_{name}.json"
        journal = Journal(path, dict(config, experiment=name))
        settings = run[name](args, journal)
        seconds = time.perf_counter() - started + journal.reused_seconds()
        experiment = name if kind == "rankings" else f"{kind} {name}"
        write_json(path, dict(experiment=experiment, settings=settings, **fields, seconds=seconds,
                              argv=sys.argv[1:] if argv is None else list(argv)))
        journal.finish()
        yield path, seconds
