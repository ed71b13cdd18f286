"""The review page: its cards and label file from hand-made results, then the page itself
driven in headless Chromium through accept, edit, reject, a reload and save.

The browser test uses Selenium (PyPI, requirements-test.txt) with Debian's `chromium` and
`chromium-driver`, which `make test` installs where they are missing (Makefile): Debian
ships the driver built from the same source as the browser, so the two always match,
where Playwright's Python package expects the browser build it downloads itself, which
this project cannot fetch. Without them the browser test is skipped, saying so.
"""

import dataclasses
import io
import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from multilabel.data import csv_labels, labels_json
from multilabel.data.dataset import Part
from multilabel.evaluation import label_issues, near_duplicates
from multilabel.report import review_page

CLASSES = ("sea", "sunset", "trees")


def _parts(folder):
    """Four images in folder/images: train 1, 2, 10 and test 3 (named to sort naturally)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for name, colour in (("1", (200, 0, 0)), ("2", (0, 200, 0)), ("10", (0, 0, 200)),
                         ("3", (0, 0, 210))):
        path = folder / "images" / f"{name}.jpg"
        Image.new("RGB", (24, 16), colour).save(path)
        paths.append(str(path))
    train = Part("train", tuple(paths[:3]), np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
                 ("",) * 3)
    test = Part("test", (paths[3],), np.array([[1, 0, 1]]), ("",))
    return train, test


def _issue(path, given, add, remove, probs, score=0.1):
    return label_issues.Issue(path, "train", np.array(given, bool), np.array(probs),
                              np.array(add, bool), np.array(remove, bool), score)


def _page_inputs(folder):
    train, test = _parts(folder)
    label_file = review_page.label_file_of(str(folder), (train, test))
    issues = [_issue(train.paths[0], [1, 0, 0], [0, 1, 0], [1, 0, 0], [0.1, 0.9, 0.2]),
              _issue(train.paths[1], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0.8, 0.7, 0.1], 0.2)]
    # 10.jpg (train, trees) and 3.jpg (test, sea and trees): near-duplicates.
    found = near_duplicates.Found(label_file.paths, ("train",) * 3 + ("test",),
                                  label_file.labels, (near_duplicates.Pair(2, 3, 0.97),))
    held_out = (label_issues.HeldOut("train", train.paths, train.labels,
                                     np.array([[.1, .9, .2], [.8, .7, .1], [.1, .1, .9]])),
                label_issues.HeldOut("test", test.paths, test.labels, np.array([[.2, .1, .95]])))
    return label_file, review_page.cards(label_file, issues, found, held_out)


def test_the_label_file_names_images_inside_their_folder_and_guesses_the_layout(tmp_path):
    train, test = _parts(tmp_path)
    found = review_page.label_file_of(str(tmp_path), (train, test))
    assert found.names == ("1.jpg", "2.jpg", "10.jpg", "3.jpg")
    assert found.layout == "tags"
    # The CSV's layout is told as data_generation.py tells it: by its cells.
    (tmp_path / "labels.csv").write_text("image,sea,sunset,trees\n1.jpg,1,0,0\n")
    assert review_page.label_file_of(str(tmp_path), (train,)).layout == "one-hot"
    (tmp_path / "labels.csv").write_text("image,sea\n1.jpg,1\n2.jpg,0\n")  # one class
    assert review_page.label_file_of(str(tmp_path), (train,)).layout == "one-hot"
    (tmp_path / "labels.csv").write_text("image,tags\n1.jpg,sea sunset\n")
    assert review_page.label_file_of(str(tmp_path), (train,)).layout == "tags"
    (tmp_path / "labels.json").write_text("[1, -1, -1]")
    assert review_page.label_file_of(str(tmp_path), (train,)).layout == "json"


def test_cards_suggest_the_fixed_labels_and_for_a_pair_the_more_credible_ones(tmp_path):
    _, page_cards = _page_inputs(tmp_path)
    assert [c.kind for c in page_cards] == ["issue", "issue", "pair"]
    np.testing.assert_array_equal(page_cards[0].suggested, [0, 1, 0])  # remove sea, add sunset
    np.testing.assert_array_equal(page_cards[1].suggested, [1, 1, 0])  # add sea
    # The pair: 10.jpg given trees (p .9) scores higher than 3.jpg given sea too (p .2).
    assert page_cards[2].images == (2, 3) and page_cards[2].parts == ("train", "test")
    np.testing.assert_array_equal(page_cards[2].suggested, [0, 0, 1])


def test_a_pair_labelled_alike_is_no_card(tmp_path):
    label_file, _ = _page_inputs(tmp_path)
    found = near_duplicates.Found(label_file.paths, ("train",) * 4, label_file.labels,
                                  (near_duplicates.Pair(0, 1, 0.99),))
    same = near_duplicates.Found(label_file.paths, ("train",) * 4,
                                 np.ones_like(label_file.labels), found.pairs)
    assert len(review_page.cards(label_file, [], found, ())) == 1
    assert review_page.cards(label_file, [], same, ()) == []


def test_data_cannot_end_the_script_block(tmp_path):
    label_file, page_cards = _page_inputs(tmp_path)
    data = review_page.page_data(("</script><b>x",) + CLASSES[1:], label_file, page_cards,
                                 {i: "data:image/jpeg;base64,AA==" for i in range(4)})
    text = review_page.render(data)
    assert text.count("</script>") == 2  # the data block's and the script's own
    start = text.index('id="data"')
    block = text[text.index(">", start) + 1:text.index("</script>", start)]
    assert json.loads(block)["classes"][0] == "</script><b>x"
    assert json.loads(block)["order"] == [0, 1, 3, 2]  # 1, 2, 3, 10: name order


def _browser(download_dir):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test "
                    "installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir),
        "download.prompt_for_download": False})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(download_dir)})
    return chrome


def _saved(folder, name, before=None, timeout=30):
    """The text of folder/name once the browser has written it (and it differs from
    `before`)."""
    path = folder / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and not list(folder.glob("*.crdownload")):
            text = path.read_text(encoding="utf-8")
            if text != before:
                return text
        time.sleep(0.1)
    raise AssertionError(f"the browser saved no {name} in {timeout} s")


@pytest.mark.timeout(300)
def test_accept_edit_reject_survive_a_reload_and_save_the_whole_label_file(tmp_path):
    label_file, page_cards = _page_inputs(tmp_path / "data")
    label_file = dataclasses.replace(label_file, layout="json")  # the demo's layout
    page = tmp_path / "run" / "review.html"
    review_page.write_review_page(str(page), CLASSES, label_file, page_cards)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chrome = _browser(downloads)
    try:
        from selenium.webdriver.common.by import By

        chrome.get(page.as_uri())
        body = chrome.find_element(By.TAG_NAME, "body")
        body.send_keys("a")  # card 0: accept (sunset)
        body.send_keys("j", "3")  # card 1: given sunset; tick trees -> edit: sunset, trees
        # card 2 (the pair) by mouse: reject
        chrome.find_elements(By.CSS_SELECTOR, "#card-2 button.reject")[0].click()
        chrome.refresh()
        statuses = [e.text for e in chrome.find_elements(By.CSS_SELECTOR, ".card .status")]
        assert statuses == ["accepted", "edited", "rejected: labels kept as given"]
        assert "1 accepted, 1 edited, 1 rejected, 0 to decide" in chrome.find_element(
            By.ID, "summary").text

        chrome.find_element(By.ID, "save").click()
        saved = _saved(downloads, "labels.json")
        # labels.json lists images in name order: 1, 2, 3, 10.
        assert [flags for _, flags in labels_json.parse_labels(saved)] == [
            (0, 1, 0), (0, 1, 1), (1, 0, 1), (0, 0, 1)]

        chrome.find_element(By.CSS_SELECTOR, "#layout option[value='one-hot']").click()
        chrome.find_element(By.ID, "save").click()
        table = csv_labels.parse_csv_labels(io.StringIO(_saved(downloads, "labels.csv")))
        assert table.class_names == CLASSES
        assert [(r.name, sorted(r.labels)) for r in table.rows] == [
            ("1.jpg", ["sunset"]), ("2.jpg", ["sunset", "trees"]), ("3.jpg", ["sea", "trees"]),
            ("10.jpg", ["trees"])]

        # Undo the edit (key u on card 1): its image keeps its given labels.
        body = chrome.find_element(By.TAG_NAME, "body")
        body.send_keys("j", "u")
        before = (downloads / "labels.csv").read_text(encoding="utf-8")
        os.remove(downloads / "labels.csv")
        chrome.find_element(By.CSS_SELECTOR, "#layout option[value='tags']").click()
        chrome.find_element(By.ID, "save").click()
        tags = csv_labels.parse_csv_labels(io.StringIO(_saved(downloads, "labels.csv", before)),
                                           class_names=CLASSES)
        assert [(r.name, sorted(r.labels)) for r in tags.rows] == [
            ("1.jpg", ["sunset"]), ("2.jpg", ["sunset"]), ("3.jpg", ["sea", "trees"]),
            ("10.jpg", ["trees"])]
    finally:
        chrome.quit()


@pytest.mark.timeout(300)
def test_photos_to_label_save_only_the_ones_given_labels(tmp_path):
    train, test = _parts(tmp_path / "photos")
    paths = [*train.paths, *test.paths]  # 1, 2, 10, 3 (the rank order)
    suggested = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1]])
    label_file, page_cards = review_page.unlabelled_cards(
        paths, suggested, suggested * 0.8 + 0.1, [f"rank {k + 1}" for k in range(4)])
    assert label_file.names == ("1.jpg", "2.jpg", "10.jpg", "3.jpg")  # in their folder
    page = tmp_path / "next.html"
    review_page.write_review_page(str(page), CLASSES, label_file, page_cards, unlabelled=True)
    text = page.read_text(encoding="utf-8")
    assert "labels.json" not in text.split('id="data"')[1].split("</script>")[0]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chrome = _browser(downloads)
    try:
        from selenium.webdriver.common.by import By

        chrome.get(page.as_uri())
        body = chrome.find_element(By.TAG_NAME, "body")
        body.send_keys("a", "j", "1", "j", "r")  # accept 1.jpg, 2.jpg + sea, skip 10.jpg
        body.send_keys("s")
        table = csv_labels.parse_csv_labels(io.StringIO(_saved(downloads, "labels.csv")),
                                            class_names=CLASSES)
        assert [(r.name, sorted(r.labels)) for r in table.rows] == [
            ("1.jpg", ["sea"]), ("2.jpg", ["sea", "sunset"])]
    finally:
        chrome.quit()
