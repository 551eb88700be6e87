"""Run a figure notebook headless with papermill: its cell tagged `parameters` takes the values given here.

    python -c "from common.notebooks import run_notebook; run_notebook('dcgan_figures', 'out.ipynb', RUN_DIR='DCGAN/runs/demo')"
is the same as `papermill notebooks/dcgan_figures.ipynb out.ipynb -p RUN_DIR DCGAN/runs/demo`.
"""
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, out_path, timeout: int = 600, **parameters):
    """Execute notebooks/<name>.ipynb with `parameters` into `out_path`; returns the executed notebook.

    Paths among the parameters may be absolute or relative to the repository root. A failing cell raises
    papermill's PapermillExecutionError naming the cell and the error; the partly executed notebook is still
    written to `out_path` for inspection."""
    try:
        import papermill
    except ImportError as error:
        raise SystemExit("executing a figure notebook needs papermill: pip install -e '.[dev]'") from error
    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"no notebook {source}")
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    parameters = {k: str(v) if isinstance(v, Path) else v for k, v in parameters.items()}
    return papermill.execute_notebook(str(source), str(out_path), parameters=parameters, kernel_name="python3",
                                      cwd=str(NOTEBOOKS.parent), progress_bar=False, execution_timeout=timeout)
