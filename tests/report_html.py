"""Read a report page back with the stdlib's HTML parser, for the tests that check it."""

import base64
import html.parser
import io
import re

from PIL import Image

# Attributes through which a page can make a browser fetch or open something.
URL_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "poster", "data",
                  "background", "cite", "manifest"}


class Page(html.parser.HTMLParser):
    """Sections in order, each section's <img> sources and cards, and every URL attribute."""

    def __init__(self, text):
        super().__init__()
        self.sections = []  # section ids, in order
        self.images = {}  # section id -> [src]
        self.cards = {}  # section id -> number of <figure class="card">
        self.urls = []  # (tag, attribute, value) of every URL-bearing attribute
        self.tags = set()
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        section = self.sections[-1] if self.sections else None
        if tag == "img":
            self.images.setdefault(section, []).append(attrs["src"])
        if tag == "figure" and attrs.get("class") == "card":
            self.cards[section] = self.cards.get(section, 0) + 1
        self.urls += [(tag, name, value) for name, value in attrs.items()
                      if name in URL_ATTRIBUTES]


def decode_data_uri(src):
    """The image a `data:image/...;base64,` URI holds, decoded (fails on anything else)."""
    match = re.fullmatch(r"data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)", src)
    assert match, f"not an embedded image: {src[:60]}"
    image = Image.open(io.BytesIO(base64.b64decode(match.group(2), validate=True)))
    image.load()
    return image


def assert_self_contained(text):
    """Nothing on the page can reach outside the file: every URL is an embedded image."""
    page = Page(text)
    assert not page.tags & {"script", "link", "iframe", "object", "embed", "base"}
    for tag, name, value in page.urls:
        if tag == "a" and name == "href" and re.fullmatch(r"[\w.-]+\.html", value):
            continue  # a page beside it in the run folder (the review page), no address
        assert tag == "img" and name == "src" and value.startswith("data:image/"), (tag, name)
    # Nor can the style sheet, and no address is written anywhere outside the data URIs.
    without_data = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text)
    assert "url(" not in without_data and "@import" not in without_data
    assert not re.search(r"[a-z]+://", without_data)
    return page
