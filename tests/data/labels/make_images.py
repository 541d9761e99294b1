"""Writes the frames of the label-import fixtures (the JSON files beside them are hand-written,
shaped like CVAT's "COCO 1.0" / "COCO Keypoints 1.0" and Label Studio's "COCO" exports).

Run from anywhere: python tests/data/labels/make_images.py
"""

from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT = 48, 40
FRAMES = {
    "cvat_coco/images/default": ["frame_000000.png", "frame_000001.png", "frame_000002.png"],
    "cvat_keypoints/images/default": ["frame_000000.png", "frame_000001.png"],
    "label_studio/images": ["4f7a2c1e-frame_a.png", "9b3d5e0f-frame_b.png"],
}


def frame(seed: int, colour: bool) -> np.ndarray:
    """A smooth gray frame (what an X-ray background looks like at this size)."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    image = (120 + 40 * np.sin(cols / 7.0 + seed) + 30 * np.cos(rows / 5.0)).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if colour else image


def main() -> None:
    for seed, (folder, names) in enumerate(FRAMES.items()):
        (HERE / folder).mkdir(parents=True, exist_ok=True)
        for k, name in enumerate(names):
            colour = folder.startswith("label_studio")  # Label Studio keeps the uploaded RGB
            cv2.imwrite(str(HERE / folder / name), frame(seed * 10 + k, colour))


if __name__ == "__main__":
    main()
