"""Generated user data for tests and benchmarks: mixed tables, PNG folders, text, sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

WORDS = {
    "pos": "great lovely excellent wonderful superb enjoyable delightful".split(),
    "neg": "awful terrible boring dreadful poor horrible dull".split(),
}
FILLER = "the a film plot actor scene story was it and this".split()


def mixed_table(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numeric, categorical (strings and integer codes) and text columns with gaps; target `label`."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, rows)
    frame = pd.DataFrame({
        "age": rng.normal(40, 10, rows) + 8 * label,
        "income": rng.lognormal(10, 0.3, rows),
        "city": np.array(["paris", "lyon", "nice", "lille"])[(label + rng.integers(0, 2, rows)) % 4],
        "plan": (label * 2 + rng.integers(0, 2, rows)).astype(int),
        "note": [" ".join(rng.choice(FILLER, 3).tolist() + [("cheap", "fair", "premium")[k]]) for k in label],
        "label": np.array(["basic", "plus", "pro"])[label],
    })
    frame.loc[rng.choice(rows, rows // 10, replace=False), "age"] = np.nan
    frame.loc[rng.choice(rows, rows // 10, replace=False), "city"] = None
    return frame


def text_table(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sentiment = rng.integers(0, 2, rows)
    texts = []
    for s in sentiment:
        words = rng.choice(FILLER, 6).tolist() + rng.choice(WORDS["pos" if s else "neg"], 2).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words).capitalize() + "!")
    return pd.DataFrame({"review": texts, "sentiment": np.array(["negative", "positive"])[sentiment]})


def shape_image(kind: int, size: tuple[int, int], rng, color: bool = True) -> np.ndarray:
    """A noisy picture of class `kind`: 0 a bright square, 1 a bright horizontal bar, 2 a vertical bar."""
    height, width = size
    image = rng.integers(0, 60, size=(height, width, 3)).astype(np.uint8)
    top, left = rng.integers(0, height // 4 + 1), rng.integers(0, width // 4 + 1)
    if kind == 0:
        image[top:top + height // 2, left:left + width // 2] = 230
    elif kind == 1:
        image[height // 2 - 2:height // 2 + 2, :] = 230
    else:
        image[:, width // 2 - 2:width // 2 + 2] = 230
    if not color:
        image[..., 1:] = image[..., :1]
    return image


def image_folder(root: Path, per_class: int = 12, size=(16, 16), classes=("square", "hbar", "vbar"), seed: int = 0,
                 sizes: list | None = None) -> Path:
    """PNG files in one sub-folder per class; `sizes` (a list of (h, w)) varies the size per image."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = sizes[i % len(sizes)] if sizes else size
            Image.fromarray(shape_image(k, shape, rng)).save(folder / f"{name}_{i:03d}.png")
    return root


def sequence_table(rows: int = 200, steps: int = 10, seed: int = 0) -> pd.DataFrame:
    """Wide table, one column per step: rising or falling noisy series; target `trend`."""
    rng = np.random.default_rng(seed)
    trend = rng.integers(0, 2, rows)
    slope = np.where(trend == 1, 1.0, -1.0)[:, None]
    values = slope * np.linspace(0, 1, steps)[None, :] + rng.normal(0, 0.3, (rows, steps))
    frame = pd.DataFrame(values, columns=[f"t{i}" for i in range(steps)])
    frame["trend"] = np.array(["down", "up"])[trend]
    return frame


def time_series(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """A daily series with a weekly cycle and a covariate; forecast `demand`."""
    rng = np.random.default_rng(seed)
    day = np.arange(rows)
    temperature = 15 + 8 * np.sin(day / 30) + rng.normal(0, 1, rows)
    demand = 100 + 20 * np.sin(2 * np.pi * day / 7) + 2 * temperature + rng.normal(0, 2, rows)
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=rows, freq="D").astype(str),
                         "temperature": temperature, "demand": demand})
