"""Turn a folder of images and its labels.json into the list files retrain.py reads.

    python data_generation.py --image_dir DATASET --class_names desert,mountains,sea,sunset,trees

reads DATASET/labels.json (line i: the flags of image i) and the images in
DATASET/images/, and writes into DATASET/:

- dataset.lst: every image, `index<TAB>flags<TAB>images/NAME`, flags 0/1;
- dataset_train.lst and dataset_test.lst: a seeded split, `--split` of the images for
  training (the original project left this to hand work);
- class_names.txt: the `--class_names`, one a line, when given.

Everything is read and checked before anything is written, and each file is written
atomically, so a bad input leaves no partial list behind.
"""

import argparse
import logging
import os
import sys

from multilabel.data import list_generation, listfile
from multilabel.base.errors import EXIT_INTERRUPTED, EXIT_OK, UserError
from multilabel.data.list_generation import GenerationConfig

DEFAULT_SEED = 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image_dir", default="./DATASET/",
                        help="dataset folder: images in its images/ folder; the lists are "
                             "written here (default: %(default)s)")
    parser.add_argument("--labels", default=None,
                        help="label file, one JSON list of flags per image "
                             "(default: labels.json in --image_dir)")
    parser.add_argument("--class_names", default=None,
                        help="comma-separated class names in label order, written to "
                             f"{listfile.CLASS_NAMES_FILE}, e.g. desert,mountains,sea,sunset,trees")
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
    labels = args.labels or os.path.join(args.image_dir, "labels.json")
    return GenerationConfig(args.image_dir, labels, names, args.shuffle, args.split, args.seed,
                            args.stratify)


def main(argv=None):
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        lines = list_generation.generate(config)
    except UserError as e:
        print(str(e), file=sys.stderr)
        return e.exit_code  # 2 for bad input, 1 for a full disk
    except KeyboardInterrupt:  # nothing is half-written: every list is written atomically
        print("data_generation.py: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(lines))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
