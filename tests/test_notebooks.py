"""The notebooks run top to bottom on tiny settings (nbclient), so they cannot rot."""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from prunelens.categories import annotate_run
from prunelens.pruning import prune_examples

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


@pytest.fixture(scope="module")
def nb_run(tiny_model, short_chains, tmp_path_factory):
    out = tmp_path_factory.mktemp("nb-run")
    prune_examples(tiny_model, short_chains[:4], out, method="greedy", show_progress=False)
    annotate_run(out)
    return out


def outputs(book) -> str:
    return "".join(o.get("text", "") for cell in book.cells if cell.cell_type == "code" for o in cell.outputs)


def test_quickstart(tiny_model):
    book = execute("quickstart.ipynb", {"PRUNELENS_NB_MODEL": str(tiny_model.path)})
    assert "first deleted:" in outputs(book) and "tokens ranked in" in outputs(book)


def test_figures_notebook(tiny_model, nb_run):
    book = execute("figures.ipynb", {"PRUNELENS_NB_RUN": str(nb_run), "PRUNELENS_NB_MODEL": str(tiny_model.path)})
    assert (nb_run / "figures" / "category_survival.png").exists()
    assert any(o.get("output_type") == "display_data" for cell in book.cells for o in cell.get("outputs", []))


def test_predictors_notebook(tiny_model, nb_run):
    from prunelens.features import features_run

    features_run(tiny_model, nb_run, show_progress=False)
    book = execute("predictors.ipynb", {"PRUNELENS_NB_RUN": str(nb_run)})
    assert "attention: Spearman" in outputs(book)
