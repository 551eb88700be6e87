"""The repository's structure: `import common` is light, no two modules import each other, `common` imports no
experiment, and the experiments do not import each other."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "MLP", "LLM", "DCGAN")


def test_import_common_loads_neither_torch_nor_msapy():
    code = ("import sys, common; from common import shapley_modes, interaction_modes, SAMPLERS; "
            "print(sorted(m for m in ('torch', 'msapy', 'ray', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def imports() -> dict:
    """{module: set of the repository's modules it imports}."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    edges = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for alias in node.names:
                    target = next((t for t in (f"{base}.{alias.name}", base) if t in modules), None)
                    if target and target != name:
                        edges[name].add(target)
            elif isinstance(node, ast.Import):
                edges[name] |= {a.name for a in node.names if a.name in modules and a.name != name}
    return edges


def test_no_two_modules_import_each_other_and_the_layers_hold():
    edges = imports()
    mutual = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    assert mutual == []
    top = lambda m: m.split(".")[0]  # noqa: E731
    assert [(a, b) for a in edges for b in edges[a] if top(a) == "common" and top(b) != "common"] == []
    crossing = [(a, b) for a in edges for b in edges[a] if top(a) != "common" and top(b) not in ("common", top(a))]
    assert crossing == []
