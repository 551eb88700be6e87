"""Every command recipe in the READMEs runs as written, at its smallest size.

A recipe is a ```bash block of README.md, MLP/, LLM/ or DCGAN/README.md, or docs/*.md; its lines run in order,
in a copy of the repository, each with the smallest-size options of its script appended (argparse keeps the
last value). A line that needs what this machine lacks says so at its end (`# needs: a GPU`, `# needs: a
download`, `# needs: ~30 min`) and is skipped here, as are `make` (CI runs `make test`) and `pip install` lines.
"""
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *(ROOT / folder / "README.md" for folder in ("MLP", "LLM", "DCGAN")),
           *sorted((ROOT / "docs").glob("*.md"))]
SMALLEST = {  # appended to every run of the script: the recipe, at its smallest size
    "MLP/train.py": "--sizes 8 12 --trials 1 --epochs 1",
    "MLP/compute_msa.py": "--budget 4n --no-progress",
    "MLP/demo.py": "--sizes 8 12 --trials 1 --epochs 1 --budget 4n",
    "LLM/train_tiny_moe.py": "--steps 3 --layers 2 --experts 4 --hidden 32 --ffn 32",
    "LLM/compute_msa.py": "--budget 2n --items 1 --layers 0:2 --sizes tiny --no-progress",
    "LLM/removal_curves.py": "--limit 3 --ks 0,1",
    "DCGAN/train.py": "--max-steps 2 --batch-size 8 --n-fixed 4 --sample-every 1000",
    "DCGAN/compute_msa.py": "--budget 2n --n-images 2 --no-progress",
    "DCGAN/cluster.py": "--n-runs 2",
    "DCGAN/lesion_clusters.py": "--n-images 2",
    "DCGAN/demo.py": "--steps 2 --budget 2n --n-runs 2",
}


def recipes():
    found = []
    for readme in READMES:
        text = readme.read_text(encoding="utf-8")
        for k, block in enumerate(re.findall(r"```bash\n(.*?)```", text, re.S)):
            lines = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
            found.append(pytest.param(lines, id=f"{readme.relative_to(ROOT)}#{k}"))
    return found


def skipped(line: str) -> str | None:
    if line.startswith("make "):
        return "CI runs make test; make demo is the MLP demo, run at small size by tests/test_mlp.py"
    if line.startswith("pip "):
        return "installs packages"
    need = re.search(r"#\s*needs:\s*(.*)$", line)
    return f"needs {need.group(1)}" if need else None


def command(line: str) -> list[str]:
    words = shlex.split(line.split(" #")[0])
    if words[0] == ".venv/bin/python":
        script = words[1]
        return [sys.executable, *words[1:], *shlex.split(SMALLEST.get(script, ""))]
    if words[0] == ".venv/bin/papermill":
        return [sys.executable, "-m", "papermill", *words[1:], "--log-level", "WARNING"]
    raise AssertionError(f"a recipe line this test does not know how to run: {line}")


def test_every_readme_has_its_recipes_in_bash_blocks():
    """Each runs as written after the README's two set-up commands: with the virtual environment they make."""
    assert recipes(), "no recipes found"
    for param in recipes():
        for line in param.values[0]:
            assert line.startswith(("make ", "pip ")) or line.split()[0] in (".venv/bin/python", ".venv/bin/papermill"), line


PARSE_ONLY = """
import argparse, io, json, runpy, sys
from contextlib import redirect_stderr
def parse_only(self, args=None, namespace=None):
    known, unknown = self.parse_known_args(args, namespace)
    if unknown:
        self.error("unrecognized arguments: " + " ".join(unknown))
    raise SystemExit(77)  # parsed: stop before anything loads or runs
argparse.ArgumentParser.parse_args = parse_only
failed = []
for argv in json.loads(sys.argv[1]):
    sys.argv, said = argv, io.StringIO()
    try:
        with redirect_stderr(said):
            runpy.run_path(argv[0], run_name="__main__")
        failed.append([argv, "ran without parsing its command line"])
    except SystemExit as stop:
        if stop.code != 77:
            failed.append([argv, said.getvalue()[-1500:]])
print(json.dumps(failed))
"""


def test_every_recipe_line_parses_with_its_scripts_options():
    """Every python recipe line, those this machine skips (a GPU, a download) included: its script exists and
    takes its options, every value of the right type and among the choices."""
    lines = [line for param in recipes() for line in param.values[0] if line.startswith(".venv/bin/python ")]
    assert len(lines) >= 20
    argvs = []
    for line in lines:
        words = shlex.split(line.split(" #")[0])[1:]
        argvs.append([str(ROOT / (words[1].replace(".", "/") + ".py")), *words[2:]] if words[0] == "-m" else words)
    out = subprocess.run([sys.executable, "-c", PARSE_ONLY, json.dumps(argvs)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failed, "\n".join(f"{' '.join(argv)}: {said}" for argv, said in failed)


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The repository's files (as git sees them), so that recipes write into a copy, not into the checkout."""
    target = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.parametrize("lines", recipes())
def test_recipe_runs_as_written(lines, copy):
    env = {**__import__("os").environ, "PYTHONPATH": str(copy), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "TQDM_DISABLE": "1"}
    ran = 0
    for line in lines:
        if skipped(line):
            continue
        out = subprocess.run(command(line), cwd=copy, env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"{line}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
        ran += 1
    if ran == 0:
        pytest.skip("every line of this recipe needs what this machine lacks: " + "; ".join(
            filter(None, map(skipped, lines))))


def python_examples():
    """The ```python blocks of the docs that continue the README's ten-line example (a line `# needs: ...` marks one
    that needs what this machine lacks, e.g. a Ray cluster)."""
    found = []
    for doc in READMES[1:]:
        for k, block in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
            need = re.search(r"#\s*needs:\s*(.*)$", block, re.M)
            marks = [pytest.mark.skip(reason=f"needs {need.group(1)}")] if need else []
            found.append(pytest.param(block, id=f"{doc.relative_to(ROOT)}#{k}", marks=marks))
    return found


def run_python(code: str, folder: Path):
    return subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"})


def ten_lines() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1, "the README holds one python example, the engine in ten lines"
    return blocks[0]


def test_the_readme_python_example_runs_unchanged(tmp_path):
    out = run_python(ten_lines() + "\nassert result.modes.shape == (64, 5)\n", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "modes.npz").exists()


@pytest.mark.parametrize("block", python_examples())
def test_the_docs_python_examples_continue_it(block, tmp_path, monkeypatch):
    """Each runs after the ten lines (at 1,000 evaluations there), at a smaller SPEX budget than printed. In this
    process, not a new one: SPEX's kernels compile once a process (about 25 s), shared with tests/test_spex.py."""
    monkeypatch.chdir(tmp_path)
    first = ten_lines().replace("10_000", "1_000")
    exec(compile(first + block.replace("budget=8000", "budget=2000"), "<docs example>", "exec"), {})
