"""The report in a real headless browser (Debian chromium + chromedriver via selenium): no
console errors, no network request, the main views drawn, and a real click on a heatmap cell
shows that cell's elite with its code and lineage. Screenshots go to $EVOLM_SCREENSHOTS (default:
the test's temporary folder); look at them after a change to the page."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from . import browser
from .conftest import evolm

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))

PLOTS = ["heatmap", "curve-qd", "curve-coverage", "curve-fitness", "op-parsed", "op-valid",
         "op-inserted", "op-mix", "op-cost"]  # fmt: skip


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("EVOLM_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def open_report(driver: Any, html: Path) -> list[str]:
    """Load the page from a blank tab; returns the URLs it requested."""
    driver.get("about:blank")
    driver.get_log("performance")  # drop what the browser did before the page
    driver.get_log("browser")
    driver.get(html.resolve().as_uri())
    browser.wait_drawn(driver)
    return browser.requested_urls(driver)


def assert_offline(urls: list[str], html: Path) -> None:
    own = html.resolve().as_uri()
    others = [u for u in urls if u != own and not u.startswith(("data:", "about:"))]
    assert others == [], others


def full_page_shot(driver: Any, path: Path) -> None:
    driver.execute_script("window.scrollTo(0, 0);")
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 40, 16000))
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)


def test_single_run_in_chromium(killed_and_resumed: tuple[Path, Path], tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, db = killed_and_resumed
    html = tmp_path / "report.html"
    evolm("report", db, "--out", html)
    shots = shots_dir(tmp_path)
    with browser.chromium() as driver:
        urls = open_report(driver, html)
        assert_offline(urls, html)
        for pid in PLOTS:  # every main view drawn as SVG
            el = driver.find_element(By.ID, pid)
            assert el.find_elements(By.CSS_SELECTOR, "svg.main-svg"), pid
        # the heatmap draws one cell per elite (a 2-descriptor grid)
        data = driver.execute_script("return window.evolmReport.data.runs[0];")
        elites = len(data["archive"]["snapshots"][-1]["ids"])
        heat = driver.find_element(By.ID, "heatmap")
        assert int(heat.get_attribute("data-cells")) == elites > 0
        # resume marks drawn on the curves
        shapes = driver.execute_script(
            "return document.getElementById('curve-qd').layout.shapes.length;"
        )
        assert shapes == len(data["resumes"]) == 1
        driver.save_screenshot(str(shots / "report-top.png"))

        # a real click on the best cell: its pixel position from the heatmap's axes
        best = data["best"][0]
        cell = driver.execute_script(
            """
            var gd = document.getElementById('heatmap'), t = gd.data[0], fl = gd._fullLayout;
            for (var j = 0; j < t.z.length; j++) for (var i = 0; i < t.z[j].length; i++)
              if (t.customdata[j][i] === arguments[0]) {
                var r = gd.getBoundingClientRect();
                return {dx: fl._size.l + fl.xaxis.l2p(t.x[i]) - r.width / 2,
                        dy: fl._size.t + fl.yaxis.l2p(t.y[j]) - r.height / 2};
              }
            return null;""",
            best,
        )
        assert cell is not None
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", heat)
        ActionChains(driver).move_to_element_with_offset(
            heat, int(cell["dx"]), int(cell["dy"])
        ).click().perform()
        box = driver.find_element(By.ID, "elite")
        WebDriverWait(driver, 10).until(lambda d: box.get_attribute("data-program") == str(best))
        code = data["elites"][str(best)]["code"]
        assert box.find_element(By.CSS_SELECTOR, "pre.code").text.strip() == code.strip()
        # the domain's view is shown, without a second copy of the code
        assert box.find_elements(By.CSS_SELECTOR, "div.view .evolm-view")
        assert not box.find_elements(By.CSS_SELECTOR, "div.view figure.evolm-code")
        tree = box.find_element(By.ID, "lineage")
        nodes = tree.find_elements(By.TAG_NAME, "details")
        assert nodes and nodes[0].text.startswith(f"#{best} ")
        lineage = data["lineage"]
        depth, pid = 1, best
        while lineage[str(pid)]["parents"]:
            pid = lineage[str(pid)]["parents"][0]
            depth += 1
        assert len(nodes) >= depth  # the whole first-parent chain down to a seed
        if data["elites"][str(best)]["parents"]:
            assert nodes[0].find_elements(By.CSS_SELECTOR, "pre.diff")
        driver.save_screenshot(str(shots / "report-elite.png"))

        # a real click on the second row of the best-elites table
        if len(data["best"]) > 1:
            row = driver.find_elements(By.CSS_SELECTOR, "#best tbody tr")[1]
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", row)
            row.click()
            WebDriverWait(driver, 10).until(
                lambda d: box.get_attribute("data-program") == str(data["best"][1])
            )
        # the x-axis selector redraws the curves against evaluations
        driver.execute_script("document.getElementById('curves').scrollIntoView();")
        sel = driver.find_element(By.CSS_SELECTOR, "#curves select")
        sel.find_element(By.CSS_SELECTOR, "option[value='evaluations']").click()
        xs = driver.execute_script("return document.getElementById('curve-qd').data[0].x;")
        assert xs == data["series"]["evaluations"]
        full_page_shot(driver, shots / "report-full.png")
        assert browser.severe_console(driver) == []


def test_runs_side_by_side_in_chromium(
    domain_runs: dict[str, Path], runs_dir: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    second = runs_dir / "image-seed2.db"
    if not second.exists():
        evolm("run", "image", "--llm", "fake", "--budget-evals", 24, "--seed", 2, "--out",
              second, "-q")  # fmt: skip
    html = tmp_path / "compare.html"
    evolm("report", domain_runs["image"], second, domain_runs["image-cvt"], "--out", html,
          "--no-animations")  # fmt: skip
    with browser.chromium() as driver:
        urls = open_report(driver, html)
        assert_offline(urls, html)
        plot = driver.find_element(By.ID, "compare-plot")
        assert plot.find_elements(By.CSS_SELECTOR, "svg.main-svg")
        traces = driver.execute_script("return arguments[0].data.length;", plot)
        assert traces == 3 * 2  # per group: lower and upper band, mean
        rows = driver.find_elements(By.CSS_SELECTOR, "#compare table.clickable tbody tr")
        assert len(rows) == 3
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", rows[2])
        rows[2].click()  # show the CVT run
        title = driver.find_element(By.CSS_SELECTOR, "#summary h2").text
        assert title.endswith("image-cvt.db")
        browser.wait_drawn(driver)
        assert driver.find_element(By.ID, "heatmap").find_elements(By.CSS_SELECTOR, "svg.main-svg")
        full_page_shot(driver, shots_dir(tmp_path) / "report-compare.png")
        assert browser.severe_console(driver) == []
