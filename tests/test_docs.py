"""The docs hold together: every relative link resolves (file and heading), every number
the README quotes is one a docs page states (each figure lives on the page that measures
it), and the README stays a page a newcomer reads in minutes."""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
PAGES = [os.path.join(REPO, "README.md")] + sorted(
    os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith(".md")) + [
    os.path.join(REPO, folder, "README.md") for folder in ("multilabel", "bench", "DATASET")]

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")


def text(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def prose(markdown):
    """`markdown` without its fenced code blocks, where a `[x](y)` is code, not a link."""
    return FENCE.sub("", markdown)


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for line in prose(text(path)).splitlines():
        match = re.match(r"#{1,6} (.*)", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path):
    for target in LINK.findall(prose(text(path))):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, mailto:, ...
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_relative_link_resolves(page):
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), file)) if file else page
        if not os.path.exists(resolved):
            broken.append(f"{target}: no {os.path.relpath(resolved, REPO)}")
        elif anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {os.path.relpath(resolved, REPO)}")
    assert not broken, f"{os.path.relpath(page, REPO)}: " + "; ".join(broken)


def test_the_checks_find_what_they_look_for():
    assert slug("TensorFlow's start-up lines and the tensorflow wheel") == \
        "tensorflows-start-up-lines-and-the-tensorflow-wheel"
    assert slug("`multilabel.Classifier`") == "multilabelclassifier"
    assert list(relative_links(os.path.join(REPO, "README.md")))
    assert NUMBER.findall("mAP 0.9344, v1.2.3, 3 min, (0.403)") == ["0.9344", "0.403"]


def test_every_number_the_readme_quotes_is_stated_in_the_docs():
    docs = "\n".join(text(p) for p in PAGES[1:])
    quoted = NUMBER.findall(text(PAGES[0]))
    assert quoted  # the demo's excerpt quotes its measures
    missing = [n for n in quoted
               if not re.search(rf"(?<![\w.]){re.escape(n)}(?![\w.]*\d)", docs)]
    assert not missing, f"README.md quotes numbers no docs page states: {missing}"


def test_the_readme_is_short_and_links_every_docs_page():
    readme = text(PAGES[0])
    assert len(readme.splitlines()) <= 160
    linked = {os.path.normpath(t.partition("#")[0]) for t in relative_links(PAGES[0])}
    pages = {os.path.join("docs", n) for n in os.listdir(DOCS) if n.endswith(".md")}
    assert not pages - linked, f"docs pages the README does not link: {sorted(pages - linked)}"


def test_the_project_has_a_citation_file():
    cff = text(os.path.join(REPO, "CITATION.cff"))
    for key in ("cff-version:", "message:", "title:", "authors:", "license: Apache-2.0"):
        assert re.search(rf"^{re.escape(key)}", cff, re.M), key
    assert "academic purposes only" in cff  # the demo data's terms travel with it
