"""The labeling app in a real browser: headless Chromium driven by Selenium against the real server.

A labeler logs in, ranks three items (one with number keys, one with the mouse: dragging and clicking,
one with keys again, marking ties), goes back and changes a ranking; the export must equal what was
entered, and ``textbandit rm`` must train on it. The run writes the screenshot ``docs/labeling.png``.

Needs Chromium and its driver (Debian: ``apt-get install -y chromium chromium-driver``; ``.ci/run`` installs
them) and ``pip install selenium``. Without them the test FAILS, saying so, unless
``TEXTBANDIT_SKIP_BROWSER=1`` is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import load_benchmark
from tiny import tiny_lm, tiny_tokenizer

from agents.cli import main as cli_main
from textbandit.data import load_comparisons

INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
SCREENSHOT = Path(__file__).parents[1] / "docs" / "labeling.png"
ITEMS = [
    {
        "prompt": "write about the cat .",
        "responses": ["the cat runs .", "a cat eats the fish .", "the big cat sees a bird ."],
    },
    {
        "prompt": "list two fish ?",
        "responses": [
            "one fish , two fish .",
            "red fish , blue fish .",
            "fish .",
            "two fish <script>window.pwned = 1</script>",
        ],
        "ended_with_eos": [True, True, False, True],
    },
    {"prompt": "say one", "responses": ["one", "one .", "two"]},
]


def chrome_paths() -> tuple[str, str]:
    if os.environ.get("TEXTBANDIT_SKIP_BROWSER") == "1":
        pytest.skip("TEXTBANDIT_SKIP_BROWSER=1")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail(f"the browser test needs Selenium and Chromium: {INSTALL} (or set TEXTBANDIT_SKIP_BROWSER=1)")
    if not chromium or not driver:
        pytest.fail(
            f"the browser test needs Chromium and chromedriver, not found on PATH: {INSTALL} "
            f"(or set TEXTBANDIT_SKIP_BROWSER=1 to skip it)"
        )
    return chromium, driver


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = chrome_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1000,960",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


class Page:
    """The labeling page as the test sees it."""

    def __init__(self, driver):
        self.d = driver

    def cards(self):
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.CSS_SELECTOR, ".card")

    def state(self) -> list[tuple[str, int, bool]]:
        """``(text, rank shown, tied with the one above)`` of each card, top to bottom."""
        from selenium.webdriver.common.by import By

        return [
            (
                c.find_element(By.CSS_SELECTOR, ".completion").text,
                int(c.find_element(By.CSS_SELECTOR, ".rank-value").text),
                "shows-tie" in c.get_attribute("class"),
            )
            for c in self.cards()
        ]

    def order(self) -> list[str]:
        return [text for text, _, _ in self.state()]

    def item(self) -> dict:
        from selenium.webdriver.common.by import By

        prompt = self.d.find_element(By.ID, "prompt").text
        return next(it for it in ITEMS if it["prompt"] == prompt)

    def keys(self, *keys, modifier=None) -> None:
        """Type ``keys`` where the focus is, each with ``modifier`` held down if given."""
        from selenium.webdriver.common.action_chains import ActionChains

        chain = ActionChains(self.d)
        for k in keys:
            if modifier:
                chain.key_down(modifier).send_keys(k).key_up(modifier)
            else:
                chain.send_keys(k)
        chain.perform()

    def focused_text(self) -> str:
        return self.d.execute_script("return document.activeElement.querySelector('.completion').textContent")

    @contextlib.contextmanager
    def loads_a_new_page(self):
        """Wait, after the block, until the page it left is gone (a submit or a link loads the next one):
        a busy machine may take a while, and reading the old page would test nothing."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        old = self.d.find_element(By.TAG_NAME, "html")
        yield
        WebDriverWait(self.d, 30).until(EC.staleness_of(old))


# A model of the page, from its documented behaviour: the order of the cards is the ranking, best first; a
# card in `ties` shares the rank of the card above it; moving a card keeps a tie only where the card above
# stays the same.


def shown(order: list[str], ties: set[str]) -> list[tuple[str, int, bool]]:
    """What the page must show: ``(text, rank from 1, tied)`` per card."""
    out, rank = [], 1
    for pos, text in enumerate(order):
        tied = pos > 0 and text in ties
        rank += pos > 0 and not tied
        out.append((text, rank, tied))
    return out


def kwise(order: list[str], ties: set[str], item: dict) -> list[int]:
    """The ranking in the K-wise format: ``ranks[i]`` of ``item["responses"][i]``, 0 = best."""
    rank = {text: r - 1 for text, r, _ in shown(order, ties)}
    return [rank[text] for text in item["responses"]]


def moved(order: list[str], ties: set[str], text: str, pos: int) -> tuple[list[str], set[str]]:
    above = {t: order[i - 1] if i else None for i, t in enumerate(order)}
    new = [t for t in order if t != text]
    new.insert(pos, text)
    return new, {t for t in ties if above[t] == (new[new.index(t) - 1] if new.index(t) else None)}


def as_stored(ranks: list[int], item: dict) -> tuple[list[str], set[str]]:
    """How the page shows a stored ranking: best first, tied completions in their item order."""
    idx = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
    return (
        [item["responses"][i] for i in idx],
        {item["responses"][i] for p, i in enumerate(idx) if p and ranks[i] == ranks[idx[p - 1]]},
    )


