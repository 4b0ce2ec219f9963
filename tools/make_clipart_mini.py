"""Build clipart-mini, the small clipart sample shipped in ``multimodal_clf.datasets``.

Draws 40 items per label from the full clipart set, keeping its train/test
proportions within each label, shrinks each image so its longer side is at most
64 px while keeping its Pillow mode, and writes ``metadata.csv``, ``sources.csv``,
``images/`` and ``README.md``. The output is the same on every run.

Usage::

    python tools/make_clipart_mini.py /work/shared/data/clipart

The output folder (``multimodal_clf/datasets/data/clipart_mini`` by default) is
replaced.
"""

import argparse
import logging
import shutil
from pathlib import Path

import pandas as pd
from PIL import Image

logger = logging.getLogger(__name__)

PER_LABEL = 40
MAX_SIDE = 64
SEED = 0
OUTPUT = (
    Path(__file__).resolve().parents[1]
    / "multimodal_clf"
    / "datasets"
    / "data"
    / "clipart_mini"
)


def sample(metadata, per_label=PER_LABEL, seed=SEED):
    """Draw ``per_label`` rows of each label, split in the label's train/test ratio.

    Parameters
    ----------
    metadata : pandas.DataFrame
        The full set's ``metadata.csv``, read as strings.
    per_label : int, default=40
        Rows drawn for each label.
    seed : int, default=0
        Seed of the draw.

    Returns
    -------
    pandas.DataFrame
        The rows drawn, sorted by id.

    Examples
    --------
    >>> meta = pd.DataFrame(
    ...     {"id": list("abcde"), "label": ["x"] * 5, "split": ["train"] * 4 + ["test"]}
    ... )
    >>> sample(meta, per_label=3)["split"].tolist()
    ['train', 'train', 'test']
    """
    parts = []
    for label, rows in metadata.groupby("label", sort=True):
        n_test = round(per_label * (rows["split"] == "test").mean())
        counts = {"train": per_label - n_test, "test": n_test}
        for split, n in counts.items():
            pool = rows[rows["split"] == split]
            if len(pool) < n:
                raise ValueError(
                    f"Label {label!r} has {len(pool)} {split} items; {n} are needed."
                )
            parts.append(pool.sample(n=n, random_state=seed))
    return pd.concat(parts).sort_values("id").reset_index(drop=True)


def shrink(image, max_side=MAX_SIDE):
    """Downscale ``image`` so its longer side is at most ``max_side``, same mode.

    RGBA, LA, RGB and L images are resized with LANCZOS (Pillow uses premultiplied
    alpha for RGBA and LA). Palette (P) images are converted to RGBA (RGB when they
    have no transparency), resized, and quantized back to at most 256 colours with
    the fast octree method and no dithering; transparency becomes a palette alpha
    table. Images already small enough are returned unchanged.

    Examples
    --------
    >>> shrink(Image.new("LA", (160, 80))).size
    (64, 32)
    >>> shrink(Image.new("P", (100, 50))).mode
    'P'
    """
    width, height = image.size
    scale = max_side / max(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))

    if image.mode != "P":
        return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3)
    has_alpha = image.has_transparency_data
    full = image.convert("RGBA" if has_alpha else "RGB")
    small = full.resize(size, Image.Resampling.LANCZOS, reducing_gap=3)
    return small.quantize(
        256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )


def build(source, output=OUTPUT):
    """Write clipart-mini from the full clipart set in ``source`` to ``output``."""
    source = Path(source)
    metadata = pd.read_csv(source / "metadata.csv", dtype=str, keep_default_na=False)
    sources = pd.read_csv(source / "sources.csv", dtype=str, keep_default_na=False)
    drawn = sample(metadata)

    if output.exists():
        shutil.rmtree(output)
    (output / "images").mkdir(parents=True)
    modes = {}
    for row in drawn.itertuples():
        with Image.open(source / row.image) as image:
            image.load()
            small = shrink(image)
            small.save(output / row.image, optimize=True)
        modes[row.id] = (small.mode, small.has_transparency_data)

    drawn.to_csv(output / "metadata.csv", index=False)
    sources[sources["id"].isin(drawn["id"])].to_csv(output / "sources.csv", index=False)
    (output / "README.md").write_text(readme(drawn, modes, output), encoding="utf-8")
    logger.info("Wrote %d items to %s.", len(drawn), output)


def readme(drawn, modes, output):
    """The README of clipart-mini, with its counts filled in."""
    mode_counts = pd.Series([mode for mode, _ in modes.values()]).value_counts()
    n_transparent_p = sum(1 for mode, alpha in modes.values() if mode == "P" and alpha)
    mode_rows = "\n".join(
        f"| {mode} | {count} |" for mode, count in mode_counts.sort_index().items()
    )
    table = pd.crosstab(drawn["label"], drawn["split"])[["train", "test"]]
    class_rows = "\n".join(
        f"| {label} | {row.train} | {row.test} | {row.train + row.test} |"
        for label, row in table.iterrows()
    )
    n_bytes = sum(p.stat().st_size for p in (output / "images").iterdir())
    return f"""# clipart-mini: 320 items of the clipart set

A small text+image classification set shipped with `multimodal-clf`, for
examples and tests that must run without a download. Load it with
`multimodal_clf.datasets.load_clipart_mini()`.

- `metadata.csv`: columns `id`, `text`, `image`, `label`, `subcategory`,
  `split`, copied from the full set's rows. `id` is the item's id in the full
  set. The loader drops `subcategory`: it is a folder inside the label's
  folder, so it almost gives the label away.
- `sources.csv`: each item's source path inside the Debian package, and the
  drawing's creator.
- `images/<id>.png`: {len(drawn)} PNG files, {n_bytes:,} bytes in all.

## Source and licence

The full clipart set, made from the Debian package `openclipart-png`, version
`1:0.18+dfsg-19` (Debian 12 "bookworm", main): PNG renderings of the Open Clip
Art Library 0.18 release (openclipart.org). Licence: public domain (Creative
Commons "Public Domain Dedication", per the package's copyright file). The
full set's README says how its items, titles and labels were chosen.

## How the sample was drawn

Built by `tools/make_clipart_mini.py` in the repository, which rebuilds it
byte for byte from the full set:

1. For each of the 8 labels, {PER_LABEL} items: the number of test items is
   {PER_LABEL} times the label's test share in the full set, rounded (8 for
   every label, since the full set has a stratified 80/20 split), and the rest
   are train items. Each (label, split) group is sampled with pandas
   `DataFrame.sample(random_state={SEED})`.
2. Each image keeps its Pillow mode and is downscaled so that its longer side
   is at most {MAX_SIDE} px: LANCZOS, `reducing_gap=3`. RGBA and LA images are
   resized directly (Pillow uses premultiplied alpha). Palette (P) images are
   converted to RGBA (RGB if they have no transparency), resized, and
   quantized back to at most 256 colours (fast octree, no dithering), which
   keeps their transparency as a palette alpha table; as in the full set, the
   octree may turn fully opaque pixels slightly translucent (alpha ~250).
   Images already small enough are re-encoded only.
3. Saved as optimized PNG.

## Mode counts

| mode | count |
| --- | ---: |
{mode_rows}

{n_transparent_p} of the P images have transparency.

## Class counts

| label | train | test | total |
| --- | ---: | ---: | ---: |
{class_rows}
"""


def main(argv=None):
    """Parse the command line and build the set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder of the full clipart set")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.source, args.output)


if __name__ == "__main__":
    main()
