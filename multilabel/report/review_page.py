"""The review page: one HTML file where a person fixes the labels a run doubts, and saves
the whole label file back.

A run lists the images whose labels look wrong (label_issues.csv) and the near-duplicates
labelled two ways (near_duplicates.csv). Fixing them by hand means opening each image,
finding its line in the label file and editing it. This page shows each doubt as a card
(the image or the pair side by side, the given labels, the suggestion, the model's
probabilities); the reviewer accepts the suggestion, edits the labels or rejects the
doubt, with the mouse or the keyboard, and "Save labels" downloads the whole label file
with the choices applied, in the layout the data set came in (`LAYOUTS`), which
data_generation.py reads as it is. Choices are kept in the browser's local storage, so a
reload or a second visit continues where the last stopped.

The file is self-contained, as the report page is (thumbnails are data URIs, style and
script inline, nothing fetched), so it works from `file://` with no server. The data
(every image's name and labels, the cards) is one JSON block the script reads; every
text from the data reaches the page through it or through `html.escape`.
"""

import dataclasses
import glob
import hashlib
import html
import json
import os

import numpy as np

from multilabel.base import atomic
from multilabel.base.errors import UserError
from multilabel.data import csv_labels
from multilabel.data.image_sources import natural_key
from multilabel.evaluation import label_issues
from multilabel.report.page import thumbnail_uri

# How a label file is laid out: data_generation.py reads each (docs/data.md).
LAYOUTS = {
    "json": "labels.json: a JSON list of 1/-1 flags a line, images in name order",
    "tags": "CSV image,tags: the tags separated by spaces (--label_delim's default)",
    "one-hot": "CSV image,class_1,...: 1 or 0 per class",
}


@dataclasses.dataclass(frozen=True)
class LabelFile:
    """Every image of the run with its given labels, as its label file names them."""

    layout: str  # a key of LAYOUTS: the one the data set came in, as far as it can tell
    paths: tuple  # the paths the run opened
    names: tuple  # each image's name in the label file (relative to its images folder)
    labels: np.ndarray  # [N, C] of 0/1


@dataclasses.dataclass(frozen=True)
class Card:
    """One doubt: an image whose labels look wrong, or a pair of near-duplicates labelled
    differently. Accepting gives every image of the card the `suggested` labels."""

    kind: str  # "issue" or "pair"
    images: tuple  # indices into LabelFile.paths
    suggested: np.ndarray  # [C] of 0/1
    probs: tuple  # per image, [C] held-out probabilities or None where there are none
    parts: tuple  # per image, its part
    note: str  # the score, or the similarity


def label_file_of(image_dir, parts):
    """The `LabelFile` of a run's `parts` (data.dataset.Part) in `image_dir`.

    The layout is guessed from what lies in the dataset folder: its `labels.json` (the
    demo's), else its one CSV file (one-hot when the header has more than two columns),
    else an `image,tags` CSV. Names drop the images folder the list paths share
    (`images/12.jpg` -> `12.jpg`), as a CSV names them relative to `--images`.
    """
    paths = tuple(p for part in parts for p in part.paths)
    labels = np.concatenate([np.asarray(part.labels) for part in parts]).astype(int)
    relative = [os.path.relpath(p, image_dir).replace(os.sep, "/") for p in paths]
    firsts = {r.split("/", 1)[0] for r in relative}
    shared = firsts.pop() if len(firsts) == 1 and all("/" in r for r in relative) else ""
    names = tuple(r[len(shared) + 1:] if shared else r for r in relative)
    return LabelFile(_layout(image_dir), paths, names, labels)


def _layout(image_dir):
    """The layout the data folder's labels are in: labels.json, or its one CSV told apart
    as data_generation.py tells it (by the cells: `image,sea` with 1/0 is one-hot);
    label_image.py's CSV is saved one-hot, the layout any class name survives."""
    if os.path.exists(os.path.join(image_dir, "labels.json")):
        return "json"
    csvs = glob.glob(os.path.join(glob.escape(image_dir), "*.csv"))
    if len(csvs) == 1:
        try:
            layout = csv_labels.read_csv_labels(csvs[0]).layout
        except UserError:
            return "tags"
        return "tags" if layout == "tags" else "one-hot"
    return "tags"


