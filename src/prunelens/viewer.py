"""One self-contained HTML page to step through a run's pruning: no network, no server.

Pick an example, move the slider over deletion steps: tokens keep their category colour until
deleted, then turn grey and struck through; the answer the chain leads to stays below it, and a
curve shows the objective (mean log-probability) after each deletion, marked at the current step.
Hovering a token shows its deletion step, category and top features. The data sits in the page as
JSON.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .schema import DISPLAY, EXAMPLES, HEADLINE_FEATURE, LABELS, colour, load_tokens, read_table
from .store import write_text

HOVER_FEATURES = (HEADLINE_FEATURE, "attn_later.mean", "surprisal", "drop_first")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prunelens: __TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; max-width: 60em; color: #222; }
#chain { font-family: ui-monospace, monospace; line-height: 2; white-space: pre-wrap; border: 1px solid #ddd; padding: 1em; }
.tok { border-radius: 3px; padding: 0 1px; }
.tok.deleted { background: #e4e4e4 !important; color: #aaa; text-decoration: line-through; }
#legend span { display: inline-block; padding: 0 .5em; margin-right: .4em; border-radius: 3px; }
#controls { margin: 1em 0; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
#step { width: 28em; }
.q { color: #555; margin-bottom: .5em; }
#answer { margin: .5em 0; font-family: ui-monospace, monospace; }
#curve { border: 1px solid #ddd; margin-top: .5em; }
#curve text { font-size: 11px; fill: #555; }
</style></head>
<body>
<h2>__TITLE__</h2>
<div id="legend">__LEGEND__</div>
<div id="controls">
  <label>example <select id="example"></select></label>
  <label>step <input type="range" id="step" min="0" value="0"></label>
  <span id="status"></span>
</div>
<div class="q" id="question"></div>
<div id="chain"></div>
<div id="answer"></div>
<svg id="curve" width="640" height="150" role="img" aria-label="objective after each deletion"></svg>
<script id="data" type="application/json">__DATA__</script>
<script>
const DATA = JSON.parse(document.getElementById("data").textContent);
const COLOURS = __COLOURS__;
const pick = document.getElementById("example"), slider = document.getElementById("step");
DATA.examples.forEach((ex, i) => { const o = document.createElement("option"); o.value = i; o.textContent = ex.id; pick.appendChild(o); });
function draw() {
  const ex = DATA.examples[pick.value], step = Number(slider.value);
  slider.max = ex.order.length;
  document.getElementById("question").textContent = ex.question;
  const chain = document.getElementById("chain");
  chain.replaceChildren();
  ex.tokens.forEach(t => {
    const s = document.createElement("span");
    s.className = "tok" + (t.step !== null && t.step <= step ? " deleted" : "");
    s.style.background = COLOURS[t.category] || "#ddd";
    s.textContent = t.text;
    s.title = `position ${t.position} | deleted at step ${t.step === null ? "never" : t.step} of ${ex.tokens.length}` +
      ` | ${t.display}` + Object.entries(t.features).map(([k, v]) => ` | ${k} ${v}`).join("");
    s.dataset.position = t.position;
    chain.appendChild(s);
  });
  document.getElementById("answer").textContent = "Answer: " + ex.answer;
  drawCurve(ex, step);
  const kept = ex.tokens.filter(t => !(t.step !== null && t.step <= step)).length;
  const objective = ex.trajectory[Math.min(step, ex.trajectory.length - 1)];
  document.getElementById("status").textContent =
    `step ${step} / ${ex.order.length}: ${kept} of ${ex.tokens.length} tokens kept, objective ` +
    (objective === null ? "not scored at this step (grid trajectory)" : objective.toFixed(3));
}
function drawCurve(ex, step) {
  // the objective after each deletion (scored states only), the current step marked
  const svg = document.getElementById("curve"), W = 640, H = 150, L = 48, R = 10, T = 18, B = 26;
  const pts = ex.trajectory.map((v, i) => [i, v]).filter(([, v]) => v !== null);
  svg.replaceChildren();
  if (!pts.length) return;
  const lo = Math.min(...pts.map(([, v]) => v)), hi = Math.max(...pts.map(([, v]) => v)) || lo + 1;
  const n = Math.max(1, ex.trajectory.length - 1);
  const x = i => L + (W - L - R) * i / n, y = v => T + (H - T - B) * (hi - v) / ((hi - lo) || 1);
  const add = (tag, attrs, text) => { const e = document.createElementNS(svg.namespaceURI, tag);
    Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v)); if (text) e.textContent = text; svg.appendChild(e); return e; };
  add("polyline", {points: pts.map(([i, v]) => `${x(i)},${y(v)}`).join(" "), fill: "none", stroke: "#36c", "stroke-width": 1.5});
  const now = pts.filter(([i]) => i <= step).pop();
  if (now) add("circle", {cx: x(now[0]), cy: y(now[1]), r: 4, fill: "#c33"});
  add("text", {x: 4, y: 12}, "objective (mean log-prob) after each deletion");
  add("text", {x: 4, y: y(hi) + 4}, hi.toFixed(2));
  add("text", {x: 4, y: y(lo) + 4}, lo.toFixed(2));
  add("text", {x: L, y: H - 6}, "step 0");
  add("text", {x: W - R - 50, y: H - 6}, `step ${n}`);
}
pick.addEventListener("change", () => { slider.value = 0; draw(); });
slider.addEventListener("input", draw);
draw();
</script></body></html>
"""


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 4)


def viewer_data(run: str | Path) -> dict:
    """The JSON the page embeds: per example its question, tokens, order and trajectory."""
    tokens = load_tokens(run)
    examples = read_table(run, EXAMPLES)
    out = []
    for ex in examples.itertuples():
        rows = tokens[tokens.example_id == ex.example_id].sort_values("position")
        items = []
        for row in rows.to_dict("records"):
            category = row.get("category") if isinstance(row.get("category"), str) else None
            items.append({"position": int(row["position"]), "text": row["token_text"],
                          "step": None if pd.isna(row["deleted_step"]) else int(row["deleted_step"]),
                          "category": category, "display": DISPLAY.get(category, "no category"),
                          "features": {k: _number(row[k]) for k in HOVER_FEATURES if k in row and _number(row[k]) is not None}})
        out.append({"id": ex.example_id, "question": ex.question, "answer": ex.answer, "tokens": items,
                    "order": [int(x) for x in ex.order], "trajectory": [_number(x) for x in np.asarray(ex.objective_trajectory)]})
    return {"model": examples.model.iloc[0], "method": examples.method.iloc[0], "examples": out}


def write_viewer(run: str | Path, path: str | Path) -> Path:
    """Write the viewer page for ``run`` to ``path``."""
    data = viewer_data(run)
    title = html.escape(f"{data['model']}, {data['method']}: {len(data['examples'])} chains")
    legend = "".join(f'<span style="background:{colour(c)}">{DISPLAY[c]}</span>' for c in LABELS)
    page = (PAGE.replace("__TITLE__", title).replace("__LEGEND__", legend)
            .replace("__COLOURS__", json.dumps({c: colour(c) for c in LABELS}))
            .replace("__DATA__", json.dumps(data).replace("</", "<\\/")))
    return write_text(page, Path(path))
