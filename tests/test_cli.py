"""The command line checks its arguments before it loads a model, and imports nothing heavy for --help."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from prunelens.cli import main

NO_MODEL = "/no/such/model"  # were any of these cases to load a model, the error would name this path


def test_help_and_package_import_load_no_heavy_library():
    code = ("import sys, prunelens, prunelens.pruning, prunelens.cli; prunelens.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'sklearn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize("case, message", [
    (["--data", "gsm8k:{tmp}"], "is a directory, not a data file"),
    (["--data", "jsonl:{tmp}/empty.jsonl"], "has no examples: it is empty"),
    (["--limit", "0"], "--limit 0: give a positive number"),
    (["--limit", "-3"], "--limit -3: give a positive number"),
    (["--max-tokens", "0"], "--max-tokens 0: give a positive number"),
    (["--keep-ratio", "1.5"], "keep ratio 1.5"),
    (["--shard", "3/2"], "shard '3/2' is not i/n"),
    (["--out", "{tmp}/empty.jsonl"], "is a file, not a directory"),
    (["--fast-share", "0"], "fast_share 0.0"),
    (["--segment-tokens", "0"], "segment_tokens 0"),
    (["--method", "learned", "--passes", "0"], "passes 0 is not a positive number"),
    (["--method", "import"], "--method import needs --compressed FILE"),
    (["--method", "import", "--compressed", "{tmp}/empty.jsonl"], "no compressed chains in the file"),
    (["--method", "learned", "--pruner", "{tmp}"], "is not a pruner"),
    (["--method", "random", "--pruner", "{tmp}"], "pruner is for --method learned"),
    (["--ray-workers", "2"], "--ray-workers needs --ray ADDRESS"),
    (["--ray", "local", "--ray-workers", "0"], "--ray-workers 0 is not a positive number"),
    (["--ray", "local", "--shard", "0/2"], "--shard and --ray do not mix"),
    (["--ray", "local"], "model path /no/such/model does not exist"),  # before the cluster starts
])
def test_prune_arguments_are_checked_before_the_model_loads(tmp_path, capsys, case, message):
    (tmp_path / "empty.jsonl").write_text("")
    args = [a.format(tmp=tmp_path) for a in case]
    for flag, value in (("--data", "gsm-symbolic"), ("--out", str(tmp_path / "run"))):
        if flag not in args:
            args += [flag, value]
    assert main(["prune", "--model", NO_MODEL, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and (NO_MODEL not in err[0] or NO_MODEL in message), err
    assert not (tmp_path / "run" / "prune.json").exists()  # nothing written
    if "--ray" in case:
        import ray

        assert not ray.is_initialized()  # and no cluster started


def test_distill_cluster_arguments_are_checked_before_anything_starts(tmp_path, capsys):
    assert main(["distill", "--run", f"x={tmp_path}", "--eval", "e=gsm-symbolic", "--ray", "local",
                 "--ray-workers", "0", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ray-workers 0 is not a positive number" in err[0], err


@pytest.mark.parametrize("flag, cpu_bf16", [([], False), (["--cpu-bf16"], True)])
def test_distill_passes_cpu_bf16_to_the_config(tmp_path, monkeypatch, flag, cpu_bf16):
    import prunelens.distill

    given = {}

    def caught(runs, out, config, **kwargs):
        given["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(prunelens.distill, "distill", caught)
    with pytest.raises(SystemExit):
        main(["distill", "--run", f"x={tmp_path}", "--eval", "e=gsm-symbolic", *flag, "--out", str(tmp_path / "d")])
    assert given["config"].cpu_bf16 is cpu_bf16


@pytest.mark.parametrize("args, said", [
    (["dynamic", "RUN", "--keeps", "1,half"], "--keeps '1,half' is not comma-separated numbers"),
    (["features", "RUN", "--layers", "0,x"], "--layers '0,x' is not comma-separated whole numbers"),
    (["features", "RUN", "--at-keep", "0.5,"], "--at-keep '0.5,' is not comma-separated numbers"),
    (["distill", "--run", "x=RUN", "--eval", "e=gsm-symbolic", "--seeds", "0,1.5", "--out", "OUT"],
     "--seeds '0,1.5' is not comma-separated whole numbers")])
def test_number_lists_name_their_option(tmp_path, capsys, args, said):
    args = [str(tmp_path / a) if a in ("RUN", "OUT") else a for a in args]
    assert main([*args, "--model", NO_MODEL] if args[0] != "distill" else args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err


def test_output_paths_of_the_wrong_kind(tmp_path, capsys):
    assert main(["view", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "is a directory, not a file" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["figures", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def _import_graph() -> dict[str, set[str]]:
    """Every import between prunelens modules, at any depth of the code (inside functions too), but not
    those under ``if TYPE_CHECKING:``, which never run."""
    import ast
    from pathlib import Path

    import prunelens

    root = Path(prunelens.__file__).parent
    graph = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(node)}
        edges = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                edges.add(target)
                edges.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prunelens"):
                edges.add(node.module)
                edges.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.startswith("prunelens"))
        graph[name] = edges
    return {k: {e for e in v if e in graph and e != k} for k, v in graph.items()}


def test_no_import_cycle_anywhere_in_the_package():
    """No two prunelens modules import each other, directly or through others, function-level imports
    included (a package's __init__ and its own modules aside: the __init__ only re-exports them)."""
    graph = _import_graph()
    for name, edges in graph.items():  # a package's __init__ importing its modules is the package itself
        graph[name] = {e for e in edges if not (e.startswith(name + ".") and name in {k.rsplit(".", 1)[0] for k in graph})}

    def visit(node, trail):
        assert node not in trail, " -> ".join(trail + [node])
        for nxt in graph[node]:
            visit(nxt, trail + [node])

    for module in graph:
        visit(module, [])


def test_pruning_imports_no_study_module():
    """Pruning, the first stage, imports no later one: not the study (analysis, categories, figures,
    viewer), not dynamic, features or distill."""
    later = ("prunelens.analysis", "prunelens.categories", "prunelens.figures", "prunelens.viewer",
             "prunelens.dynamic", "prunelens.features", "prunelens.distill", "prunelens.run", "prunelens.cli")
    for name, edges in _import_graph().items():
        if name.startswith("prunelens.pruning"):
            assert not [e for e in edges if e.startswith(later)], (name, sorted(e for e in edges if e.startswith(later)))


def test_merge_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["merge", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_a_model_path_that_does_not_exist_is_named(capsys):
    assert main(["info", "--model", "does/not/exist"]) == 2
    err = capsys.readouterr().err
    assert "model path does/not/exist does not exist" in err and "smollm2-135m" in err


def test_skipped_lines_are_counted_once_and_a_limit_reads_no_further(tiny_model, short_chains, tmp_path, capsys):
    import json

    good = short_chains[0]
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"id": "good", "question": good.question, "reasoning": good.reasoning,
                                "answer": good.answer}) + "\n" + '{"id": "bad"}\n')
    common = ["prune", "--model", str(tiny_model.path), "--data", f"jsonl:{data}", "--method", "truncate"]
    assert main([*common, "--limit", "1", "--out", str(tmp_path / "one")]) == 0  # line 2 is never read
    assert main([*common, "--skip-bad", "--out", str(tmp_path / "all")]) == 0
    err, out = capsys.readouterr()[::-1]
    assert "1 skipped" in out.splitlines()[-1] and "line 2: missing field 'question'" in err


