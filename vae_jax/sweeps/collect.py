"""Collecting a sweep: results table (CSV + JSON), ELBO curves per group (mean ± std over seeds),
the rate–distortion plane over the KL weight β, and ``report.html`` for the whole sweep.

A *group* is the set of points whose overrides agree on everything but ``seed``.
"""
from __future__ import annotations

import csv
import html
import json
import os

import numpy as np

import vae_jax.report.html as report
from vae_jax.sweeps.expand import DONE_FILE, point_name

CURVE_METRICS = ("neg_elbo",)


def _rows(workdir: str) -> list[dict]:
    sweep = json.load(open(os.path.join(workdir, "sweep.json")))
    rows = []
    for p in sweep["points"]:
        d = os.path.join(workdir, "points", p["name"])
        done = os.path.exists(os.path.join(d, DONE_FILE))
        ev_path = os.path.join(d, "eval.json")
        ev = json.load(open(ev_path)) if done and os.path.exists(ev_path) else {}
        info = json.load(open(os.path.join(d, DONE_FILE))) if done else {}
        rows.append({"name": p["name"], "status": "done" if done else "missing", "overrides": p["overrides"],
                     "metrics": {k: v for k, v in ev.items() if isinstance(v, (int, float))},
                     "seconds": info.get("seconds"), "trained": info.get("trained"),
                     "curve": report.read_metrics(d) if done else []})
    return rows


def _group_key(overrides: dict) -> str:
    rest = {k: v for k, v in overrides.items() if k != "seed"}
    return point_name(rest) if rest else "all"


