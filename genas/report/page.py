"""One self-contained HTML page of a study report: inline CSS, images as data URIs, no scripts."""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from genas.report.ablation import fmt
from genas.report.labels import detail, generation_label, images_label, parent_label

if TYPE_CHECKING:
    from genas.report import ReportParts

FIGURE_TITLES = {"lineage": "Growth tree", "optimization_history": "Optimisation history",
                 "param_importances": "Parameter importances", "pareto_front": "Pareto front"}
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.champion{background:#fff4cc}img{max-width:100%;image-rendering:pixelated}
.grids{display:flex;gap:1.5em;flex-wrap:wrap}.grids figure{margin:0}.grids img{width:260px}figcaption{font-size:13px}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render(parts: "ReportParts", limit: int = 50) -> str:
    spec = parts.spec
    esc = html.escape
    counts = ", ".join(f"{n} {s}" for s, n in _state_counts(parts).items() if n)
    rows = []
    for rank, t in enumerate(parts.ranked[:limit], 1):
        values = "".join(f'<td class="num">{v:.3f}</td>' for v in t.values)
        duration = f"{t.duration.total_seconds():.0f}s" if t.duration else "-"
        css = ' class="champion"' if t.number == parts.champion else ""
        rows.append(f"<tr{css}><td>{rank}</td><td>{t.number}</td>{values}<td class=num>{esc(images_label(t))}</td>"
                    f"<td class=num>{esc(generation_label(t))}</td><td>{esc(parent_label(t))}</td>"
                    f"<td>{esc(detail(t))}</td><td class=num>{duration}</td>"
                    f"<td>{esc(str(t.user_attrs.get('mlflow_run_id', '')))}</td></tr>")
    head = "".join(f"<th>{esc(o)}</th>" for o in spec.objectives)
    figures = "".join(f"<h2>{FIGURE_TITLES.get(name, name)}</h2>{_img(png, name)}"
                      for name, png in parts.figures.items())
    grids = "".join(f"<figure>{_img(png, f'trial {n}')}<figcaption>trial {n}"
                    f"{' (champion)' if n == parts.champion else ''}</figcaption></figure>"
                    for n, png in parts.samples.items())
    failed = [t for t in parts.trials if t.state.name == "FAIL" and "fail_reason" in t.user_attrs]
    failures = "".join(f"<li>trial {t.number}: {esc(str(t.user_attrs['fail_reason'])[:300])}</li>" for t in failed)
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>genas report: {esc(parts.study)}</title><style>{STYLE}</style></head><body>
<h1>genas study <code>{esc(parts.study)}</code></h1>
<p>{esc(spec.space)} on {esc(spec.dataset)}, budget {esc(spec.budget)}, {esc(_goals(parts))};
sampler {esc(spec.sampler)}, pruner {esc(spec.pruner)}. Trials: {esc(counts or 'none')}.
Champion: {f'trial {parts.champion}' if parts.champion is not None else 'none yet'}.
Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.</p>
<h2>Leaderboard</h2>
<table><tr><th>rank</th><th>trial</th>{head}<th>images</th><th>gen</th><th>parent</th><th>action / params</th><th>duration</th>
<th>MLflow run</th></tr>{''.join(rows)}</table>
{_baseline(parts)}
<h2>Best sample grids</h2><div class="grids">{grids or '<p>none yet</p>'}</div>
{_switch_table(parts)}
{figures}
{f'<h2>Failed trials</h2><ul>{failures}</ul>' if failures else ''}
</body></html>
"""


def _baseline(parts: "ReportParts") -> str:
    """The champion beside the textbook DCGAN trained on the same images (search/baseline.py)."""
    b = parts.baseline
    if not b:
        return ""
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(name)}</td><td class=num>{b['champion_values'][name]:.3f}</td>"
                   f"<td class=num>{value:.3f}</td></tr>" for name, value in b["values"].items())
    champion_grid = parts.samples.get(b["champion"])
    grids = "".join(f"<figure>{_img(png, label)}<figcaption>{esc(label)}</figcaption></figure>"
                    for png, label in ((champion_grid, f"champion, trial {b['champion']}"),
                                       (parts.baseline_grid, "dcgan, the paper's configuration")) if png)
    return (f"<h2>Against the no-search baseline</h2><p>The textbook DCGAN (Radford et al. 2016, the paper's "
            f"configuration, nothing searched) trained on the same dataset with {b.get('images') or 0:,} images "
            f"(the champion's: {b.get('champion_images') or 0:,}); study <code>{esc(b['study'])}</code>.</p>"
            f"<table><tr><th>metric</th><th>champion</th><th>dcgan</th></tr>{rows}</table>"
            f"<div class=grids>{grids}</div>")


def _goals(parts: "ReportParts") -> str:
    directions = parts.directions or ["minimize"] * len(parts.spec.objectives)
    return ", ".join(f"{d[:3]}imise {o}" for o, d in zip(parts.spec.objectives, directions))


def _switch_table(parts: "ReportParts") -> str:
    if not parts.switches:
        return ""
    rows = "".join(f"<tr><td>{html.escape(e.param)}</td><td class=num>{e.on_count}</td><td class=num>{fmt(e.on_mean)}</td>"
                   f"<td class=num>{fmt(e.on_best)}</td><td class=num>{e.off_count}</td><td class=num>{fmt(e.off_mean)}</td>"
                   f"<td class=num>{fmt(e.off_best)}</td><td class=num>{fmt(e.gain)}</td></tr>" for e in parts.switches)
    return (f"<h2>Modules on / off</h2><p>Complete trials, {html.escape(parts.spec.objectives[0])}; "
            "gain &gt; 0: the module helped.</p><table><tr><th>module</th><th>on: n</th><th>on: mean</th>"
            "<th>on: best</th><th>off: n</th><th>off: mean</th><th>off: best</th><th>gain</th></tr>"
            f"{rows}</table>")


def _state_counts(parts: "ReportParts") -> dict[str, int]:
    out: dict[str, int] = {}
    for t in parts.trials:
        out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
    return out


def write_html(parts: "ReportParts", path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(parts), encoding="utf-8")
    tmp.replace(path)
    return path
