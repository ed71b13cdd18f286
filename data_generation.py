"""Turn a folder of images and its labels into the list files retrain.py reads.

    python data_generation.py --image_dir DIR --labels DIR/train.csv --images train-jpg --suffix .jpg
    python data_generation.py --image_dir DIR --label_folders
    python data_generation.py --image_dir DATASET --class_names desert,mountains,sea,sunset,trees

reads the labels (a CSV file or one folder per label, paired with the images by file
name; or the demo's labels.json, line i the flags of image i of images/) and writes
into the dataset folder (docs/data.md has the layouts):

- dataset.lst: every image, `index<TAB>flags<TAB>PATH`, flags 0/1, PATH the image's path
  in the dataset folder as the labels name it (`train-jpg/img_00042.jpg`);
- dataset_train.lst and dataset_test.lst: a seeded split, `--split` of the images for
  training (the original project left this to hand work);
- class_names.txt: the class names, one a line: from the data (a CSV header's order, or
  tags and folder names sorted ignoring case) or `--class_names`.

--labels and --images are relative to the dataset folder (--image_dir), as the lists'
paths are. A class with too few positives for retrain.py to place its threshold is
named in a warning, with its counts per list.

Everything is read and checked before anything is written, and each file is written
atomically, so a bad input leaves no partial list behind.

Exit status: 0 written; 1 a full disk; 2 bad usage or input; 130 interrupted.
"""

import argparse
import logging
import sys

from multilabel.base import environment

# Before any import of a package: from a Python without them, one line says which to use.
environment.require("data_generation.py")

from multilabel.base.command import run_command
from multilabel.base.errors import UserError
from multilabel.base.project import DATASET, default_path
from multilabel.data import list_generation, listfile
from multilabel.data.list_generation import GenerationConfig
from multilabel.evaluation.thresholds import MIN_POSITIVES

DEFAULT_SEED = 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_dir", default=default_path(DATASET),
                        help="dataset folder: the images lie under it; the lists are "
                             f"written here (default: {DATASET} in the project folder)")
    parser.add_argument("--labels", default=None,
                        help="label file, relative to --image_dir (or absolute): FILE.csv "
                             "with a header, then image,tags (tags "
                             "separated by --label_delim) or image,class_1,class_2,... (1/0 "
                             "per class), rows paired with images by name; or a labels.json, "
                             "one JSON list of flags per image, paired by position "
                             "(default: labels.json in --image_dir)")
    parser.add_argument("--label_folders", action="store_true",
                        help="labels from the folders: images/<label>/<file>; an image in "
                             "several label folders (same name or same content) has each label")
    parser.add_argument("--images", default=list_generation.IMAGES_FOLDER,
                        help="the images folder, relative to --image_dir and inside it; CSV "
                             "names are relative to it and may have subfolders, which are "
                             "searched (default: %(default)s)")
    parser.add_argument("--suffix", default="",
                        help="appended to CSV image names that do not end with it, e.g. .jpg")
    parser.add_argument("--label_delim", default=None,
                        help="separates the labels in the tags column of an image,tags CSV "
                             "(default: a space; in the predicted column of label_image.py's "
                             "CSV, a tab, as label_image.py writes it)")
    parser.add_argument("--class_names", default=None,
                        help="comma-separated class names in output order, written to "
                             f"{listfile.CLASS_NAMES_FILE}; needed only for labels.json, where "
                             "it names the flags (e.g. desert,mountains,sea,sunset,trees); "
                             "with a CSV or label folders it sets the order, and a label "
                             "not among them is an error (default: the data's, sorted)")
    parser.add_argument("--shuffle", action="store_true",
                        help="write the lines of every list in seeded random order instead of "
                             "index order (the split itself is always drawn at random)")
    parser.add_argument("--split", type=float, default=0.8,
                        help="fraction of the images for dataset_train.lst, the rest go to "
                             "dataset_test.lst (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of the split and of --shuffle (default: %(default)s)")
    parser.add_argument("--stratify", action="store_true",
                        help="split so that every class has positive images in both lists")
    args = parser.parse_args(argv)
    if not 0 < args.split < 1:
        parser.error(f"--split must be between 0 and 1 (the train fraction), got {args.split}")
    names = ()
    if args.class_names is not None:
        names = tuple(n.strip() for n in args.class_names.split(","))
        try:
            listfile.check_class_names(names, "--class_names")
        except UserError as e:
            parser.error(str(e))
    if args.label_folders and args.labels:
        parser.error("--label_folders and --labels are two ways to give the labels: give one")
    is_csv = args.labels is not None and args.labels.lower().endswith(".csv")
    if not is_csv and (args.suffix or args.label_delim is not None):
        parser.error("--suffix and --label_delim apply only to a --labels FILE.csv")
    if args.label_delim == "":
        parser.error("--label_delim must not be empty")
    return GenerationConfig(args.image_dir, args.labels, names, args.shuffle, args.split,
                            args.seed, args.stratify, args.images, args.suffix,
                            args.label_delim, args.label_folders, MIN_POSITIVES)


def main(argv=None):
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Nothing is half-written on Ctrl-C or a full disk: every list is written atomically.
    return run_command("data_generation.py", generate, config)


def generate(config):
    """Write the lists; print what was written."""
    print("\n".join(list_generation.generate(config)))


if __name__ == "__main__":
    sys.exit(main())
