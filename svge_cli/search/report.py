"""What `svge bo` shows a user: the live line, per-round lines of the latent BO, and the tables.

Pure functions from a run's summary (`runner.summarize`) to text and rich tables, so the
command stays a thin Click layer and these read the same in tests as on a terminal.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from svge_cli.console import simple_table


def short(x: float | None) -> str:
    """Scores in a few digits whatever their scale (accuracies, or proxies such as synflow's 1e36)."""
    return "-" if x is None else f"{x:.6g}"


def live(counts: dict[str, Any]) -> str:
    """The progress line: in flight / finished / failed, best so far, workers connected."""
    return (
        f"in flight {counts['in_flight']}  finished {counts['finished']}  failed {counts['failed']}  "
        f"best {short(counts['best'])}  workers {counts['workers']}"
    )


def reasons(counts: dict[str, int]) -> str:
    """Failure reasons, most frequent first: '3 x timeout; 1 x exit 9'."""
    return "; ".join(f"{n} x {why}" for why, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def score_name(meta: dict[str, Any]) -> str:
    name = meta.get("target") or "score"
    return f"{name} (SURROGATE prediction)" if meta.get("surrogate") else name


def _gp(gp: dict[str, Any] | None) -> str:
    return "" if not gp else f"{gp['rmse']:.3f} / {gp['loglik']:.3f} / {gp['pearson']:.3f}"


def round_line(seed: int, note: dict[str, Any]) -> str:
    """One latent BO round as it is journaled: points selected, what they decoded to, the GP's quality."""
    points = note["points"]
    valid = 1 - len(note["invalid"]) / points if points else 1.0
    gp = f"  GP test RMSE / ll / r {_gp(note['gp'])}" if note.get("gp") else ""
    return (
        f"[latent seed {seed}] round {note['bo_round']}: {points} points -> {len(note['cells'])} new cells, "
        f"{len(note['duplicates'])} duplicates, {len(note['invalid'])} invalid (valid {valid:.2f}; "
        f"{note['seconds']:.1f} s){gp}"
    )


def best_table(summary: dict[str, Any], meta: dict[str, Any], baseline: dict[str, Any] | None = None) -> Table:
    """Mean ± std of the best score so far at each query count (beside random search, if it ran).

    Args:
        summary: the search's `runner.summarize` output (its ``at_queries`` and ``trials``).
        meta: the run's header: space, strategy and the score's name (target, surrogate or not).
        baseline: the random-search baseline's summary; None: no such column.  Query counts it
            lacks show as ``-``.

    Returns:
        A table with one row per query count of `summary`.
    """

    def cell(a: dict[str, Any]) -> str:
        return f"{short(a['best_mean'])} ± {short(a['best_std'])}"

    strategy, name = meta["strategy"], score_name(meta)
    columns, rows = ["queries", f"{strategy}: best {name}"], [[a["queries"], cell(a)] for a in summary["at_queries"]]
    if baseline is not None:
        columns.append("random search")
        at = {a["queries"]: a for a in baseline["at_queries"]}
        rows = [[*r, cell(at[r[0]]) if r[0] in at else "-"] for r in rows]
    title = f"{meta['space']} {strategy} search: best {name} so far, mean ± std over {len(summary['trials'])} trial(s)"
    return simple_table(title, columns, rows)


def rounds_table(space: str, trial: dict[str, Any]) -> Table:
    """A latent BO trial round by round: points, new cells, duplicates, invalid decodes, GP quality."""
    rows = [
        [
            r["round"],
            r["points"],
            r["new"],
            r["duplicates"],
            r["invalid"],
            "-" if r["valid_share"] is None else f"{r['valid_share']:.2f}",
            _gp(r["gp"]),
        ]
        for r in trial["rounds"]
    ]
    return simple_table(
        f"{space} latent BO, seed {trial['seed']}: rounds",
        ["round", "points", "new cells", "duplicates", "invalid", "share valid", "GP test RMSE / ll / r"],
        rows,
    )
