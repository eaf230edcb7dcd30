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
