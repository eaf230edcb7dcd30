"""Every stage in order for one set of examples: prune, features, categories, analysis, figures, viewer.

``run_pipeline`` is what ``prunelens demo`` runs; each step skips work already on disk, so an
interrupted pipeline resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from .analysis import analyze, headline
from .categories import annotate_run
from .features import features_run
from .figures import make_figures
from .pruning import prune_examples
from .schema import CATEGORIES, EXAMPLES, FEATURES
from .viewer import write_viewer


def run_pipeline(model, examples, out: str | Path, method: str = "greedy", objective: str = "reason-answer",
                 seed: int = 0, show_progress: bool = True) -> dict[str, object]:
    """Run every stage into ``out``; return where things are and the headline numbers."""
    out = Path(out)
    prune_examples(model, examples, out, method=method, objective=objective, seed=seed, show_progress=show_progress)
    features_run(model, out, show_progress=show_progress)
    annotate_run(out)
    tables = analyze(out, show_progress=show_progress)
    figures = make_figures(out, out / "figures")
    viewer = write_viewer(out, out / "viewer.html")
    return {"run": out, "analysis": out / "analysis", "figures": out / "figures", "viewer": viewer,
            "n_figures": len(figures), "headline": headline(tables)}


def ensure_run(run: str | Path, model_name: str = "smollm2-135m", limit: int = 4, max_tokens: int = 40,
               show_progress: bool = False) -> Path:
    """A run with features and categories at ``run``; when none exists, a small one is built there.

    The small run: ``limit`` GSM-Symbolic chains of at most ``max_tokens`` reasoning tokens, pruned
    by exact greedy with ``model_name`` (a few minutes on a CPU with the embedded model). Notebooks
    call this so they work on a fresh clone; ``make demo`` makes a bigger run.
    """
    from .data import load_examples
    from .layout import select_short
    from .models import load_model

    run = Path(run)
    model = None
    if not (run / f"{EXAMPLES}.parquet").exists():
        model = load_model(model_name)
        examples = select_short(load_examples("gsm-symbolic", 50 * limit), model.tokenizer, max_tokens, limit)
        prune_examples(model, examples, run, show_progress=show_progress)
    if not (run / f"{FEATURES}.parquet").exists():
        features_run(model or load_model(model_name), run, show_progress=show_progress)
    if not (run / f"{CATEGORIES}.parquet").exists():
        annotate_run(run)
    return run
