"""Detections drawn on images: a box, the class name and the score, one colour per class."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont
from torch import Tensor


def class_colour(label: int) -> tuple[int, int, int]:
    """A bright, distinct colour for a class label (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(
    image: Image.Image,
    boxes: Tensor,
    labels: Tensor,
    scores: Tensor,
    class_names: Sequence[str],
    *,
    score_threshold: float = 0.3,
) -> Image.Image:
    """A copy of `image` with detections above `score_threshold` drawn (boxes xyxy, labels 1..K)."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    size = max(10, round(min(out.size) / 40))
    font = ImageFont.load_default(size=size)
    width = max(1, round(min(out.size) / 200))
    order = scores.argsort()  # draw the best last, on top
    for i in order.tolist():
        score = float(scores[i])
        if score < score_threshold:
            continue
        label = int(labels[i])
        colour = class_colour(label)
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        name = class_names[label - 1] if 0 < label <= len(class_names) else str(label)
        text = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((x0, y0), text, font=font)
        top_y = max(0.0, y0 - (bottom - top) - 2)
        draw.rectangle(
            (x0, top_y, x0 + (right - left) + 4, top_y + (bottom - top) + 2), fill=colour
        )
        draw.text((x0 + 2, top_y), text, fill=(0, 0, 0), font=font)
    return out
