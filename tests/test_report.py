"""The run report: built from each kind of tiny run, then opened in headless Chromium.

The browser tests need Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
Where they are missing the browser tests are skipped, unless REQUIRE_BROWSER=1 (set by CI).
"""

import os
import shutil

import pytest

from pipeline.designs import Design
from pipeline.files import read_json
from pipeline.report import image, table
from pipeline.stages.redesign import curves_caption

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SECTIONS = ("leaderboard", "data", "architecture", "redesign", "metrics", "errors", "deployment")
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("REQUIRE_BROWSER"),
    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_report(browser, paths) -> dict:
    """Load the report file and read back what the browser made of it."""
    browser.get((paths.reports / "index.html").resolve().as_uri())
    return browser.execute_script("""
        const images = Array.from(document.images);
        return {
          title: document.title,
          header: document.querySelector('header.verdict h1').innerText,
          sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
          images: images.map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0,
                                    width: i.getBoundingClientRect().width, inline: i.src.startsWith('data:image/png')})),
          overflow: document.documentElement.scrollWidth - window.innerWidth,
          text: document.body.innerText,
        };""")


def check_page(browser, paths, pictures: set[str]) -> dict:
    page = open_report(browser, paths)
    test = read_json(paths.metrics / "test.json")
    assert page["header"].startswith("Goal met" if test["goal_met"] else "Goal missed")
    assert f"{test['value']:.4f}" in page["header"]
    assert page["sections"] == list(SECTIONS)
    # the network beside the plain baselines fitted on the same rows, at the top and in the leaderboard
    assert "the best plain baseline" in browser.find_element("css selector", "header.verdict").text
    assert "exported model" in page["text"] and "always the training" in page["text"]
    shown = {i["alt"] for i in page["images"]}
    assert pictures <= shown, shown
    broken = [i["alt"] for i in page["images"] if not (i["loaded"] and i["inline"] and i["width"] > 100)]
    assert not broken, broken
    assert page["overflow"] <= 0, "the page scrolls sideways"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    return page


def check_curves(page: dict, paths) -> None:
    """The chosen model's learning curves under the caption that says what they show; a chosen
    linear model (no curves): that caption as a note, no picture."""
    design = Design.load(paths.redesign / "design.json")
    caption = curves_caption(design)
    pictures = {i["alt"] for i in page["images"]}
    if design.family == "linear_model":
        assert caption.capitalize() in page["text"] and caption not in pictures
    else:
        assert caption in pictures


@needs_browser
def test_binary_report_in_browser(browser, breast_cancer_run):
    _, paths, results = breast_cancer_run
    page = check_page(browser, paths, {"confusion matrix (counts)", "calibration: confidence against accuracy"})
    check_curves(page, paths)
    assert "malignant" in page["text"] and "Per class" in page["text"]
    assert results["report"]["pictures"] == len(page["images"])


@needs_browser
def test_multiclass_table_report_in_browser(browser, mixed_run):
    _, paths, _ = mixed_run
    page = check_page(browser, paths, {"confusion matrix (share of each true class)"})
    check_curves(page, paths)
    # typed columns listed, and the worst rows with their raw values
    assert "Columns" in page["text"] and "categorical" in page["text"] and "Worst test examples" in page["text"]


@needs_browser
def test_image_report_in_browser(browser, image_run):
    _, paths, _, _ = image_run
    page = check_page(browser, paths, {"the worst test examples: true -> predicted (confidence)"})
    check_curves(page, paths)
    # the augmentation grid only when the chosen design trains with augmentation
    chosen = Design.load(paths.redesign / "design.json")
    shown = any(i["alt"].startswith("training augmentation") for i in page["images"])
    assert shown == bool(chosen.hyperparameters.get("augment"))


@needs_browser
def test_regression_report_with_search_in_browser(browser, diabetes_search_run):
    _, paths, _ = diabetes_search_run
    ensemble = Design.load(paths.redesign / "design.json").is_ensemble
    page = check_page(browser, paths, {"predicted against true, and the residuals"})
    check_curves(page, paths)
    assert ensemble or "ensemble" not in " ".join(i["alt"] for i in page["images"])
    assert "Rounds" in page["text"] and "Trials (best 2 of 2" in page["text"] and "Residuals" in page["text"]


def test_report_is_one_file_with_the_run_facts(breast_cancer_run):
    cfg, paths, _ = breast_cancer_run
    page = (paths.reports / "index.html").read_text()
    test = read_json(paths.metrics / "test.json")
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    assert page.count('<img src="data:image/png;base64,') >= 4
    for name in test["all"]["per_class"]:
        assert f"<td>{name}</td>" in page
    assert read_json(paths.export / "manifest.json")["predict"] in page
    assert "not registered" in page  # tracking is off in this run


def test_report_helpers_escape_and_format(tmp_path):
    html = table([{"name": "<b>", "value": 0.123456, "rows": 1234}])
    assert "&lt;b&gt;" in html and ">0.1235<" in html and ">1,234<" in html
    assert image(tmp_path / "missing.png", "x") == ""
