"""The page at / in a real headless Chromium (Debian's chromium and chromium-driver, see
scripts/install_browser.sh): filter to micro accounts, open one, and check that the
points shown add up to its credibility. A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from tests.events import followers, interaction, post
from tests.integration.conftest import REPO, ServiceProcess, produce, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
# account -> (followers, likes per post, comments per post)
ACCOUNTS = {"page-micro-a": (4_000, 120, 30), "page-micro-b": (7_000, 60, 3),
            "page-nano-c": (500, 40, 10), "page-mid-d": (60_000, 500, 20)}


def events() -> list[dict[str, Any]]:
    produced: list[dict[str, Any]] = []
    for account, (count, likes, comments) in ACCOUNTS.items():
        produced.append(followers(account, count, 0))
        for number in range(4):
            post_id = f"{account}-p{number}"
            posted = 100 + number * 7_200
            produced.append(post(account, post_id, posted, topics=("gardening",)))
            produced += [interaction("like", account, post_id, f"{account}-u{n % 70}",
                                     posted + 90 + n) for n in range(likes)]
            produced += [interaction("comment", account, post_id, f"{account}-u{n}",
                                     posted + 900 + n) for n in range(comments)]
    # In time order: on one partition, an event hours behind the newest would be late.
    return sorted(produced, key=lambda event: str(event["occurred_at"]))


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are missing: run scripts/install_browser.sh")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1600", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def shown_rows(driver: WebDriver) -> list[dict[str, str]]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")
    shown = []
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, "td")
        shown.append({"account_id": row.get_attribute("data-account-id") or "",
                      "tier": cells[1].text, "credibility": cells[4].text})
    return shown


def apply_filters(driver: WebDriver, tier: str, expected_tiers: set[str]
                  ) -> list[dict[str, str]]:
    """Chooses a tier, applies, and waits until the table shows exactly those tiers."""
    Select(driver.find_element(By.ID, "tier")).select_by_value(tier)
    driver.find_element(By.ID, "apply").click()

    def settled(current: WebDriver) -> list[dict[str, str]] | None:
        if current.find_element(By.ID, "accounts").get_attribute("aria-busy"):
            return None
        rows = shown_rows(current)
        return rows if {row["tier"] for row in rows} == expected_tiers else None

    # The table is redrawn while it is read: a row read then may be gone by now.
    wait = WebDriverWait(driver, 20, ignored_exceptions=(StaleElementReferenceException,))
    result: list[dict[str, str]] = wait.until(settled)
    return result


async def test_page_lists_micro_accounts_and_explains_one(
    started: ServiceProcess, producer: AIOKafkaProducer, browser: WebDriver
) -> None:
    await produce(producer, started.topic, events())

    def indexed() -> bool:
        body = httpx.get(f"{started.url}/accounts", params={"limit": 200}).json()
        counted = {item["account_id"]: item["counts"]["comments"] for item in body["items"]}
        if counted != {account: 4 * comments
                       for account, (_, _, comments) in ACCOUNTS.items()}:
            return False
        # The audience signal comes back through two internal topics a checkpoint or
        # two later: the page must show the same explanation as the API read below.
        for account, (_, likes, comments) in ACCOUNTS.items():
            score = httpx.get(f"{started.url}/accounts/{account}/score").json()
            judged = score["components"]["audience_authenticity"]["inputs"]
            if judged["judged_interactions"] != 4 * (likes + comments):
                return False
        return True

    await wait_for(indexed, timeout_s=60)

    browser.get(f"{started.url}/")
    everyone = apply_filters(browser, "", {"micro", "nano", "mid"})
    assert len(everyone) == len(ACCOUNTS)
    micro = apply_filters(browser, "micro", {"micro"})
    assert {row["account_id"] for row in micro} == {"page-micro-a", "page-micro-b"}
    assert {row["tier"] for row in micro} == {"micro"}
    shown_credibility = [float(row["credibility"]) for row in micro]
    assert shown_credibility == sorted(shown_credibility, reverse=True)

    chosen = micro[0]["account_id"]
    browser.find_element(By.CSS_SELECTOR, f'tr[data-account-id="{chosen}"] button').click()
    WebDriverWait(browser, 20).until(
        lambda current: current.find_element(By.ID, "detail-title").text == chosen)

    score = httpx.get(f"{started.url}/accounts/{chosen}/score").json()
    components = browser.find_elements(By.CSS_SELECTOR, "#waterfall li.component")
    assert {item.get_attribute("data-component") for item in components} == set(
        score["components"])
    points = [float(item.find_element(By.CLASS_NAME, "component-points").text)
              for item in components]
    evidence = [item.find_element(By.CLASS_NAME, "evidence").text for item in components]
    assert evidence == [score["components"][item.get_attribute("data-component") or ""][
        "evidence"] for item in components]
    assert all(sentence for sentence in evidence)
    # Each component's points are rounded to 0.01 on their own; the total is not.
    assert sum(points) == pytest.approx(score["credibility"], abs=0.01 * len(points))
    assert float(browser.find_element(By.ID, "credibility").text) == score["credibility"]
    assert float(browser.find_element(By.ID, "points-sum").text) == pytest.approx(
        sum(points), abs=0.005)
    counts = browser.find_element(By.ID, "counts").text
    assert f"comments\n{score['counts']['comments']}" in counts
    assert browser.find_element(By.ID, "engagement").text.startswith("rate\n")

    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "page.png"))
