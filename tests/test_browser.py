"""The page-test helpers (tests/browser.py) on real headless Chromium: a clean page, and one
with a missing image and a script error."""

import struct

import matplotlib
import pytest

matplotlib.use("Agg")

import browser
from matplotlib import pyplot as plt

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def driver():
  """A headless Chromium, quit when the test ends."""
  drv = browser.chromium_driver()
  yield drv
  drv.quit()


def _png_size(path) -> tuple[int, int]:
  """Width and height from a PNG's IHDR chunk."""
  data = path.read_bytes()
  assert data[:8] == _PNG_MAGIC
  return struct.unpack(">II", data[16:24])


@pytest.mark.e2e
def test_clean_page_has_no_errors_and_screenshots(driver, tmp_path):
  fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
  ax.plot([0, 1, 2], [1, 0, 2])
  fig.savefig(tmp_path / "plot.png")
  plt.close(fig)
  page = tmp_path / "clean.html"
  page.write_text(
    "<!doctype html><html><head><meta charset='utf-8'><title>clean</title></head><body>"
    "<h1>Report</h1><img src='plot.png' alt='plot'><script>document.title = 'ok';</script>"
    "<div style='height: 2500px'>tall</div></body></html>"
  )

  browser.open_file(driver, page)

  assert driver.title == "ok"
  assert browser.console_errors(driver) == []
  assert browser.broken_images(driver) == []
  shot = tmp_path / "shot.png"
  assert browser.full_page_screenshot(driver, shot) == shot
  width, height = _png_size(shot)
  assert width > 0
  assert height > 2500


@pytest.mark.e2e
def test_missing_image_and_script_error_are_reported(driver, tmp_path):
  page = tmp_path / "broken.html"
  page.write_text(
    "<!doctype html><html><head><meta charset='utf-8'><title>broken</title></head><body>"
    "<img src='missing.png' alt='missing'>"
    '<script>throw new Error("boom")</script></body></html>'
  )

  browser.open_file(driver, page)

  broken = browser.broken_images(driver)
  assert len(broken) == 1
  assert broken[0].endswith("missing.png")
  errors = browser.console_errors(driver)
  assert any("boom" in entry["message"] for entry in errors), errors
