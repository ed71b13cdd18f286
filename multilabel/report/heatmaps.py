"""The report page's "where it looked" section: class activation maps over test photos.

For each image shown (the worst wrong ones, then a few confident right ones), one heat
map per class that was predicted or missed, drawn over the photo as the model saw it
(resized to the module's input). A map is a class's evidence at each position: its
mean over the positions, plus the class's bias, is the class's logit
(labelling.class_activation). Red raises the logit, blue lowers it; each map is scaled
to its own largest magnitude, printed beside it. For a module set, each member's map is
drawn, as the head weights it. Where the module exposes only its pooled features, the
section says why and draws nothing.
"""

import dataclasses
import html
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from multilabel.evaluation.thresholds import apply_thresholds

SHOWN_WRONG = 24  # the worst wrong images that get maps: each is a forward pass and ~15 KB
SHOWN_RIGHT = 4  # confident right ones, for contrast
SIZE = 128  # pixels, the side of each drawn map
STYLE = (".card.wide { width: auto; max-width: 100%; } .heats { display: flex; flex-wrap: wrap; "
         "gap: 6px; } .heat { width: 128px; font-size: 11px; } .heats img { margin: 0; }")
_KINDS = {(True, True): ("tp", "true, predicted"), (True, False): ("fn", "true, missed"),
          (False, True): ("fp", "predicted, not true")}


@dataclasses.dataclass(frozen=True)
class Explained:
    """The images to draw and their maps, or why there are none (`reason`)."""

    paths: tuple = ()
    labels: np.ndarray = None  # [n, C] of 0/1
    probs: np.ndarray = None  # [n, C]
    thresholds: np.ndarray = None  # [C]
    never_empty: bool = False
    images: np.ndarray = None  # [n, H, W, 3] in [0, 1], as the module saw them
    maps: tuple = ()  # per member [n, h, w, C], logit contributions per position
    members: tuple = ()  # the members' names, one per map
    wrong: int = 0  # the first `wrong` images have a wrong label set, the others a right one
    reason: str = ""  # why there are no maps, when there are none


def section(class_names, explained, data_uri):
    """The HTML section; empty where the run computed nothing (`explained` None)."""
    if explained is None:
        return ""
    head = f'<section id="heatmaps"><style>{STYLE}</style><h2>Where it looked</h2>\n'
    if explained.reason:
        return (f"{head}<p>No class activation maps: {html.escape(explained.reason)}. "
                "Nothing is drawn rather than a map that would not be the model's.</p></section>")
    if not len(explained.paths):
        return f"{head}<p>No test image to draw.</p></section>"
    members = (f" One map per member module ({html.escape(', '.join(explained.members))}), "
               "each its own block of features through its own rows of the head's weights."
               if len(explained.members) > 1 else "")
    cards = [_card(i, class_names, explained, data_uri) for i in range(len(explained.paths))]
    return (f"{head}<p>Class activation maps (Zhou et al. 2016): for each class predicted or "
            "missed, the evidence at each position of the module's last feature map, which "
            "the head averages into the class's logit; so the map is exactly what the model "
            "used, not an estimate. Red raises the class's probability, blue lowers it; each "
            f"map is scaled to its own largest value (&plusmn;, beside it).{members}</p>"
            f"<h3>Wrong label sets, worst first ({explained.wrong})</h3>"
            f'<div class="cards">{"".join(cards[:explained.wrong])}</div>'
            f"<h3>Confident and right ({len(cards) - explained.wrong})</h3>"
            f'<div class="cards">{"".join(cards[explained.wrong:])}</div></section>')


def _card(i, class_names, explained, data_uri):
    truth = explained.labels[i].astype(bool)
    predicted = apply_thresholds(explained.probs[i:i + 1], explained.thresholds,
                                 explained.never_empty)[0]
    photo = _jpeg(_resized(explained.images[i]))
    figures = [f'<img src="{data_uri("image/jpeg", photo)}" alt="photo">']
    for c, name in enumerate(class_names):
        kind = _KINDS.get((bool(truth[c]), bool(predicted[c])))
        if kind is None:
            continue
        for m, member in enumerate(explained.members):
            cam = explained.maps[m][i, :, :, c]
            scale = float(np.abs(cam).max())
            overlay = _jpeg(overlay_map(explained.images[i], cam))
            where = f" ({html.escape(member)})" if len(explained.members) > 1 else ""
            figures.append(
                f'<div class="heat"><img src="{data_uri("image/jpeg", overlay)}" '
                f'alt="where the model saw {html.escape(name)}">'
                f'<div class="{kind[0]}">{html.escape(name)}{where}: '
                f"{explained.probs[i, c]:.2f}, {kind[1]}</div>"
                f'<div class="note">&plusmn;{scale:.2g}</div></div>')
    file = str(explained.paths[i]).replace("\\", "/").rsplit("/", 1)[-1]
    return (f'<figure class="card wide"><div class="file" title="{html.escape(str(explained.paths[i]))}">'
            f'{html.escape(file)}</div><div class="heats">{"".join(figures)}</div></figure>')


def overlay_map(image, cam, size=SIZE, alpha=0.55):
    """The photo [H, W, 3] in [0, 1] at `size` with the signed map `cam` [h, w] over it,
    scaled to its largest magnitude: uint8 [size, size, 3]."""
    scale = float(np.abs(cam).max()) or 1.0
    field = Image.fromarray((np.asarray(cam, np.float32) / scale)).resize((size, size),
                                                                           Image.BILINEAR)
    colours = colormaps["RdBu_r"]((np.asarray(field) + 1) / 2)[..., :3]
    weight = alpha * np.abs(np.asarray(field))[..., None] ** 0.5  # faint where near 0
    blended = (1 - weight) * _resized(image, size) / 255.0 + weight * colours
    return np.clip(blended * 255, 0, 255).astype(np.uint8)


def _resized(image, size=SIZE):
    pixels = np.clip(np.asarray(image) * 255, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.BILINEAR), np.float64)


def _jpeg(pixels):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
