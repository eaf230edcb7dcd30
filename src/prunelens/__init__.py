"""prunelens: which tokens of a reasoning chain does a language model actually need?

Three lines from a notebook::

    from prunelens import load_model, load_examples, prune_examples
    model = load_model()                                   # embedded SmolLM2-135M-Instruct
    prune_examples(model, load_examples("gsm-symbolic", limit=3), "runs/nb")
"""

from .data import Example, load_examples
from .layout import Layout, render
from .models import PrunerModel, load_model
from .pruning import PruneConfig, PruneResult, prune, prune_examples

__all__ = ["Example", "Layout", "PruneConfig", "PruneResult", "PrunerModel", "load_examples", "load_model",
           "prune", "prune_examples", "render"]
__version__ = "0.1.0"