def cards(label_file, issues, found, held_out):
    """The page's `Card`s: the `issues` (label_issues.Issue, worst first), then the pairs of
    `found` (near_duplicates.Found) whose labels differ, most similar first. `held_out`
    (label_issues.HeldOut) gives the probabilities shown with a pair's images."""
    index = {path: i for i, path in enumerate(label_file.paths)}
    probs_of = {path: part.probs[i] for part in held_out for i, path in enumerate(part.paths)}
    part_of = {path: part.name for part in held_out for path in part.paths}
    out = [Card("issue", (index[issue.image],),
                (issue.given & ~issue.remove | issue.add).astype(int), (issue.probs,),
                (issue.part,), f"label quality {issue.score:.3f}")
           for issue in issues if issue.image in index]
    for pair in found.pairs:
        if found.same_labels(pair):
            continue
        paths = (found.paths[pair.first], found.paths[pair.second])
        if not all(p in index for p in paths):
            continue
        out.append(Card("pair", tuple(index[p] for p in paths), _pair_suggestion(
            [found.labels[pair.first], found.labels[pair.second]],
            [probs_of.get(p) for p in paths]), tuple(probs_of.get(p) for p in paths),
            tuple(part_of.get(p, found.parts[k]) for p, k in zip(paths, (pair.first,
                                                                          pair.second))),
            f"similarity {pair.similarity:.3f}"))
    return out


def _pair_suggestion(labels, probs):
    """The labels of the pair's image the model agrees with more (the higher label quality
    score); the first image's where either has no held-out prediction."""
    if any(p is None for p in probs):
        return np.asarray(labels[0]).astype(int)
    scores = label_issues.quality_scores(np.stack(labels), np.stack(probs))
    return np.asarray(labels[int(np.argmax(scores))]).astype(int)


def unlabelled_cards(paths, suggested, probs, notes):
    """`(LabelFile, cards)` for photos to label (label_image.py --rank), one card each in
    the given order: the suggestion is the model's label set. The label file names each
    photo relative to the folder that holds them all."""
    folder = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    names = tuple(os.path.relpath(os.path.abspath(p), folder).replace(os.sep, "/")
                  for p in paths)
    label_file = LabelFile("tags", tuple(paths), names,
                           np.zeros((len(paths), np.shape(suggested)[1]), int))
    return label_file, [Card("new", (i,), np.asarray(suggested[i]).astype(int), (probs[i],),
                             ("unlabelled",), notes[i]) for i in range(len(paths))]


def page_data(class_names, label_file, page_cards, thumbnails, unlabelled=False):
    """The JSON the page's script reads: classes, every image's name and labels, the
    cards. `thumbnails` maps an image index to its data URI. `unlabelled`: the images
    have no labels yet (unlabelled_cards), so "Save labels" writes only the ones accepted
    or edited, as a CSV (labels.json lists every image of a folder by position)."""
    layouts = {k: v for k, v in LAYOUTS.items() if not unlabelled or k != "json"}
    return {
        "classes": list(class_names), "layout": label_file.layout, "layouts": layouts,
        "unlabelled": unlabelled,
        "files": [{"name": name, "labels": [int(v) for v in labels]}
                  for name, labels in zip(label_file.names, label_file.labels)],
        "order": sorted(range(len(label_file.names)),
                        key=lambda i: natural_key(label_file.names[i])),
        "cards": [{"kind": c.kind, "images": [int(i) for i in c.images],
                   "thumbs": [thumbnails[i] for i in c.images],
                   "suggested": [int(v) for v in c.suggested],
                   "probs": [None if p is None else [round(float(v), 4) for v in p]
                             for p in c.probs],
                   "parts": list(c.parts), "note": c.note} for c in page_cards],
    }


def render(data, title="Review labels"):
    """The page's HTML for `page_data`'s `data`."""
    text = json.dumps(data, separators=(",", ":"))
    # Inside <script>, "</" could end the block early; JSON may escape "/" as "\/".
    text = text.replace("</", "<\\/")
    page_id = hashlib.sha256(text.encode()).hexdigest()[:16]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{HELP}\n"
            f'<script type="application/json" id="data" data-page="{page_id}">{text}</script>\n'
            f'<div id="toolbar"></div>\n<div id="cards"></div>\n'
            f"<script>{SCRIPT}</script>\n</body>\n</html>\n")


def write_review_page(path, class_names, label_file, page_cards, unlabelled=False):
    """Atomically write the review page of `page_cards` over `label_file`."""
    shown = sorted({i for card in page_cards for i in card.images})
    thumbnails = {i: thumbnail_uri(label_file.paths[i]) for i in shown}
    atomic.write_text(path, render(page_data(class_names, label_file, page_cards, thumbnails,
                                             unlabelled)))


