"""The growth tree of a study as a picture: each node a trial, each edge the action that grew it.

The layout is a plain tidy tree: leaves take consecutive columns, a parent sits over the middle
of its children, depth goes down. Only the trials that carry a ``parent`` user attr (growth
spaces) are drawn.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from genas.search.beam import ACTION_ATTR, PARENT_ATTR
from genas.spaces.base import Space

STATE_COLOURS = {TrialState.COMPLETE: "#dbe9f6", TrialState.FAIL: "#f4cccc", TrialState.PRUNED: "#eeeeee",
                 TrialState.RUNNING: "#fff2cc", TrialState.WAITING: "#fff2cc"}
CHAMPION_COLOUR = "#f6c744"


@dataclass
class Node:
    trial: FrozenTrial
    parent: int | None
    children: list[int]
    x: float = 0.0
    depth: int = 0


def lineage_nodes(trials: list[FrozenTrial]) -> dict[int, Node]:
    """Nodes keyed by trial number, with tidy-tree coordinates filled in."""
    nodes = {t.number: Node(t, t.user_attrs.get(PARENT_ATTR), []) for t in trials if PARENT_ATTR in t.user_attrs}
    for number, node in nodes.items():
        if node.parent is not None and node.parent in nodes:
            nodes[node.parent].children.append(number)
    next_leaf = [0.0]

    def place(number: int, depth: int) -> float:
        node = nodes[number]
        node.depth = depth
        if node.children:
            xs = [place(c, depth + 1) for c in sorted(node.children)]
            node.x = (xs[0] + xs[-1]) / 2
        else:
            node.x = next_leaf[0]
            next_leaf[0] += 1
        return node.x

    for number in sorted(n for n, node in nodes.items() if node.parent is None or node.parent not in nodes):
        place(number, 0)
    return nodes


def draw_lineage(trials: list[FrozenTrial], space: Space, objective: str, champion: int | None) -> bytes | None:
    """PNG bytes of the growth tree, or None when the study has no lineage (not a growth space)."""
    nodes = lineage_nodes(trials)
    if not nodes:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(node.x for node in nodes.values()) + 1
    depth = max(node.depth for node in nodes.values()) + 1
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * width), max(3.0, 1.5 * depth)))
    for node in nodes.values():
        if node.parent in nodes:
            parent = nodes[node.parent]
            ax.plot([parent.x, node.x], [-parent.depth, -node.depth], color="#999999", lw=1, zorder=1)
            ax.text((parent.x + node.x) / 2, -(parent.depth + node.depth) / 2,
                    _short_action(node.trial.user_attrs.get(ACTION_ATTR, "")), fontsize=6, color="#555555",
                    ha="center", va="center", zorder=3, bbox={"fc": "white", "ec": "none", "pad": 0.5})
    for number, node in nodes.items():
        t = node.trial
        arch = t.user_attrs.get("arch")
        summary = space.arch_summary(arch) if arch else t.state.name.lower()
        score = f"{objective} {t.values[0]:.1f}" if t.values else ""
        colour = CHAMPION_COLOUR if number == champion else STATE_COLOURS.get(t.state, "#ffffff")
        label = f"#{number}{' ★' if number == champion else ''}\n{summary}\n{score}".strip()
        ax.text(node.x, -node.depth, label, ha="center", va="center", fontsize=7, zorder=4,
                bbox={"boxstyle": "round,pad=0.35", "fc": colour, "ec": "#333333", "lw": 0.6})
    ax.set_xlim(-0.7, width - 0.3)
    ax.set_ylim(-depth + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(f"growth tree ({len(nodes)} trials; ★ champion; edges: the action that grew the child)", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _short_action(label: str) -> str:
    """``grow G+D 8→16 32ch 3×3`` → ``grow 8→16``; ``G +conv 32ch 3×3 @16`` → ``G +32ch 3×3``."""
    words = label.split()
    if not words:
        return ""
    if words[0] == "grow" and len(words) > 2:
        return f"grow {words[2]}"
    if len(words) >= 4 and words[1] == "+conv":
        return f"{words[0]} +{words[2]} {words[3]}"
    return label
