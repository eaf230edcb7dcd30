"""The notebooks run top to bottom on tiny settings (nbclient), so they cannot rot."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, env: dict[str, str]) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(book, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return book


def outputs(book) -> str:
    return "".join(o.get("text", "") for cell in book.cells if cell.cell_type == "code" for o in cell.outputs)


def test_quickstart(tiny_model, tmp_path):
    book = execute("quickstart.ipynb", {"PRUNELENS_NB_MODEL": str(tiny_model.path), "PRUNELENS_NB_DIR": str(tmp_path)})
    assert "first deleted:" in outputs(book) and "tokens ranked in" in outputs(book)
    from prunelens import Run

    tokens = Run(tmp_path).tokens()  # the run the notebook made: order, features and categories in one table
    assert tokens.example_id.nunique() == 2 and {"rank_norm", "attn_answer.mean", "category"} <= set(tokens.columns)


def test_figures_notebook_builds_the_run_it_needs(tiny_model, tmp_path):
    run = tmp_path / "fresh"  # no run yet, as on a fresh clone without `make demo`
    book = execute("figures.ipynb", {"PRUNELENS_NB_RUN": str(run), "PRUNELENS_NB_MODEL": str(tiny_model.path)})
    assert (run / "features.parquet").exists() and (run / "figures" / "category_survival.png").exists()
    assert any(o.get("output_type") == "display_data" for cell in book.cells for o in cell.get("outputs", []))
    streams = "".join(o.get("text", "") for c in book.cells if c.cell_type == "code" for o in c.outputs)
    assert "IProgress" not in streams and "prune greedy" not in streams and "features:" not in streams


def test_predictors_notebook_builds_the_run_it_needs(tiny_model, tmp_path):
    run = tmp_path / "fresh"
    book = execute("predictors.ipynb", {"PRUNELENS_NB_RUN": str(run), "PRUNELENS_NB_MODEL": str(tiny_model.path)})
    assert "attention: Spearman" in outputs(book)


def test_distill_notebook_trains_and_evaluates(tiny_model, tmp_path):
    book = execute("distill.ipynb", {"PRUNELENS_NB_MODEL": str(tiny_model.path), "PRUNELENS_NB_DIR": str(tmp_path),
                                     "PRUNELENS_NB_CHAINS": "3", "PRUNELENS_NB_EVAL": "2"})
    assert "3 chains pruned" in outputs(book) and "answer-only: ''" in outputs(book)
    assert (tmp_path / "students" / "results.csv").exists()
    assert any("image/png" in o.get("data", {}) for cell in book.cells for o in cell.get("outputs", []))
