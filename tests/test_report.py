"""report.html: what it shows (fast, from hand-written run files) and that it renders in a real
headless browser with every image loaded (slow: trains and evaluates a tiny run)."""
import html as html_lib
import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from vae_jax import config as config_lib
import vae_jax.report.html as report
import vae_jax.report.plots as plots
import vae_jax.report.run_report as run_report
import vae_jax.training.run_meta as run_meta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Page(HTMLParser):
    """The parts of report.html the tests look at: tables (rows of cell texts) by their id or the id
    of the <details> holding them, <img> srcs, <details> ids, the order of tables / images /
    details, and the visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.imgs, self.details, self.order, self.text = {}, [], [], [], []
        self.row_titles = []
        self.scripts = 0
        self._table = self._row = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            name = a.get("id") or (self.details[-1] if self.details else "")
            while name in self.tables:
                name += "+"
            self._table = self.tables[name] = []
            self.order.append("table#" + name)
        elif tag == "tr":
            self._row = []
            self.row_titles.append(a.get("title"))
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.imgs.append(a["src"])
            self.order.append("img:" + a["src"])
        elif tag == "details":
            self.details.append(a.get("id", ""))
            self.order.append("details#" + a.get("id", ""))
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self._table.append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)


def _write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


# 20 units: unit 7 carries most KL, units 15..19 are collapsed (< 0.01 nats)
KL = [0.9, 1.1, 2.5, 0.4, 0.3, 0.25, 0.2, 3.2, 0.15, 0.12, 0.1, 0.08, 0.05, 0.03, 0.02,
      0.009, 0.004, 1e-4, 3e-6, 0.0]


def _fake_run(wd, ev, rows, pngs=("interpolate_vae_latent.png",)):
    """A workdir as training and evaluation leave it, without training: real config.json layout."""
    os.makedirs(wd, exist_ok=True)
    cfg = config_lib.base_config()
    cfg.model.kind, cfg.model.latent_dim = ("vae" if "neg_elbo" in ev else "ae"), 20
    _write_json(os.path.join(wd, "config.json"), run_meta.config_to_dict(cfg))
    _write_json(os.path.join(wd, "run_meta.json"), {
        "data": {"source": "idx", "name": "mnist", "dir": "/data/mnist", "n_train": 60000, "n_test": 10000,
                 "image_shape": [28, 28, 1], "binarization": "dynamic"},
        "seed": 0, "versions": {"jax": "0.10.2", "flax": "0.12.8"}, "backend": "cpu",
        "command": ["vae_jax/main.py", "--mode=train"], "started": "2026-01-01T00:00:00"})
    _write_json(os.path.join(wd, "eval.json"), ev)
    with open(os.path.join(wd, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    rng = np.random.default_rng(0)
    for p in pngs:
        plots.save_grid(os.path.join(wd, p), rng.random((6, 8, 8, 1)), ncol=3)
    return wd


def _read(wd):
    return Page(open(os.path.join(wd, "report.html")).read())


def _assert_images_exist_and_decode(wd, page):
    assert page.imgs, "the report shows no image"
    for src in page.imgs:
        assert not os.path.isabs(src) and ":" not in src, f"image path {src!r} is not relative"
        im = np.asarray(Image.open(os.path.join(wd, src)).convert("L"), np.float32)
        assert min(im.shape) >= 10 and im.std() > 0, f"{src}: {im.shape}, constant"


def test_vae_report_headline_chart_and_collapsed_sections(tmp_path):
    ev = {"neg_elbo": 86.76123, "nll_iwae": 82.34567, "iwae_k": 5000, "nll_iwae_bits_per_dim": 0.15152,
          "rate": 24.1234, "kl": 24.1234, "distortion": 62.6378, "rec_loss": 62.6378, "bce": 60.5,
          "active_units": 17, "kl_per_dim": KL, "mse": 0.0123456, "psnr": 19.8712, "mutual_info": 5.1234567,
          "fid": 3.14159, "fid_floor": 0.0213, "fid_source": "prior samples", "iwae_seconds": 1234.5678,
          "epoch": 3, "step": 1407}
    rows = [{"epoch": e, "train/neg_elbo": 100.0 - e, "test/neg_elbo": 99.0 - e, "train/kl": 20.0 + e,
             "test/kl": 21.0 + e} for e in (1, 2, 3)]
    wd = _fake_run(str(tmp_path / "run"), ev, rows)
    report.write_html(wd)
    page = _read(wd)

    head = page.tables["headline"]
    assert head[0] == ["metric", "value", "unit", "note"]
    got = {r[0]: (r[1], r[2]) for r in head[1:]}
    assert [r[0] for r in head[1:]] == ["−ELBO", "NLL (IWAE, k = 5000)", "NLL", "rate (KL)", "distortion",
                                        "active units", "MSE", "PSNR", "FID"]
    assert got["−ELBO"] == ("86.76", "nats") and got["NLL (IWAE, k = 5000)"] == ("82.35", "nats")
    assert got["NLL"] == ("0.152", "bits/dim") and got["rate (KL)"] == ("24.12", "nats")
    assert got["active units"][0] == "17 of 20" and got["MSE"][0] == "0.0123" and got["PSNR"] == ("19.87", "dB")
    assert page.row_titles[1:3] == ["eval.json: neg_elbo", "eval.json: nll_iwae"]  # a tooltip per row
    # headline first; config, versions and data provenance collapsed at the bottom
    assert page.order[0] == "table#headline"
    assert page.details[-3:] == ["provenance", "versions", "config"]
    assert dict(page.tables["provenance"])["image_shape"] == "28×28×1"
    assert page.order.index("details#more") > max(page.order.index("img:" + s) for s in page.imgs)
    config_rows = dict(page.tables["config"])
    assert config_rows["model.latent_dim"] == "20" and config_rows["model.kind"] == '"vae"'

    # the per-unit KL: a chart, and a sorted top-5 summary; never the raw list
    text = " ".join(page.text)
    assert "15 of 20 units above 0.01 nats" in text
    assert "top 5: z7 3.20, z2 2.50, z1 1.10, z0 0.900, z3 0.400 (nats)" in text
    assert not re.search(r"\d\.\d{5,}", text), "a number printed unrounded"
    assert "0.009" not in text and "3e-06" not in text
    others = dict(page.tables["more"])  # "all other numbers": what the headline leaves out
    assert others["mutual_info"] == "5.12" and others["bce"] == "60.50" and others["iwae_seconds"] == "1,235 s"
    assert "kl" not in others and "rec_loss" not in others  # the same numbers as rate / distortion

    assert {"kl_per_dim.png", "curve_neg_elbo.png", "curve_kl.png", "interpolate_vae_latent.png"} <= set(page.imgs)
    assert page.imgs.index("curve_neg_elbo.png") < page.imgs.index("curve_kl.png")
    assert set(page.imgs) == {p for p in os.listdir(wd) if p.endswith(".png")}
    _assert_images_exist_and_decode(wd, page)
    assert page.scripts == 0


def test_autoencoder_report_shows_reconstruction_metrics(tmp_path):
    ev = {"rec_loss": 12.345678, "mse": 0.00987654, "psnr": 21.0987, "bce": 70.123, "epoch": 2}
    rows = [{"epoch": e, "train/mse": 0.02 / e, "test/mse": 0.021 / e} for e in (1, 2)]
    wd = _fake_run(str(tmp_path / "ae"), ev, rows, pngs=("reconstructions.png",))
    report.write_html(wd)
    page = _read(wd)
    assert [r[:3] for r in page.tables["headline"][1:]] == [
        ["reconstruction loss", "12.35", "nats"], ["MSE", "0.00988", "per pixel"], ["PSNR", "21.10", "dB"],
        ["BCE", "70.12", "nats/image"]]
    assert set(page.imgs) == {"curve_mse.png", "reconstructions.png"}
    _assert_images_exist_and_decode(wd, page)


def test_report_before_any_evaluation_and_per_layer_kl(tmp_path):
    wd = _fake_run(str(tmp_path / "new"), {}, [])
    report.write_html(wd)
    page = _read(wd)
    assert "headline" not in page.tables and "No evaluation yet" in " ".join(page.text)
    # a hierarchical family's kl_per_dim: one summary line and one chart panel per layer
    layers = report.kl_layers({"kl_per_dim": {"z1": [0.5, 0.001], "z2": [0.2, 0.3, 0.0]}})
    assert layers == {"z1": [0.5, 0.001], "z2": [0.2, 0.3, 0.0]}
    assert report.kl_summary(layers).split("<br>") == [
        "z1: 1 of 2 units above 0.01 nats; total 0.501 nats; top 2: z1[0] 0.500, z1[1] 0.00100 (nats)",
        "z2: 2 of 3 units above 0.01 nats; total 0.500 nats; top 3: z2[1] 0.300, z2[0] 0.200, z2[2] 0 (nats)"]


def test_number_rounding():
    assert [report.fmt_number(v) for v in (533.37158, 86.7, 0.24454288, 0.0137299, 12345.6, 2.5e-4, 0.0, 8)] \
        == ["533.37", "86.70", "0.245", "0.0137", "12,346", "2.50e-04", "0", "8"]
    assert report.fmt_number(float("nan")) == "nan"
    assert report.fmt_value([0.25, 0.5, 1.0, 2.25]) == "4 values, min 0.250, mean 1.00, max 2.25"


def test_reconstruction_rows_put_each_reconstruction_under_its_input():
    x = np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1)
    grid = run_report.reconstruction_rows(x, x + 100, ncol=3).ravel().tolist()
    assert grid == [0, 1, 2, 100, 101, 102, 3, 4, 5, 103, 104, 105]


# ---------------------------------------------------------------------------- in a browser
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


_CHECK_PAGE = """<!doctype html><html><body><pre id="result">pending</pre>%s<script>
var frames = Array.from(document.querySelectorAll("iframe")), out = {}, left = frames.length;
frames.forEach(function (f) { f.addEventListener("load", function () {
  var d = f.contentDocument, t = d.getElementById("headline");
  out[f.id] = {images: Array.from(d.images).map(function (i) {
                 return {src: i.getAttribute("src"), complete: i.complete, w: i.naturalWidth}; }),
               headline: t ? Array.from(t.rows).map(function (r) {
                 return Array.from(r.cells).map(function (c) { return c.textContent; }); }) : null};
  if (--left === 0) document.getElementById("result").textContent = JSON.stringify(out);
}); });
</script></body></html>"""


def _browser(args, tmp, timeout=90):
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           "--disable-dev-shm-usage",
           f"--user-data-dir={tmp}/chromium-profile", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (CI: apt-get install -y chromium)")
def test_report_of_a_tiny_run_renders_in_chromium(tmp_path):
    import vae_jax.evaluation.run as eval_run
    from vae_jax.training import runs

    wd = str(tmp_path / "run")
    runs.train_and_evaluate(config_lib.load_config_file(os.path.join(ROOT, "configs", "vae_mnist.py"), "tiny"), wd)
    # as after --mode=evaluate (the report written after --mode=train differs only by the NLL rows)
    cfg = eval_run.load_run_config(wd)
    cfg.eval.fid = False  # the IWAE bound, not the classifier: keeps the test short
    eval_run.evaluate_run(cfg, wd, log=lambda *a: None)
    run_report.write(wd)
    ev = json.load(open(os.path.join(wd, "eval.json")))

    # Negative control: the same report with one picture gone must be caught by the check below.
    bad = tmp_path / "broken"
    bad.mkdir()
    for p in os.listdir(wd):
        if p.endswith((".png", ".html")) and p != "samples.png":
            shutil.copy(os.path.join(wd, p), bad / p)
    frames = "".join(f"<iframe id='{k}' src='file://{d}/report.html' width='1200' height='900'></iframe>"
                     for k, d in (("good", wd), ("bad", bad)))
    (tmp_path / "check.html").write_text(_CHECK_PAGE % frames)
    dom = _browser(["--allow-file-access-from-files", "--dump-dom", f"file://{tmp_path}/check.html"], tmp_path)
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found and found.group(1) != "pending", f"the check page did not finish: {dom[:500]}"
    result = json.loads(html_lib.unescape(found.group(1)))

    good = result["good"]
    pngs = {p for p in os.listdir(wd) if p.endswith(".png")}
    assert {"kl_per_dim.png", "curve_neg_elbo.png", "curve_kl.png", "reconstructions.png", "samples.png"} <= pngs
    assert {i["src"] for i in good["images"]} == pngs
    assert all(i["complete"] and i["w"] > 0 for i in good["images"]), good["images"]
    broken = [i["src"] for i in result["bad"]["images"] if i["w"] == 0]
    assert broken == ["samples.png"], result["bad"]["images"]

    rows = {r[0]: r[1:] for r in good["headline"][1:]}
    assert list(rows)[:6] == ["−ELBO", f"NLL (IWAE, k = {ev['iwae_k']})", "NLL", "rate (KL)", "distortion",
                              "active units"]
    for label, key in (("−ELBO", "neg_elbo"), ("rate (KL)", "rate"), ("distortion", "distortion"), ("PSNR", "psnr")):
        assert math.isclose(float(rows[label][0]), ev[key], abs_tol=0.006), (label, rows[label], ev[key])
    assert rows["active units"][0] == f"{ev['active_units']} of {len(ev['kl_per_dim'])}"

    shot = tmp_path / "shot.png"
    _browser(["--window-size=1200,1600", f"--screenshot={shot}", f"file://{wd}/report.html"], tmp_path)
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.shape == (1600, 1200) and pixels.var() > 100, pixels.var()
    for src in pngs:
        im = Image.open(os.path.join(wd, src))
        im.load()
        assert min(im.size) >= 10, (src, im.size)