HELP = """<p class="note">Each card is a doubt: an image whose given labels the model
contradicts, or two near-identical images labelled differently. <b>Accept</b> (key
<kbd>a</kbd>) gives its images the suggested labels, <b>Reject</b> (<kbd>r</kbd>) keeps the
given ones, and ticking the boxes (or keys <kbd>1</kbd>-<kbd>9</kbd>) <b>edits</b> them;
<kbd>j</kbd>/<kbd>k</kbd> or the arrows move between cards, <kbd>u</kbd> undoes a card's
choice. Choices are kept in this browser. <b>Save labels</b> (<kbd>s</kbd>) downloads the
whole label file with them applied; put it in place of the old one and run
data_generation.py again.</p>"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
.note { color: #555; font-size: 13px; }
#toolbar { position: sticky; top: 0; background: #fff; padding: 8px 0; z-index: 1;
           border-bottom: 1px solid #ccc; margin-bottom: 12px; }
.card { border: 2px solid #ddd; border-radius: 4px; padding: 8px; margin: 0 0 10px;
        display: flex; gap: 16px; align-items: flex-start; }
.card.current { border-color: #1565c0; }
.card.accept { background: #eef8ee; } .card.reject { background: #f6f6f6; }
.card.edit { background: #fff8e6; }
.card img { max-width: 128px; max-height: 128px; display: block; }
.image { width: 270px; font-size: 12px; }
.file { font-family: monospace; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table { border-collapse: collapse; } td, th { padding: 1px 6px; font-size: 12px; }
td.bar { width: 60px; } td.bar span { display: block; height: 8px; background: #9ab; }
.status { font-weight: 600; }
button { margin-right: 4px; }
"""

