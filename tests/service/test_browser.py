"""The web page in headless Chromium: type a query, see cards, upload an image, open an item.

Needs Debian's ``chromium`` and ``chromium-driver`` (skipped, saying so, when absent). With
``FGLAB_SCREENSHOT=1`` the page with its results is saved to ``docs/screenshot.png``
(``FGLAB_SCREENSHOT=PATH`` picks the file). ``FGLAB_BROWSER_INDEX=DIR`` drives a real index
built by ``fglab index`` instead of the small stand-in one, with ``FGLAB_BROWSER_QUERY`` as
the typed query.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fglab.service import create_app
from tests.index.fakes import build_fake_index, colour_image, open_fake_retriever
from tests.service.live import live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser test needs Chromium: apt-get install -y chromium chromium-driver",
)
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture()
def site(tmp_path):
    """(base URL, text query, expected category or None, an image file to upload or None)."""
    real = os.environ.get("FGLAB_BROWSER_INDEX")
    if real:
        from fglab.retriever import Retriever

        retriever = Retriever.open(Path(real))
        query = os.environ.get("FGLAB_BROWSER_QUERY", "naval battle in the pacific")
        image = next(
            (
                retriever.image_file(item)
                for item in retriever.index.items
                if retriever.image_file(item)
            ),
            None,
        )
        image = image if retriever.health()["image_search"] else None
        expected = None
    else:
        retriever = open_fake_retriever(build_fake_index(tmp_path))
        query, expected = "a naval ship under sail", "boats"
        image = colour_image(tmp_path / "upload.jpg", "music")
    with live_server(create_app(retriever)) as base:
        yield base, query, expected, image


def _cards(driver, kind: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"#results[data-kind='{kind}'] .card"))
    )
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def _screenshot(driver) -> None:
    target = os.environ.get("FGLAB_SCREENSHOT")
    if not target:
        return
    path = REPO / "docs" / "screenshot.png" if target == "1" else Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))


def test_text_query_then_image_upload_then_open_an_item(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, query, expected, image = site
    browser.get(base + "/")
    box = browser.find_element(By.ID, "query")
    box.send_keys(query)
    browser.find_element(By.ID, "text-search").click()
    cards = _cards(browser, "text")
    assert len(cards) == 10
    categories = [c.find_element(By.CLASS_NAME, "category").text for c in cards]
    if expected:
        assert categories[:4] == [expected] * 4
    assert all(c.find_element(By.CLASS_NAME, "score").text for c in cards)
    assert "images for" in browser.find_element(By.ID, "status").text
    WebDriverWait(browser, WAIT_S).until(  # thumbnails loaded (or no image files at all)
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('#results img')].every(i => i.complete)"
        )
    )
    _screenshot(browser)

    if image is not None:
        browser.find_element(By.ID, "image").send_keys(str(image))
        browser.find_element(By.ID, "image-search").click()
        text_cards = _cards(browser, "image")
        assert text_cards and "texts for" in browser.find_element(By.ID, "status").text
        if expected:
            assert text_cards[0].find_element(By.CLASS_NAME, "category").text == "music"
        cards = text_cards

    first_id = cards[0].get_attribute("data-id")
    cards[0].click()
    dialog = WebDriverWait(browser, WAIT_S).until(ec.visibility_of_element_located((By.ID, "item")))
    assert dialog.get_attribute("data-id") == first_id
    assert browser.find_element(By.ID, "item-text").text.strip()
    assert browser.current_url.endswith(f"#item={first_id}")


def test_errors_show_on_the_page(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, *_ = site
    browser.get(base + "/")
    browser.find_element(By.ID, "query").send_keys("    ")
    browser.find_element(By.ID, "text-search").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, WAIT_S).until(lambda _: "empty" in status.text)
    assert status.get_attribute("class") == "error"
