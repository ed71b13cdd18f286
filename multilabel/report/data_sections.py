"""The report page's sections about the data itself: near-duplicates side by side, and the
link to the review page where doubts are fixed (review_page)."""

import html
import os

from multilabel.report.page import thumbnail_uri

PAIRS_SHOWN = 24  # near-duplicate pairs drawn side by side at most, the most similar first


def near_duplicates_section(found, csv_name, max_shown=PAIRS_SHOWN):
    """The near-duplicates section: the counts, then up to `max_shown` pairs, test leaks
    first, then those labelled differently, then the rest, each group most similar first."""
    counts = found.counts()
    leaked = set(found.leaked_test())

    def rank(pair):
        leak = pair.first in leaked or pair.second in leaked
        return (not leak, found.same_labels(pair), -pair.similarity)

    shown = sorted(found.pairs, key=rank)[:max_shown]
    cards = "".join(_pair_card(found, pair) for pair in shown)
    return (
        '<section id="near-duplicates"><h2>Near-duplicates</h2>\n'
        f"<p>{len(found.pairs):,} pairs of images whose features are nearly the same "
        f"(re-encoded, resized, cropped or recoloured copies), listed in {html.escape(csv_name)}: "
        f"<b>{counts['leaked_test']:,}</b> test images with a near-duplicate in training (their "
        f"test measures are too good; --dedupe leaves them out), "
        f"<b>{counts['within_training']:,}</b> pairs within training (each weighs double), "
        f"<b>{counts['different_labels']:,}</b> pairs labelled differently. Shown: "
        f"{'all of them' if len(shown) == len(found.pairs) else f'{len(shown)}'}, test leaks "
        f'first.</p><div class="cards">{cards}</div></section>')


def _pair_card(found, pair):
    halves = []
    for i in (pair.first, pair.second):
        path = found.paths[i]
        halves.append(f'<div><img src="{thumbnail_uri(path)}" alt="{html.escape(path)}">'
                      f'<div class="file" title="{html.escape(path)}">'
                      f"{html.escape(os.path.basename(path))} ({html.escape(found.parts[i])})"
                      "</div></div>")
    same = "same labels" if found.same_labels(pair) else "<b>labelled differently</b>"
    return (f'<figure class="card" style="width:290px"><div class="row" style="gap:6px">'
            f'{"".join(halves)}</div>'
            f"<figcaption>similarity {pair.similarity:.3f}, {same}</figcaption></figure>")


def review_link_section(review_path, page_path, count):
    """A section linking the review page (a path relative to the report's folder)."""
    link = os.path.relpath(review_path, os.path.dirname(page_path) or ".").replace(os.sep, "/")
    return ('<section id="review"><h2>Fix the labels</h2>\n'
            f'<p><a href="{html.escape(link)}">Open the review page</a>: the {count:,} doubts '
            "above (labels that look wrong, near-duplicates labelled differently), each to "
            "accept, edit or reject, and a button that saves the corrected label file.</p>"
            "</section>")
