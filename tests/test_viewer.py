"""The viewer (``prunelens.viewer``) in headless Chromium."""

import os
import shutil

import pandas as pd
import pytest

from prunelens.viewer import write_viewer


def test_viewer_in_headless_chromium(full_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = write_viewer(full_run["greedy"], tmp_path / "view.html")
    tokens = pd.read_parquet(full_run["greedy"] / "tokens.parquet")
    driver = chromium_driver()
    try:
        driver.get(page.as_uri())
        assert driver.find_elements(By.CSS_SELECTOR, ".tok.deleted") == []
        Select(driver.find_element(By.ID, "example")).select_by_index(2)
        ex_id = driver.find_element(By.ID, "example").get_attribute("value")
        rows = tokens[tokens.example_id == tokens.example_id.unique()[int(ex_id)]]
        assert len(driver.find_elements(By.CSS_SELECTOR, ".tok")) == len(rows)
        slider = driver.find_element(By.ID, "step")
        driver.execute_script("arguments[0].value = 5; arguments[0].dispatchEvent(new Event('input'));", slider)
        deleted = driver.find_elements(By.CSS_SELECTOR, ".tok.deleted")
        expected = set(rows.position[rows.deleted_step <= 5])
        assert {int(e.get_attribute("data-position")) for e in deleted} == expected and len(expected) == 5
        assert driver.find_element(By.ID, "status").text.startswith(f"step 5 / {len(rows)}: {len(rows) - 5} of")
        title = driver.find_elements(By.CSS_SELECTOR, ".tok")[0].get_attribute("title")
        assert "deleted at step" in title and "attn_answer.mean" in title
        examples = pd.read_parquet(full_run["greedy"] / "examples.parquet")
        example = examples.iloc[int(ex_id)]
        assert driver.find_element(By.ID, "answer").text == f"Answer: {example.answer}"
        curve = driver.find_element(By.CSS_SELECTOR, "#curve polyline").get_attribute("points").split()
        assert len(curve) == len(example.objective_trajectory)  # a greedy run scores every state
        marker = driver.find_element(By.CSS_SELECTOR, "#curve circle")
        assert float(marker.get_attribute("cx")) == pytest.approx(float(curve[5].split(",")[0]))  # at step 5
        assert driver.save_screenshot(str(tmp_path / "viewer.png"))
        assert (tmp_path / "viewer.png").stat().st_size > 5000
    finally:
        driver.quit()


def chromium_driver():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium and chromium-driver (make test installs them)")
        pytest.skip("chromium and chromedriver are not installed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1200,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