def test_annotate_on_an_empty_data_file_is_one_line(tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    args = ["annotate", "--model", NO_MODEL, "--data", f"jsonl:{tmp_path}/empty.jsonl", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no examples: it is empty" in err[0]


def test_shards_take_their_share_of_the_cores(monkeypatch):
    import os

    import torch

    from prunelens.ops import set_threads

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    try:
        set_threads(None, shard="1/4")
        assert torch.get_num_threads() == 2
        set_threads(3, shard="1/4")  # --threads overrides
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_cli_agree_between_runs(full_run, tmp_path):
    from prunelens.cli import main

    assert main(["agree", str(full_run["greedy"]), str(full_run["greedy"]), "--out", str(tmp_path / "same.csv")]) == 0
    same = pd.read_csv(tmp_path / "same.csv")
    assert len(same) == 6 and np.allclose(same.spearman, 1) and (same.same_first == same.n_reasoning).all()
    assert main(["agree", str(full_run["greedy"]), str(full_run["random"]), "--out", str(tmp_path / "rnd.csv")]) == 0
    assert pd.read_csv(tmp_path / "rnd.csv").spearman.mean() < 0.9


def test_cli_help_for_every_subcommand():
    for command in ("info", "prune", "features", "annotate", "analyze", "agree", "figures", "view", "demo", "merge"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage: prunelens" in result.stdout, command
@pytest.mark.slow  # end to end: the fast lane has its parts
def test_cli_info_and_one_line_errors(tmp_path):
    info = run_cli("info")
    assert info.returncode == 0
    fields = dict(line.split(None, 1) for line in info.stdout.strip().splitlines())
    assert (fields["layers"], fields["heads"], fields["d_model"]) == ("30", "9", "576")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "q"}\n')
    result = run_cli("prune", "--data", f"jsonl:{bad}", "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        f"prunelens prune: error: {bad}, line 1: missing field 'reasoning'"
    missing = run_cli("analyze", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "run `prunelens prune` first" in missing.stderr
    assert "Traceback" not in result.stderr + missing.stderr


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "prunelens.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)
