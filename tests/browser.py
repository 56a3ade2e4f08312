"""Headless-Chromium helpers for page tests (not a test file): a selenium driver for Debian's
Chromium, and checks of a page opened from disk (console errors, images that did not load,
a full-page screenshot).

The pages are self-contained HTML files opened as ``file://`` URLs; no network is needed, and
the browser is told not to reach for one (no component updates, sync or background requests).
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
_INSTALL_SCRIPT = _REPO_ROOT / "scripts" / "install_chromium.sh"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW_WIDTH = 1400
MAX_SCREENSHOT_HEIGHT = 12000
_FLAGS = (
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
  f"--window-size={WINDOW_WIDTH},1000",
)


def _ensure_chromium() -> None:
  """Runs scripts/install_chromium.sh (silent when Chromium and chromedriver are there)."""
  result = subprocess.run(
    ["bash", str(_INSTALL_SCRIPT)],
    cwd=_REPO_ROOT,
    capture_output=True,
    text=True,
    check=False,
  )
  if result.returncode != 0:
    raise RuntimeError(
      f"{_INSTALL_SCRIPT} failed (exit {result.returncode}); Chromium and chromedriver are "
      f"needed for the page tests:\n{result.stdout}{result.stderr}"
    )


def chromium_driver(download_dir: str | os.PathLike | None = None) -> webdriver.Chrome:
  """A selenium ``webdriver.Chrome`` on headless Debian Chromium (/usr/bin/chromium through
  /usr/bin/chromedriver), installing them first when missing.

  Each driver gets a fresh temporary profile (removed when the driver quits) and keeps the
  browser's console log, read with ``console_errors``. With ``download_dir``, downloads go
  there without a prompt. The caller quits the driver.
  """
  _ensure_chromium()
  profile = tempfile.mkdtemp(prefix="chromium-profile-")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in _FLAGS:
    options.add_argument(flag)
  options.add_argument(f"--user-data-dir={profile}")
  options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
  if download_dir is not None:
    options.add_experimental_option(
      "prefs",
      {
        "download.default_directory": str(pathlib.Path(download_dir).resolve()),
        "download.prompt_for_download": False,
        "download.directory_upgrade": True,
      },
    )
  try:
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  except Exception:
    shutil.rmtree(profile, ignore_errors=True)
    raise
  quit_browser = driver.quit

  def quit_and_clean() -> None:
    try:
      quit_browser()
    finally:
      shutil.rmtree(profile, ignore_errors=True)

  driver.quit = quit_and_clean
  return driver


def wait_until_loaded(driver: webdriver.Chrome, timeout: float = 10.0) -> None:
  """Waits (up to ``timeout`` seconds) for ``document.readyState == "complete"``; raises
  TimeoutError when the page has not finished loading by then."""
  deadline = time.monotonic() + timeout
  while driver.execute_script("return document.readyState") != "complete":
    if time.monotonic() > deadline:
      raise TimeoutError(f"{driver.current_url} did not finish loading in {timeout:g} s")
    time.sleep(0.05)


def open_file(driver: webdriver.Chrome, path: str | os.PathLike) -> None:
  """Opens the file at ``path`` as a ``file://`` URL and waits until it has loaded."""
  driver.get(pathlib.Path(path).resolve().as_uri())
  wait_until_loaded(driver)


def console_errors(driver: webdriver.Chrome) -> list[dict]:
  """The browser console's SEVERE entries (uncaught exceptions, console.error, failed loads)
  since the last call: each a dict with ``level``, ``message``, ``source`` and ``timestamp``.
  Reading the log empties it."""
  return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


_BROKEN_IMAGES_JS = """
return Array.from(document.images)
  .filter((img) => !img.complete || img.naturalWidth === 0)
  .map((img) => img.getAttribute("src"));
"""


def broken_images(driver: webdriver.Chrome) -> list[str]:
  """The ``src`` of every ``<img>`` on the page that has not loaded (not complete, or no
  natural width), once the page has finished loading."""
  wait_until_loaded(driver)
  return driver.execute_script(_BROKEN_IMAGES_JS)


def full_page_screenshot(driver: webdriver.Chrome, path: str | os.PathLike) -> str | os.PathLike:
  """Saves a PNG of the whole page at ``path``: the window is resized to the document's
  scroll height (at most 12000 px) at a width of 1400 px first (from a short window, so a
  short page after a long one is not padded). Returns ``path``."""
  driver.set_window_size(WINDOW_WIDTH, 600)
  # The content's height, plus what the window itself takes beyond its viewport.
  height = driver.execute_script(
    "const content = Math.max(document.body ? document.body.scrollHeight : 0,"
    " document.documentElement.scrollHeight,"
    " Math.ceil(document.documentElement.getBoundingClientRect().height));"
    "return content + Math.max(0, window.outerHeight - window.innerHeight);"
  )
  driver.set_window_size(WINDOW_WIDTH, max(1, min(int(height), MAX_SCREENSHOT_HEIGHT)))
  if not driver.save_screenshot(str(path)):
    raise RuntimeError(f"the screenshot could not be written to {path}")
  return path
