"""report.html of a run, made from the files in its workdir only (config.json, run_meta.json,
eval.json, metrics.jsonl, the PNGs and task pages): headline numbers first, then the latent-unit
chart, curves and image grids with captions, the config, versions and data provenance collapsed at
the bottom. Static HTML, no script; images are linked by relative paths, so the folder can be
copied or served as it is. The grids that need the trained model are drawn by run_report.py.
"""
from __future__ import annotations

import collections
import html
import json
import math
import os
import struct

from vae_jax import checks
import vae_jax.report.plots as plots
# Kept under this module's name for their callers (tasks/*, sweeps/collect.py, evaluation/run.py).
from vae_jax.report.plots import _plt, image_grid, read_metrics, save_grid  # noqa: F401

_esc = html.escape


def validate(cfg) -> None:
    checks.positive_int(cfg, "report.num_images")


# ---------------------------------------------------------------------------- numbers
def fmt_number(v) -> str:
    """Rounded for reading: ints exact; |v| ≥ 1000 no decimals, ≥ 1 two decimals (nats are compared
    to ~0.01), below 1 three significant digits."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return str(v)
    a = abs(v)
    if not math.isfinite(v):
        return str(v)  # nan / inf: shown, not hidden
    if a == 0:
        return "0"
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.2f}"
    if a >= 1e-3:
        return f"{v:#.3g}"  # "#": keeps trailing zeros (0.900), so columns read alike
    return f"{v:.2e}"


def fmt_value(v) -> str:
    """Any JSON value as short text: lists of numbers are summarized, never printed raw."""
    if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        if all(isinstance(x, int) for x in v) and len(v) <= 8:
            return ", ".join(str(x) for x in v)
        return (f"{len(v)} values, min {fmt_number(min(v))}, mean {fmt_number(sum(v) / len(v))}, "
                f"max {fmt_number(max(v))}")
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return fmt_number(v)


def kl_layers(ev: dict) -> dict[str, list[float]]:
    """The per-unit KL lists of eval.json: ``kl_per_dim`` (one layer, name "") or ``kl_per_dim/<layer>``
    / a dict of layer -> list (hierarchical families)."""
    out = {}
    for k, v in ev.items():
        if not k.startswith("kl_per_dim"):
            continue
        name = k[len("kl_per_dim"):].strip("/_")
        if isinstance(v, dict):
            out.update({f"{name}/{n}".strip("/"): list(x) for n, x in v.items() if isinstance(x, list)})
        elif isinstance(v, list) and v:
            out[name] = v
    return out


def kl_summary(layers: dict[str, list[float]], top: int = 5) -> str:
    """One line per layer: how many units exceed the threshold, their total, the ``top`` largest."""
    lines = []
    for name, kl in layers.items():
        units = plots.sorted_units(kl)
        above = sum(v > plots.KL_THRESHOLD for _, v in units)
        unit = (lambda u: f"{name}[{u}]") if name else (lambda u: f"z{u}")
        best = ", ".join(f"{unit(u)} {fmt_number(v)}" for u, v in units[:top])
        lines.append(f"{name + ': ' if name else ''}{above} of {len(units)} units above "
                     f"{plots.KL_THRESHOLD} nats; total {fmt_number(sum(kl))} nats; "
                     f"top {min(top, len(units))}: {best} (nats)")
    return "<br>".join(_esc(s) for s in lines)


# (key, label, unit, note); rows appear only for keys eval.json holds. Notes may name other keys.
HEADLINE = [
    ("neg_elbo", "−ELBO", "nats", "test-set mean, one z ~ q(z|x) per image; = rate + distortion"),
    ("nll_iwae", "NLL (IWAE, k = {iwae_k})", "nats", "importance-weighted bound on −log p(x); ≤ −ELBO"),
    ("nll_iwae_bits_per_dim", "NLL", "bits/dim", "nll_iwae / (pixels · ln 2)"),
    ("rate", "rate (KL)", "nats", "E_x KL(q(z|x) ‖ p(z))"),
    ("distortion", "distortion", "nats", "−E log p(x|z)"),
    ("active_units", "active units", "count", "units with Cov_x(E_q[z_u]) > 0.01"),
    ("rec_loss", "reconstruction loss", "nats", "−log p(x|z) at the code"),
    ("mse", "MSE", "per pixel", "reconstruction from the code (E_q[z|x] for a VAE), pixels in [0, 1]"),
    ("psnr", "PSNR", "dB", "peak 1, mean over images"),
    ("bce", "BCE", "nats/image", "binary cross-entropy of the reconstructed mean"),
    ("fid", "FID", "", "{fid_source}; features of a small MNIST classifier (not Inception); "
                       "train-vs-test floor {fid_floor}"),
]
# Shown in the headline only for autoencoders: for a VAE they repeat distortion / add little.
_AE_ONLY = {"rec_loss", "bce"}
# Same number under a second name (eval.json keeps both for older readers).
_ALIASES = {"kl": "rate", "rec_loss": "distortion"}


def headline_rows(ev: dict, n_units: int | None) -> list[tuple[str, str, str, str, str]]:
    """(eval.json key, metric, value, unit, note) rows of the headline table."""
    is_vae = "neg_elbo" in ev
    fill = collections.defaultdict(lambda: "?", {k: fmt_number(v) for k, v in ev.items()
                                                 if not isinstance(v, (list, dict))})
    rows = []
    for key, label, unit, note in HEADLINE:
        if key not in ev or (is_vae and key in _AE_ONLY) or isinstance(ev[key], (list, dict)):
            continue
        value = fmt_number(ev[key])
        if key == "active_units" and n_units:
            value = f"{value} of {n_units}"
        rows.append((key, label.format_map(fill), value, unit, note.format_map(fill)))
    return rows


def other_numbers(ev: dict, shown: set[str]) -> list[tuple[str, str]]:
    """Everything else in eval.json, rounded (dicts flattened to key/sub); per-unit KL lists are
    left to the chart."""
    rows = []
    for k in sorted(ev):
        if k in shown or k.startswith("kl_per_dim") or (k in _ALIASES and _ALIASES[k] in shown):
            continue
        if isinstance(ev[k], dict):
            rows += other_numbers({f"{k}/{s}": v for s, v in ev[k].items()}, shown)
        else:
            rows.append((k, fmt_value(ev[k]) + (" s" if k.endswith("_seconds") else "")))
    return rows


# ---------------------------------------------------------------------------- images
CAPTIONS = {
    "kl_per_dim.png": "Per-unit KL E_x KL(q(z_u|x) ‖ p(z_u)) on the test set, sorted, log axis; the dashed "
                      "line is 0.01 nats: grey bars below it are (nearly) collapsed units.",
    "curve_neg_elbo.png": "−ELBO per epoch: train is the mean over the epoch's steps, test the full test set.",
    "curve_kl.png": "Rate KL(q(z|x) ‖ p(z)) per epoch.",
    "curve_mse.png": "Reconstruction MSE per pixel per epoch.",
    "reconstructions.png": "Test images (first row of each pair of rows) and their reconstructions below "
                           "them: mean of p(x|z) at the code z (E_q[z|x] for a VAE).",
    "samples.png": "Samples: mean of p(x|z) for z ~ p(z).",
    "latents_manifold.png": "Decoded means over a grid of prior quantiles of the 2-D latent.",
    "latents_scatter.png": "Encoded test means coloured by label.",
    "latents_pca.png": "Encoded test means on their two leading principal components, coloured by label.",
    "latents_traversal.png": "One row per latent unit (largest KL first), varying that unit with the others fixed.",
    "colorize.png": "Colorization: inputs, samples and targets.",
}
_PREFIX_CAPTIONS = {"interpolate_": "Interpolation '{}': each row goes from one test image to another.",
                    "inpaint_": "Inpainting with mask '{}': masked input, completions, original."}
# (heading, file-name prefixes in display order); PNGs no section claims go under "Other figures".
SECTIONS = [("Training curves", ("curve_neg_elbo", "curve_kl", "curve_")),
            ("Reconstructions and samples", ("reconstructions", "samples")),
            ("Latent space", ("latents_",)), ("Interpolation", ("interpolate_",)),
            ("Inpainting and colorization", ("inpaint_", "colorize"))]
_PIXEL_GRIDS = ("reconstructions", "samples", "latents_manifold", "interpolate_")


def caption(name: str) -> str:
    if name in CAPTIONS:
        return CAPTIONS[name]
    for prefix, text in _PREFIX_CAPTIONS.items():
        if name.startswith(prefix):
            return text.format(name[len(prefix):-4])
    return name[:-4].replace("_", " ")


def png_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the PNG header; None when the file is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def figure(workdir: str, name: str) -> str:
    size = png_size(os.path.join(workdir, name))
    pixel = name.startswith(_PIXEL_GRIDS)
    attrs = ""
    if size:  # small pixel grids are shown at 2x, sharp; charts at their own size
        k = 2 if pixel and size[0] <= 600 else 1
        attrs = f" width='{size[0] * k}' height='{size[1] * k}'"
    cls = " class='px'" if pixel else ""
    cap = _esc(caption(name))
    return (f"<figure><img src='{_esc(name)}' alt='{cap}'{attrs}{cls}>"
            f"<figcaption>{cap} <span class='f'>({_esc(name)})</span></figcaption></figure>")


# ---------------------------------------------------------------------------- page
def _load(workdir: str, name: str) -> dict:
    path = os.path.join(workdir, name)
    return json.load(open(path)) if os.path.exists(path) else {}


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k in sorted(d):
        if isinstance(d[k], dict):
            out += _flatten(d[k], f"{prefix}{k}.")
        else:
            out.append((prefix + k, d[k]))
    return out


def _table(rows, head=None, attrs="", titles=None) -> str:
    h = "<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in head) + "</tr>" if head else ""
    body = "".join((f"<tr title='{_esc(t)}'>" if t else "<tr>") + "".join(f"<td>{_esc(str(c))}</td>" for c in r)
                   + "</tr>" for r, t in zip(rows, titles or [None] * len(rows)))
    return f"<table{attrs}>{h}{body}</table>"


def _subtitle(config: dict, meta: dict, ev: dict) -> str:
    m, data = config.get("model", {}), meta.get("data", {})
    parts = []
    if m:
        parts.append(f"{m.get('kind', '?').upper()}, objective {config.get('objective', {}).get('name', '?')}, "
                     f"{m.get('likelihood', '?')} likelihood, {m.get('latent_dim', '?')} latent units")
    if data:
        parts.append(f"on {data.get('source', '?')} {data.get('name', '')}: {data.get('n_train', '?')} train / "
                     f"{data.get('n_test', '?')} test images")
    epochs = config.get("train", {}).get("epochs")
    if "epoch" in ev or epochs:
        parts.append(f"trained {ev.get('eval_checkpoint_epoch', ev.get('epoch', '?'))} of {epochs} epochs")
    return "; ".join(parts)


STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:75em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 10px;text-align:left;"
         "border-bottom:1px solid #ddd}#headline td:nth-child(-n+3){white-space:nowrap}"
         "#headline td:nth-child(2){text-align:right;font-weight:600}"
         "figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}"
         "figcaption{font-size:.85em;max-width:40em;color:#444}.f{color:#999}"
         "img.px{image-rendering:pixelated}.sub{color:#555}details{margin:.8em 0}"
         "summary{cursor:pointer;font-weight:600}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}")


def _figures(workdir: str, layers: dict) -> list[str]:
    """The latent-unit summary and chart, then every PNG of the workdir under its section."""
    pngs = sorted(p for p in os.listdir(workdir) if p.endswith(".png"))
    parts, placed = [], set()
    if layers:
        parts.append(f"<h2>Latent units</h2><p id='kl-summary'>{kl_summary(layers)}</p>")
        parts.append(figure(workdir, "kl_per_dim.png"))
        placed.add("kl_per_dim.png")
    for title, prefixes in SECTIONS + [("Other figures", ("",))]:
        mine = sorted((p for p in pngs if p.startswith(prefixes) and p not in placed),
                      key=lambda p: (next(i for i, q in enumerate(prefixes) if p.startswith(q)), p))
        if mine:
            parts.append(f"<h2>{_esc(title)}</h2>" + "".join(figure(workdir, p) for p in mine))
            placed.update(mine)
    for p in sorted(p for p in os.listdir(workdir) if p.endswith((".md", ".html")) and p != "report.html"):
        body = f"<pre>{_esc(open(os.path.join(workdir, p)).read())}</pre>" if p.endswith(".md") else ""
        parts.append(f"<details><summary>{_esc(p)}</summary><p><a href='{_esc(p)}'>{_esc(p)}</a></p>{body}</details>")
    return parts


def _collapsed(ev: dict, shown: set[str], meta: dict, config: dict) -> list[str]:
    """The bottom of the page, folded: other eval.json numbers, data provenance, versions, config."""
    parts = []
    more = other_numbers(ev, shown)
    if more:
        parts.append("<details id='more'><summary>All other numbers in eval.json</summary>"
                     + _table(more) + "</details>")
    if meta:
        data = [(k, "×".join(map(str, v)) if k == "image_shape" else fmt_value(v))
                for k, v in sorted(meta.get("data", {}).items())]
        run = [(k, " ".join(map(str, v)) if k == "command" else fmt_value(v))
               for k, v in sorted(meta.items()) if k not in ("data", "versions")]
        parts.append("<details id='provenance'><summary>Data provenance</summary>" + _table(data) + "</details>")
        parts.append("<details id='versions'><summary>Versions and machine</summary>"
                     + _table(sorted(meta.get("versions", {}).items())) + _table(run) + "</details>")
    if config:
        parts.append("<details id='config'><summary>Config (config.json)</summary>"
                     + _table([(k, json.dumps(v)) for k, v in _flatten(config)]) + "</details>")
    return parts


def write_html(workdir: str) -> str:
    """(Re)draws the charts made from the workdir's JSON files (curves, per-unit KL) and writes
    ``workdir/report.html`` from what the workdir holds. Returns its path."""
    config, meta, ev = _load(workdir, "config.json"), _load(workdir, "run_meta.json"), _load(workdir, "eval.json")
    rows = read_metrics(workdir)
    is_vae = "neg_elbo" in ev or any("test/neg_elbo" in r or "train/neg_elbo" in r for r in rows)
    for metric in (("neg_elbo", "kl") if is_vae else ("mse",)):
        plots.plot_curves(workdir, rows, metric)
    layers = kl_layers(ev)
    if layers:
        plots.plot_kl_per_dim(os.path.join(workdir, "kl_per_dim.png"), layers)
    head = headline_rows(ev, sum(len(v) for v in layers.values()) or config.get("model", {}).get("latent_dim"))

    name = os.path.basename(os.path.abspath(workdir))
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>vae_jax run {_esc(name)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Run {_esc(name)}</h1><p class='sub'>{_esc(_subtitle(config, meta, ev))}</p>"]
    if head:
        n_test = meta.get("data", {}).get("n_test")
        parts.append(f"<h2>Test set{f' ({n_test} images)' if n_test else ''}</h2>")
        # each row's title names its eval.json key (a tooltip for whoever reads the JSON next)
        parts.append(_table([r[1:] for r in head], ("metric", "value", "unit", "note"), " id='headline'",
                            [f"eval.json: {r[0]}" for r in head]))
    else:
        parts.append("<p id='no-eval'>No evaluation yet (eval.json is missing or empty).</p>")
    parts += _figures(workdir, layers) + _collapsed(ev, {r[0] for r in head}, meta, config)
    parts.append("</body></html>")
    path = os.path.join(workdir, "report.html")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(parts))
    os.replace(path + ".tmp", path)  # a reader never sees half a page
    return path