def test_a_labeler_ranks_in_the_browser_and_the_export_trains_a_reward_model(browser, tmp_path, capsys):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    items_file, db = tmp_path / "items.jsonl", tmp_path / "labels.sqlite"
    items_file.write_text("".join(json.dumps(it) + "\n" for it in ITEMS))
    cli_main(["label", "add-labeler", "--db", str(db), "--name", "ann"])
    token = capsys.readouterr().out.split("shown once: ")[1].split()[0]
    proc, url = load_benchmark("label_load").start_server(db, "--items", str(items_file))
    page, entered = Page(browser), {}
    try:
        browser.get(f"{url}/label")
        assert browser.current_url.endswith("/login")
        with page.loads_a_new_page():
            browser.find_element(By.ID, "token").send_keys(token + Keys.ENTER)
        assert browser.current_url.endswith("/label")

        # Item 1, keyboard only. The first card has the focus: '3' sends it to third place; 'k' moves the
        # focus to the card above it, Shift+Up moves that card to the top, 'h' flags it (makes up facts).
        item, order, ties = page.item(), page.order(), set()
        assert page.focused_text() == order[0]
        page.keys("3")
        order, ties = moved(order, ties, order[0], 2)
        page.keys("k")
        flagged = page.focused_text()
        assert flagged == order[1]
        page.keys(Keys.ARROW_UP, modifier=Keys.SHIFT)
        page.keys("h")
        order, ties = moved(order, ties, flagged, 0)
        assert page.state() == shown(order, ties)
        entered[item["prompt"]] = (
            kwise(order, ties, item),
            [["made_up_facts"] if r == flagged else [] for r in item["responses"]],
            None,
        )
        with page.loads_a_new_page():
            page.keys(Keys.ENTER, modifier=Keys.CONTROL)

        # Item 2, mouse only: drag the last card to the top by its handle, click 'down' on the second card,
        # click '= tie' on the third (tied with the second), tick a flag on the first, choose a score of 6.
        item, order, ties = page.item(), page.order(), set()
        assert item["prompt"] == "list two fish ?" and browser.execute_script("return window.pwned") is None
        assert "two fish <script>window.pwned = 1</script>" in order  # shown as text, never run
        cards = page.cards()
        ActionChains(browser).click_and_hold(
            cards[-1].find_element(By.CSS_SELECTOR, ".handle")
        ).move_to_element_with_offset(cards[0], 0, -20).pause(0.1).release().perform()
        order, ties = moved(order, ties, order[-1], 0)
        assert page.state() == shown(order, ties)
        page.cards()[1].find_element(By.CSS_SELECTOR, ".down").click()
        order, ties = moved(order, ties, order[1], 2)
        page.cards()[2].find_element(By.CSS_SELECTOR, ".tie").click()
        ties.add(order[2])
        page.cards()[0].find_element(By.CSS_SELECTOR, "input[value=inappropriate]").click()
        Select(browser.find_element(By.ID, "score")).select_by_value("6")
        assert page.state() == shown(order, ties)
        entered[item["prompt"]] = (
            kwise(order, ties, item),
            [["inappropriate"] if r == order[0] else [] for r in item["responses"]],
            6,
        )
        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(SCREENSHOT))
        with page.loads_a_new_page():
            browser.find_element(By.ID, "submit").click()

        # Item 3, keyboard, a tie: 'j' moves the focus to the second card, 't' ties it with the first.
        item, order = page.item(), page.order()
        page.keys("j", "t")
        ties = {order[1]}
        assert page.state() == shown(order, ties)
        entered[item["prompt"]] = (kwise(order, ties, item), [[] for _ in item["responses"]], None)
        with page.loads_a_new_page():
            page.keys(Keys.ENTER, modifier=Keys.CONTROL)
        assert "Nothing left to rank for you" in browser.page_source

        # Back to item 3: it shows the ranking as entered; a click on the last card and '1' move it to the top.
        with page.loads_a_new_page():
            browser.find_element(By.ID, "back").click()
        assert page.item() is item and browser.find_element(By.ID, "revisit")
        order, ties = as_stored(entered[item["prompt"]][0], item)
        assert page.state() == shown(order, ties)
        page.cards()[2].click()
        page.keys("1")
        order, ties = moved(order, ties, order[2], 0)
        assert page.state() == shown(order, ties)
        entered[item["prompt"]] = (kwise(order, ties, item), [[] for _ in item["responses"]], None)
        with page.loads_a_new_page():
            page.keys(Keys.ENTER, modifier=Keys.CONTROL)
        assert "Nothing left to rank for you" in browser.page_source
        assert browser.find_element(By.ID, "ranked").text == "3"
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    out = tmp_path / "comparisons.jsonl"
    cli_main(["label", "export", "--db", str(db), "--out", str(out)])
    records = load_comparisons(out)
    assert {r["prompt"]: (r["ranking"], r["flags"], r["score"]) for r in records} == entered
    assert len(records) == 3 and all(r["labeler"] == "ann" for r in records)
    assert next(r for r in records if r["prompt"] == "list two fish ?")["ended_with_eos"] == [True, True, False, True]

    tok = tiny_tokenizer()
    tiny_lm(len(tok)).save_pretrained(tmp_path / "sft")
    tok.save_pretrained(tmp_path / "sft")
    cli_main(
        [
            "rm",
            "--model",
            str(tmp_path / "sft"),
            "--train",
            str(out),
            "--out",
            str(tmp_path / "rm"),
            "--device",
            "cpu",
            "--progress",
            "false",
            "--tensorboard",
            "false",
        ]
    )
    summary = json.loads((tmp_path / "rm" / "summary.json").read_text())
    assert (tmp_path / "rm" / "model.safetensors").is_file() and summary["steps"] >= 1
