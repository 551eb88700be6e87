"""Checkpoint and resume: SIGKILL at random moments, Ctrl-C, damaged and mismatched checkpoints."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from games import dies_after

from common import Budget, Checkpoint, Compute, Method, load, shapley_modes
from common.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from MLP import train

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def nonlinear_game(c):
    w = np.random.default_rng(0).normal(size=(9, 4))
    return np.tanh(c.astype(float) @ w) ** 2


@pytest.mark.parametrize("sampler, batch_size", [("iid", 7), ("iid", 20), ("antithetic", 5), ("antithetic", 30)])
def test_resumed_run_is_bit_identical(tmp_path, sampler, batch_size):
    ckpt = tmp_path / "run.ckpt"
    run = dict(seed=3, method=Method(sampler=sampler, estimator="chain"), progress=False,
               compute=Compute(batch_size=batch_size))
    full = shapley_modes(nonlinear_game, 9, Budget(orderings=24), **run)
    for _ in range(2):  # each attempt dies after 6 batches
        with pytest.raises(KeyboardInterrupt):
            shapley_modes(dies_after(nonlinear_game, 6), 9, Budget(orderings=24),
                          checkpoint=Checkpoint(ckpt, every=0, resume=True), **run)
    with np.load(ckpt) as f:
        done = int(f["done"])  # units: orderings, or antithetic pairs
    assert 0 < done < 24 // (2 if sampler == "antithetic" else 1)
    resumed = shapley_modes(nonlinear_game, 9, Budget(orderings=24), checkpoint=Checkpoint(ckpt, every=0, resume=True),
                            **run)
    np.testing.assert_array_equal(resumed.modes, full.modes)
    np.testing.assert_array_equal(resumed.se, full.se)


def state_arrays(n=9, shape=(4,)):
    return dict(count=np.zeros(n, np.int64), mean=np.zeros((n, *shape)), m2=np.zeros((n, *shape)))


def test_checkpoint_refuses_other_runs_and_damage(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    run = dict(method=Method(estimator="chain", sampler="iid"), progress=False, compute=Compute(batch_size=9))
    with pytest.raises(KeyboardInterrupt):
        shapley_modes(dies_after(nonlinear_game, 4), 9, Budget(orderings=20), seed=3,
                      checkpoint=Checkpoint(ckpt, every=0, fingerprint="model-a"), **run)
    with pytest.raises(FileExistsError, match="resume"):
        shapley_modes(nonlinear_game, 9, Budget(orderings=20), seed=3, checkpoint=Checkpoint(ckpt), **run)
    with pytest.raises(CheckpointError, match=r"seed: checkpoint has 3, this run has 4"):
        shapley_modes(nonlinear_game, 9, Budget(orderings=20), seed=4,
                      checkpoint=Checkpoint(ckpt, resume=True, fingerprint="model-a"), **run)
    with pytest.raises(CheckpointError, match="fingerprint: checkpoint has 'model-a', this run has 'model-b'"):
        shapley_modes(nonlinear_game, 9, Budget(orderings=20), seed=3,
                      checkpoint=Checkpoint(ckpt, resume=True, fingerprint="model-b"), **run)
    with pytest.raises(CheckpointError, match="budget: checkpoint has"):
        shapley_modes(nonlinear_game, 9, Budget(orderings=30), seed=3,
                      checkpoint=Checkpoint(ckpt, resume=True, fingerprint="model-a"), **run)
    assert (tmp_path / "run.ckpt.prev").exists()  # the last good one before the newest
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(CheckpointError, match="damaged"):
        shapley_modes(nonlinear_game, 9, Budget(orderings=20), seed=3,
                      checkpoint=Checkpoint(ckpt, resume=True, fingerprint="model-a"), **run)
    assert ckpt.read_bytes() == good[: len(good) // 2] and (tmp_path / "run.ckpt.prev").exists()  # nothing deleted
    # a flipped byte inside the arrays is caught by the checksum
    arrays = state_arrays()
    arrays["mean"][:] = 1.0
    save_checkpoint(ckpt, {"a": 1}, 3, arrays)
    back = state_arrays()
    assert load_checkpoint(ckpt, {"a": 1}, back) == (3, {}) and (back["mean"] == 1).all()
    raw = bytearray(ckpt.read_bytes())
    pos = raw.find(np.float64(1.0).tobytes())
    raw[pos:pos + 8] = np.float64(2.0).tobytes()
    ckpt.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(ckpt, {"a": 1}, state_arrays())


def test_a_checkpoint_of_the_previous_engine_is_refused_and_says_why(tmp_path):
    """Before budgets in evaluations a checkpoint held no coalition cache and counted orderings: it cannot be
    continued, and the message says so rather than listing mismatched settings."""
    import json
    with open(tmp_path / "run.ckpt", "wb") as f:  # np.savez on a path would add .npz
        np.savez(f, done=np.int64(3), config=np.array(json.dumps({"n_permutations": 20, "seed": 3})),
                 digest=np.array("x"), state_count=np.zeros(9, np.int64))
    with pytest.raises(CheckpointError, match="another version of the engine .*delete it to start over"):
        shapley_modes(nonlinear_game, 9, Budget(orderings=20), seed=3, progress=False,
                      checkpoint=Checkpoint(tmp_path / "run.ckpt", resume=True))


@pytest.fixture(scope="module")
def one_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    train.main(["--sizes", "60", "--regs", "l2", "--trials", "1", "--epochs", "1", "--out", str(folder)])
    return folder


def compute(models, out, *extra):
    return [sys.executable, "-m", "MLP.compute_msa", "--models", str(models), "--out", str(out),
            "--budget", "1200n", "--seed", "5", "--checkpoint-every", "0", *extra]


@pytest.mark.parametrize("extra", [(), ("--interactions", "pairs", "--pairs", "0,1", "5,9", "2,3", "7,40", "11,12",
                                          "30,59")])
def test_sigkill_at_random_moments_then_resume_is_bit_identical(one_model, tmp_path, extra):
    subprocess.run(compute(one_model, tmp_path / "straight", *extra), check=True, cwd=ROOT, capture_output=True)
    reference = load(tmp_path / "straight" / "mlp_N060_l2_t00.npz")
    out, rng, kills = tmp_path / "killed", np.random.default_rng(0), 0
    result = out / "mlp_N060_l2_t00.npz"
    for attempt in range(8):
        proc = subprocess.Popen(compute(one_model, out, "--resume", *extra), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 3.5))  # python + torch start-up takes ~2 s on 2 cores; a fast machine ends in ~6
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if result.exists():
            break
    if not result.exists():
        subprocess.run(compute(one_model, out, "--resume", *extra), check=True, cwd=ROOT, capture_output=True)
    assert kills >= 2, "the run finished before it could be killed twice; make it longer"
    resumed = load(result)
    np.testing.assert_array_equal(resumed.modes, reference.modes)
    np.testing.assert_array_equal(resumed.se, reference.se)
    if extra:
        from common import load_interactions
        pairs, straight = (load_interactions(folder / "mlp_N060_l2_t00_interactions.npz") for folder in
                           (out, tmp_path / "straight"))
        np.testing.assert_array_equal(pairs.modes, straight.modes)
        np.testing.assert_array_equal(pairs.se, straight.se)
    assert not (out / "mlp_N060_l2_t00.ckpt").exists()


# the signals' tests walk 3000 orderings; chain-kernel keeps them to seconds
CHAIN_KERNEL_3000 = ("--budget", "3000n", "--estimator", "chain-kernel")


@pytest.fixture(scope="module")
def straight_3000(one_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    subprocess.run(compute(one_model, out, *CHAIN_KERNEL_3000), check=True, cwd=ROOT, capture_output=True)
    return load(out / "mlp_N060_l2_t00.npz")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_alone_saves_the_state_and_the_resumed_run_is_bit_identical(one_model, straight_3000, tmp_path,
                                                                           signum, code):
    out = tmp_path / "interrupted"
    ckpt, result = out / "mlp_N060_l2_t00.ckpt", out / "mlp_N060_l2_t00.npz"
    argv = compute(one_model, out, *CHAIN_KERNEL_3000, "--checkpoint-every", "1e9")  # no periodic saves
    delay = 2.0  # after the model list: the walk starts about 0.3 s later and lasts about 4 s on a quiet machine
    for attempt in range(6):  # on a busy machine the signal may come before the walk, or after it: try again
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
        for line in proc.stdout:
            if "to compute" in line:  # the model loads next (a fraction of a second), then the walk starts
                break
        time.sleep(delay)
        assert not ckpt.exists()
        proc.send_signal(signum)
        output = proc.communicate(timeout=300)[0]
        done = None
        if ckpt.exists():
            with np.load(ckpt) as f:
                done = int(f["done"])
            if done > 0:
                break
        delay = delay / 2 if result.exists() else delay * 2  # too late: the walk had ended; too early: not begun
        for leftover in (result, ckpt, ckpt.with_name(ckpt.name + ".prev")):
            leftover.unlink(missing_ok=True)
    else:
        raise AssertionError(f"no signal landed inside the walk in 6 attempts; the last one printed:\n{output}")
    assert proc.returncode == code, output
    assert "Traceback" not in output and "run again with resume (--resume" in output, output
    assert 0 < done < 3000
    refused = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "--resume" in refused.stderr
    subprocess.run(argv + ["--resume"], check=True, cwd=ROOT, capture_output=True)
    resumed = load(out / "mlp_N060_l2_t00.npz")
    np.testing.assert_array_equal(resumed.modes, straight_3000.modes)
    np.testing.assert_array_equal(resumed.se, straight_3000.se)
    assert not ckpt.exists()


def test_checkpoint_files_stale_temporaries_links_and_permissions(tmp_path, monkeypatch):
    import os
    ckpt = tmp_path / "run.ckpt"
    stale = [tmp_path / "run.ckpt.abc123.tmp", tmp_path / "run.ckpt.prev.999.tmp"]
    for p in stale:  # what a run killed in the middle of a save leaves behind
        p.write_bytes(b"half a file")
    other = tmp_path / "unrelated.tmp"
    other.write_bytes(b"not ours")

    def no_links(*args):
        raise OSError("this file system has no hard links")
    monkeypatch.setattr(os, "link", no_links)
    shapley_modes(nonlinear_game, 9, Budget(orderings=6), seed=1, progress=False,
                  checkpoint=Checkpoint(ckpt, every=0, resume=True), compute=Compute(batch_size=9))
    assert not any(p.exists() for p in stale) and other.exists()  # ours cleaned at the start, others left
    assert (tmp_path / "run.ckpt.prev").exists()  # kept by a copy where links fail
    mask = os.umask(0o022)
    os.umask(mask)
    result = shapley_modes(nonlinear_game, 9, Budget(orderings=2), seed=1, progress=False)
    path = result.save(tmp_path / "result.npz")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # a normal file, not mkstemp's 0600
