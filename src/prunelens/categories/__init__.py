"""Six functional categories for reasoning tokens (docs/categories.md), offline and rule-based.

One module per job: ``lexicon`` (the word lists, read from ``lexicon.json``), ``rules`` (the tagger,
``RuleAnnotator``), ``annotate`` (the stage: a run's ``categories.parquet``), ``demo`` (the published
demo format, out and back in), ``gold`` (scoring an annotator on hand-labelled chains). The labels,
their display names and colours are the run's schema (``prunelens.schema``).
"""

from __future__ import annotations

from .annotate import Annotator, annotate_examples, annotate_run, categories_table
from .demo import DemoAnnotator, export_demo, import_demo
from .gold import evaluate, load_gold
from .rules import RuleAnnotator, question_entities, question_names, units

__all__ = ["Annotator", "DemoAnnotator", "RuleAnnotator", "annotate_examples", "annotate_run", "categories_table",
           "evaluate", "export_demo", "import_demo", "load_gold", "question_entities", "question_names", "units"]
