"""Optional extras: a script that needs one says which, with the command that installs it, before it starts."""
from importlib.util import find_spec

EXTRAS = {"llm": ("transformers", "tokenizers", "accelerate", "Levenshtein"),
          "dcgan": ("networkx", "community"),
          "dist": ("ray",),
          "interactions": ("spectralexplain",)}


def require_extra(extra: str) -> None:
    """SystemExit naming the missing packages and `pip install -e '.[extra]'` when the extra is not installed."""
    missing = [name for name in EXTRAS[extra] if find_spec(name) is None]
    if missing:
        raise SystemExit(f"this needs the optional '{extra}' packages ({', '.join(missing)} missing); install them "
                         f"from the repository root with: pip install -e '.[{extra}]'")
