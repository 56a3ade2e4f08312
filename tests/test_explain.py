"""analysis.explain and ``imdb-tfx explain``: predict_text's attention rendered as a PNG
heatmap and an HTML page, on the tiny exported model."""

import html
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
import tiny_model
from click.testing import CliRunner
from PIL import Image

from analysis import explain as explain_lib
from cli import main as cli
from models import preprocessing

REVIEWS = ["a great film, great acting and a wonderful story", "terrible <b>movie</b> & awful plot"]


@pytest.fixture(scope="module")
def explanations(tiny_export):
  return explain_lib.explain(tiny_export.export_dir, REVIEWS)


def test_explanations_align_weights_with_the_words_the_model_saw(explanations, tiny_export):
  hp = tiny_model.HP
  for review, e in zip(REVIEWS, explanations):
    # The words preprocessing gives, truncated as the model saw them, padding dropped.
    words = preprocessing.pad_or_truncate_strings(
      preprocessing.tokenize(tf.constant([review])), hp.max_length, hp.head_tokens
    )
    expected = [w.decode() for w in words.numpy()[0] if w]
    assert e.tokens == expected and 0 < len(e.tokens) <= hp.max_length
    assert e.text == review
  assert explanations[0].tokens[:3] == ["a", "great", "film"]
  for e in explanations:
    assert e.weights.shape == (len(e.tokens),) and e.weights.dtype == np.float32
    np.testing.assert_allclose(e.weights.sum(), 1.0, rtol=1e-5)
    assert 0.0 <= e.probability <= 1.0 and e.label == int(e.probability >= 0.5)
    top = e.top_tokens(3)
    assert [w for _, w in top] == sorted((float(w) for w in e.weights), reverse=True)[:3]


def test_png_heatmap_and_html_page(explanations, tmp_path):
  paths = explain_lib.write_explanations(explanations, str(tmp_path / "out"))
  assert [p.rsplit("/", 1)[1] for p in paths] == [
    "review_0.png",
    "review_0.html",
    "review_1.png",
    "review_1.html",
  ]
  with Image.open(paths[0]) as image:
    assert image.format == "PNG" and image.width > 400 and image.height > 100
    # Coloured cells, not a blank canvas.
    assert len(set(image.convert("RGB").getdata())) > 20
  page = pathlib.Path(paths[3]).read_text(encoding="utf-8")
  spans = re.findall(
    r'<span style="background:(#[0-9a-f]{6});color:#[0-9a-f]{3}" '
    r'title="([0-9.]+)">([^<]*)</span>',
    page,
  )
  e = explanations[1]
  assert [html.unescape(word) for _, _, word in spans] == e.tokens
  np.testing.assert_allclose([float(w) for _, w, _ in spans], e.weights, atol=1e-4)
  assert e.sentiment in page


def test_html_colours_follow_the_weights(tmp_path):
  e = explain_lib.Explanation(
    text="x",
    probability=0.2,
    label=0,
    tokens=["dull", "plot", "awful"],
    weights=np.array([0.1, 0.3, 0.6], np.float32),
  )
  page = pathlib.Path(explain_lib.render_html(e, str(tmp_path / "e.html"))).read_text("utf-8")
  backgrounds = re.findall(r"background:#([0-9a-f]{6})", page)
  brightness = [sum(int(b[i : i + 2], 16) for i in (0, 2, 4)) for b in backgrounds]
  assert brightness[0] > brightness[1] > brightness[2]  # darker = more attention
  assert "<li>awful: 0.6000</li><li>plot: 0.3000</li><li>dull: 0.1000</li>" in page
  assert "negative" in page


def test_html_escapes_review_text(tmp_path):
  e = explain_lib.Explanation(
    text="x",
    probability=0.9,
    label=1,
    tokens=["<script>", "ok"],
    weights=np.array([0.7, 0.3], np.float32),
  )
  page = pathlib.Path(explain_lib.render_html(e, str(tmp_path / "e.html"))).read_text("utf-8")
  assert "<script>" not in page and "&lt;script&gt;" in page


def test_explain_cli(tiny_export, tmp_path):
  out = tmp_path / "cli"
  result = CliRunner().invoke(
    cli.main,
    [
      "explain",
      REVIEWS[0],
      "--model-dir",
      tiny_export.export_dir,
      "--output-dir",
      str(out),
      "--top",
      "3",
    ],
  )
  assert result.exit_code == 0, result.output
  assert re.search(r"\[0\] (positive|negative) \(0\.\d{3}\): \w+ 0\.\d{3}", result.output)
  assert (out / "review_0.png").is_file() and (out / "review_0.html").is_file()


def test_explain_cli_errors(tiny_export, tmp_path):
  runner = CliRunner()
  result = runner.invoke(cli.main, ["explain", "--model-dir", tiny_export.export_dir])
  assert result.exit_code != 0 and "give a review text" in result.output
  empty = tmp_path / "empty"
  empty.mkdir()
  result = runner.invoke(cli.main, ["explain", "hello", "--model-dir", str(empty)])
  assert result.exit_code != 0 and "no SavedModel" in result.output
