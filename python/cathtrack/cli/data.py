"""`cathtrack data check DATA`: is a labelled dataset usable, before any run?

Prints what the dataset holds (frames, catheters per type, electrodes, which frames are labelled
for which task), one line per problem, and a verdict. Exit status 0: usable (warnings allowed),
1: not usable (at least one error). The checks and what counts as an error are those of
:mod:`cathtrack.data.check`; ``cathtrack-train`` and ``cathtrack eval`` run the same check first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "check a labelled dataset before training or evaluation ('data check DATA')"
EXAMPLES = """  cathtrack data check data/my_frames
  cathtrack data check cvat_export                    # CVAT "COCO 1.0" export, unzipped
  cathtrack data check label_studio_export/result.json
  cathtrack data check data/angiograms --kind folder --images-dir training \\
      --masks-dir training --mask-suffix _gt
exit status: 0 usable (warnings allowed), 1 not usable, 2 bad arguments (docs/labelling.md)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a dataset: ids, files, sizes, coordinates, RLE, categories, empty frames",
        description="Validate a dataset and summarise it; exit 0 when usable, 1 when not.",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "data",
        type=Path,
        help="dataset folder (COCO: cathtrack, CVAT or Label Studio layout; images/ + masks/; "
        "UCL HDF5) or a COCO .json file",
    )
    check.add_argument(
        "--kind",
        choices=("coco", "folder", "ucl"),
        help="the dataset format (default: recognised from the folder)",
    )
    check.add_argument("--images-dir", default="images", help="folder kind: images sub-folder")
    check.add_argument("--masks-dir", default="masks", help="folder kind: masks sub-folder")
    check.add_argument(
        "--mask-suffix", default="", help="folder kind: suffix of mask file stems (e.g. _gt)"
    )


def run(args: argparse.Namespace) -> int:
    from cathtrack.data.check import check_dataset

    report = check_dataset(
        args.data,
        args.kind,
        images_dir=args.images_dir,
        masks_dir=args.masks_dir,
        mask_suffix=args.mask_suffix,
    )
    for line in report.summary:
        print(line)
    for problem in report.problems:
        print(problem.line)
    print(report.verdict())
    return 0 if report.usable else 1