def write_table(workdir: str, rows: list[dict]) -> tuple[str, str]:
    fields = sorted({k for r in rows for k in r["overrides"]})
    metrics = sorted({k for r in rows for k, v in r["metrics"].items() if not isinstance(v, list)})
    csv_path = os.path.join(workdir, "results.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "status"] + fields + metrics + ["seconds", "trained"])
        for r in rows:
            w.writerow([r["name"], r["status"]] + [r["overrides"].get(k, "") for k in fields]
                       + [r["metrics"].get(k, "") for k in metrics] + [r["seconds"] or "", r["trained"] or ""])
    json_path = os.path.join(workdir, "results.json")
    with open(json_path, "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "curve"} for r in rows], f, indent=1)
    return csv_path, json_path


def _mean_std_curve(curves: list[list[dict]], key: str):
    """Per epoch mean and std over the seeds that have ``key`` at that epoch."""
    by_epoch: dict[int, list[float]] = {}
    for c in curves:
        for row in c:
            if key in row:
                by_epoch.setdefault(row["epoch"], []).append(row[key])
    epochs = sorted(by_epoch)
    vals = [np.asarray(by_epoch[e]) for e in epochs]
    return np.asarray(epochs), np.asarray([v.mean() for v in vals]), np.asarray([v.std() for v in vals])


def _panels(rows):
    """Split groups into panels by likelihood (their nats are not on one scale)."""
    panels: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        if r["status"] != "done":
            continue
        panel = str(r["overrides"].get("model.likelihood", ""))
        panels.setdefault(panel, {}).setdefault(_group_key(r["overrides"]), []).append(r)
    return panels


def plot_curves(workdir: str, rows: list[dict], metric: str = "neg_elbo") -> str | None:
    plt = report._plt()
    panels = _panels(rows)
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.6 * len(panels)), squeeze=False)
    for (panel, groups), ax_row in zip(sorted(panels.items()), axes):
        for gi, (group, members) in enumerate(sorted(groups.items())):
            color = plt.cm.tab20(gi % 20)
            for ax, split in zip(ax_row, ("train", "test")):
                e, m, s = _mean_std_curve([r["curve"] for r in members], f"{split}/{metric}")
                if len(e):
                    ax.plot(e, m, color=color, marker="o", ms=2, label=f"{group} (n={len(members)})")
                    ax.fill_between(e, m - s, m + s, color=color, alpha=0.2)
        for ax, split in zip(ax_row, ("train", "test")):
            ax.set_title(f"{split} {metric}" + (f" — {panel}" if panel else "") + " (mean ± std over seeds)",
                         fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("nats")
            ax.grid(alpha=0.3)
        ax_row[1].legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    path = os.path.join(workdir, f"curves_{metric}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_rate_distortion(workdir: str, rows: list[dict]) -> str | None:
    """Test rate (KL) vs distortion (−E log p(x|z)); one line per group over β, mean over seeds."""
    plt = report._plt()
    panels: dict[str, dict[str, dict[float, list]]] = {}
    for r in rows:
        m = r["metrics"]
        if r["status"] != "done" or "kl" not in m or "rec_loss" not in m:
            continue
        ov = r["overrides"]
        rest = {k: v for k, v in ov.items() if k not in ("seed", "objective.kl_weight")}
        beta = float(ov.get("objective.kl_weight", 1.0))
        panel = str(ov.get("model.likelihood", ""))
        panels.setdefault(panel, {}).setdefault(point_name(rest) if rest else "all", {}) \
            .setdefault(beta, []).append((m["kl"], m["rec_loss"]))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (panel, groups) in zip(axes[0], sorted(panels.items())):
        for gi, (group, by_beta) in enumerate(sorted(groups.items())):
            betas = sorted(by_beta)
            pts = np.asarray([np.mean(by_beta[b], axis=0) for b in betas])
            ax.plot(pts[:, 0], pts[:, 1], "-o", color=plt.cm.tab10(gi % 10), label=group)
            for b, (x, y) in zip(betas, pts):
                ax.annotate(f"β={b:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("rate: KL(q(z|x) ‖ p(z)) (nats)")
        ax.set_ylabel("distortion: −E_q log p(x|z) (nats)")
        ax.set_title("rate–distortion over β" + (f" — {panel}" if panel else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(workdir, "rate_distortion.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_html(workdir: str, rows: list[dict], images: list[str]) -> str:
    show = ("neg_elbo", "rec_loss", "kl", "mse", "active_units", "nll_iwae")
    metrics = [k for k in show if any(k in r["metrics"] for r in rows)]
    fields = sorted({k for r in rows for k in r["overrides"]})
    done = sum(r["status"] == "done" for r in rows)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>vae_jax sweep</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right;"
             "border-bottom:1px solid #ddd}img{max-width:100%}</style></head><body>",
             f"<h1>Sweep {html.escape(os.path.basename(os.path.abspath(workdir)))}</h1>",
             f"<p>{done}/{len(rows)} points finished. Table: <a href='results.csv'>results.csv</a>, "
             "<a href='results.json'>results.json</a>.</p>"]
    for img in images:
        parts.append(f"<h2>{html.escape(os.path.basename(img)[:-4])}</h2><img src='{html.escape(os.path.basename(img))}'>")
    parts.append("<h2>Final test metrics per point</h2><table><tr><th>point</th>"
                 + "".join(f"<th>{html.escape(f)}</th>" for f in fields)
                 + "".join(f"<th>test {html.escape(m)}</th>" for m in metrics) + "<th>trained</th></tr>")
    for r in rows:
        link = f"points/{r['name']}/report.html"
        cells = "".join(f"<td>{html.escape(str(r['overrides'].get(f, '')))}</td>" for f in fields)
        cells += "".join(f"<td>{r['metrics'][m]:.3f}</td>" if m in r["metrics"] else "<td>–</td>" for m in metrics)
        parts.append(f"<tr><td><a href='{html.escape(link)}'>{html.escape(r['name'])}</a></td>{cells}"
                     f"<td>{html.escape(str(r['trained'] or r['status']))}</td></tr>")
    parts.append("</table></body></html>")
    path = os.path.join(workdir, "report.html")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


def collect(workdir: str) -> dict:
    """Merges every point's results (whichever shard trained it) into the sweep's outputs."""
    rows = _rows(workdir)
    csv_path, json_path = write_table(workdir, rows)
    images = [p for p in (plot_curves(workdir, rows), plot_rate_distortion(workdir, rows)) if p]
    missing = [r["name"] for r in rows if r["status"] != "done"]
    if missing:
        print(f"collect: {len(missing)} of {len(rows)} points not finished yet: {missing[:5]}"
              + (" ..." if len(missing) > 5 else ""))
    return {"csv": csv_path, "json": json_path, "html": write_html(workdir, rows, images), "rows": rows}