SCRIPT = r"""
"use strict";
const block = document.getElementById("data");
const data = JSON.parse(block.textContent);
const storageKey = "multilabel-review:" + block.dataset.page;
let choices = {};
try { choices = JSON.parse(localStorage.getItem(storageKey) || "{}"); } catch (e) { choices = {}; }
let current = 0;

function keep() { localStorage.setItem(storageKey, JSON.stringify(choices)); }
function names(flags) {
  const n = data.classes.filter((_, c) => flags[c]);
  return n.length ? n.join(", ") : "(none)";
}
function labelsOf(k) {
  const choice = choices[k];
  if (!choice || choice.action === "reject") return null;
  return choice.action === "accept" ? data.cards[k].suggested : choice.labels;
}
function shownLabels(k) {
  // Before a choice: the given labels, or for a photo without any, the suggestion.
  return labelsOf(k) || (data.unlabelled ? data.cards[k].suggested
                                         : data.files[data.cards[k].images[0]].labels);
}
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") e.className = value; else e.setAttribute(key, value);
  }
  for (const child of children) e.append(child);
  return e;
}

function toolbar() {
  const bar = document.getElementById("toolbar");
  const select = el("select", {id: "layout"});
  for (const [key, text] of Object.entries(data.layouts)) {
    const option = el("option", {value: key}, text);
    if (key === data.layout) option.selected = true;
    select.append(option);
  }
  const save = el("button", {id: "save"}, "Save labels");
  save.addEventListener("click", saveLabels);
  bar.append(save, " as ", select, " ", el("span", {id: "summary", class: "note"}),
             " ", el("span", {id: "error", class: "status"}));
}

function summary() {
  const counts = {accept: 0, edit: 0, reject: 0};
  for (const choice of Object.values(choices)) counts[choice.action] += 1;
  const left = data.cards.length - counts.accept - counts.edit - counts.reject;
  document.getElementById("summary").textContent =
    `${data.cards.length} cards: ${counts.accept} accepted, ${counts.edit} edited, ` +
    `${counts.reject} rejected, ${left} to decide`;
}

function drawCard(k) {
  const card = data.cards[k];
  const choice = choices[k];
  const box = el("div", {class: "card" + (k === current ? " current" : "") +
                                 (choice ? " " + choice.action : ""), id: "card-" + k});
  card.images.forEach((f, m) => {
    const file = data.files[f];
    const probs = card.probs[m];
    const table = el("table");
    data.classes.forEach((name, c) => {
      const p = probs ? probs[c] : null;
      const bar = el("td", {class: "bar"});
      if (p !== null) bar.append(el("span", {style: `width:${Math.round(100 * p)}%`}));
      table.append(el("tr", {}, el("td", {}, name), bar,
                      el("td", {}, p === null ? "" : p.toFixed(3))));
    });
    box.append(el("div", {class: "image"}, el("img", {src: card.thumbs[m], alt: file.name}),
      el("div", {class: "file", title: file.name}, `${file.name} (${card.parts[m]})`),
      el("div", {}, "given: ", el("b", {}, data.unlabelled ? "(not labelled yet)" :
                                                            names(file.labels))), table));
  });
  const labels = shownLabels(k);
  const boxes = el("div", {class: "labels"});
  data.classes.forEach((name, c) => {
    const tick = el("input", {type: "checkbox", "data-class": c});
    tick.checked = !!labels[c];
    tick.addEventListener("change", () => { current = k; toggle(k, c, tick.checked); });
    boxes.append(el("label", {}, tick, ` ${c + 1} ${name}`), " ");
  });
  const accept = el("button", {class: "accept"}, "Accept (a)");
  const reject = el("button", {class: "reject"}, "Reject (r)");
  accept.addEventListener("click", () => { current = k; decide(k, "accept"); });
  reject.addEventListener("click", () => { current = k; decide(k, "reject"); });
  const status = choice ? {accept: "accepted", reject: "rejected: labels kept as given",
                           edit: "edited"}[choice.action] : "not decided";
  box.append(el("div", {},
    el("div", {}, {pair: "near-duplicates labelled differently", new: "to label",
                   issue: "labels that look wrong"}[card.kind],
                  el("span", {class: "note"}, ` ${card.note}`)),
    el("div", {}, "suggested: ", el("b", {}, names(card.suggested))),
    el("div", {}, "labels to save: ", boxes),
    el("div", {}, accept, reject, el("span", {class: "status"}, status))));
  return box;
}

function draw() {
  const holder = document.getElementById("cards");
  holder.replaceChildren(...data.cards.map((_, k) => drawCard(k)));
  if (!data.cards.length) holder.append(el("p", {}, "Nothing to review: no doubts were found."));
  summary();
}
function redraw(k) {
  document.getElementById("card-" + k).replaceWith(drawCard(k));
  summary();
}

function decide(k, action) { choices[k] = {action}; keep(); redraw(k); }
function toggle(k, c, on) {
  const labels = shownLabels(k).slice();
  labels[c] = on ? 1 : 0;
  choices[k] = {action: "edit", labels};
  keep(); redraw(k);
}
function move(step) {
  const before = current;
  current = Math.max(0, Math.min(data.cards.length - 1, current + step));
  if (before !== current) { redraw(before); redraw(current); }
  document.getElementById("card-" + current).scrollIntoView({block: "nearest"});
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || !data.cards.length) return;
  if (event.target.tagName === "SELECT") return;
  const key = event.key;
  if (key === "a") decide(current, "accept");
  else if (key === "r") decide(current, "reject");
  else if (key === "u") { delete choices[current]; keep(); redraw(current); }
  else if (key === "j" || key === "ArrowDown") move(1);
  else if (key === "k" || key === "ArrowUp") move(-1);
  else if (key === "s") saveLabels();
  else if (/^[1-9]$/.test(key) && Number(key) <= data.classes.length) {
    const c = Number(key) - 1;
    toggle(current, c, !shownLabels(current)[c]);
  } else return;
  event.preventDefault();
});

function corrected() {
  const labels = data.files.map((f) => f.labels.slice());
  data.cards.forEach((card, k) => {
    const chosen = labelsOf(k);
    if (chosen) for (const f of card.images) labels[f] = chosen.slice();
  });
  return labels;
}
function csvCell(text) {
  return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}
function rows() {
  // Photos to label: only those given labels here (accepted or edited).
  if (!data.unlabelled) return data.order;
  const chosen = new Set();
  data.cards.forEach((card, k) => { if (labelsOf(k)) card.images.forEach((f) => chosen.add(f)); });
  return data.order.filter((i) => chosen.has(i));
}
function fileText(layout, labels) {
  const order = rows();
  if (layout === "json") {
    return order.map((i) => "[" + labels[i].map((v) => (v ? "1" : "-1")).join(", ") + "]")
      .join("\n");
  }
  if (layout === "one-hot") {
    return ["image," + data.classes.map(csvCell).join(","),
            ...order.map((i) => csvCell(data.files[i].name) + "," + labels[i].join(","))]
      .join("\n") + "\n";
  }
  const empty = order.find((i) => !labels[i].some((v) => v));
  if (empty !== undefined) {
    throw new Error(`${data.files[empty].name} has no label, which an image,tags CSV ` +
                    "cannot say: save it one-hot");
  }
  return ["image,tags", ...order.map((i) => csvCell(data.files[i].name) + "," +
          csvCell(data.classes.filter((_, c) => labels[i][c]).join(" ")))].join("\n") + "\n";
}
function saveLabels() {
  const layout = document.getElementById("layout").value;
  const error = document.getElementById("error");
  let text;
  try { text = fileText(layout, corrected()); } catch (e) { error.textContent = e.message; return; }
  error.textContent = "";
  const link = el("a", {download: layout === "json" ? "labels.json" : "labels.csv",
                        href: URL.createObjectURL(new Blob([text], {type: "text/plain"}))});
  document.body.append(link);
  link.click();
  link.remove();
}

toolbar();
draw();
"""
