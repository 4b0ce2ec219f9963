"""Row-aligned encoded inputs and the batches built from them.

Inputs are encoded once per call (tokenized, images processed) into *columns*; the
training engine then asks for batches by row indices. A column knows how to turn a
set of rows into tensors, so the engine never sees text or images.
"""

import numpy as np
import torch

__all__ = ["FeatureColumn", "ImageColumn", "PixelCodec", "Rows", "TokenColumn"]


class TokenColumn:
    """Token ids of varying length, padded per batch to the batch's longest row.

    The ids of all rows are stored end to end in one array, so that a batch is
    gathered with a few vectorised operations and a column of a million rows is
    one array, not a million small ones.

    Parameters
    ----------
    ids : list of list of int
        Token ids per row, already truncated to the model's limit.
    pad_id : int
        The padding token id.
    prefix : str, default=""
        Prefix of the tensor names (``input_ids``, ``attention_mask``).
    token_type_ids : bool, default=False
        Whether to add an all-zero ``token_type_ids`` tensor.
    """

    def __init__(self, ids, pad_id, *, prefix="", token_type_ids=False):
        self.lengths = np.fromiter((len(row) for row in ids), np.int64, len(ids))
        self.flat_ids = np.fromiter(
            (token for row in ids for token in row), np.int64, int(self.lengths.sum())
        )
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])
        self.pad_id = int(pad_id)
        self.prefix = prefix
        self.token_type_ids = token_type_ids

    def __len__(self):
        return len(self.lengths)

    @property
    def ids(self):
        """Token ids per row (views into one array)."""
        return np.split(self.flat_ids, self.offsets[1:-1])

    def _gather(self, indices):
        """The ids of the given rows end to end, and their lengths."""
        lengths = self.lengths[indices]
        starts = np.repeat(
            self.offsets[indices] - np.cumsum(lengths) + lengths, lengths
        )
        return self.flat_ids[starts + np.arange(len(starts))], lengths

    def take(self, indices):
        """Return a new column holding the given rows."""
        flat, lengths = self._gather(np.asarray(indices, dtype=np.int64))
        column = TokenColumn(
            [], self.pad_id, prefix=self.prefix, token_type_ids=self.token_type_ids
        )
        column.flat_ids, column.lengths = flat, lengths
        column.offsets = np.concatenate([[0], np.cumsum(lengths)])
        return column

    def batch(self, indices):
        """Pad the given rows to their longest and return the tensors."""
        flat, lengths = self._gather(np.asarray(indices, dtype=np.int64))
        width = int(lengths.max()) if len(lengths) else 0
        mask = np.arange(width) < lengths[:, None]
        ids = np.full(mask.shape, self.pad_id, dtype=np.int64)
        ids[mask] = flat
        tensors = {
            f"{self.prefix}input_ids": torch.from_numpy(ids),
            f"{self.prefix}attention_mask": torch.from_numpy(mask.astype(np.int64)),
        }
        if self.token_type_ids:
            tensors[f"{self.prefix}token_type_ids"] = torch.zeros_like(
                tensors[f"{self.prefix}input_ids"]
            )
        return tensors


class PixelCodec:
    """Keeps processed images as the 8-bit values they were computed from.

    Image processors resize and crop 8-bit RGB images, then rescale and
    normalise them to float32: four bytes per value for what one byte holds. When
    a processor does exactly that, the values are stored as uint8 and normalised
    again when a batch is built (within float rounding of the processor's own
    output), which takes a quarter of the memory. A row that does not come back
    to whole numbers in [0, 255] (another kind of processor) stays float32.

    Parameters
    ----------
    processor : image processor or None
        Its ``rescale_factor``, ``image_mean`` and ``image_std`` are used when
        ``do_rescale`` and ``do_normalize`` are both set.
    """

    def __init__(self, processor=None):
        self.scale = self.mean = self.std = None
        if processor is None:
            return
        settings = [getattr(processor, k, None) for k in ("do_rescale", "do_normalize")]
        scale = getattr(processor, "rescale_factor", None)
        mean = getattr(processor, "image_mean", None)
        std = getattr(processor, "image_std", None)
        if all(settings) and None not in (scale, mean, std):
            self.scale = float(scale)
            self.mean = torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
            self.std = torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
            # (x * scale - mean) / std as one multiply-add.
            self.gain = self.scale / self.std
            self.offset = -self.mean / self.std

    def encode(self, pixels):
        """Return ``pixels`` (C, H, W) as uint8 when exact, else a float copy."""
        if self.scale is None or pixels.shape[0] != len(self.mean):
            return pixels.clone()
        if not pixels.numel():
            return pixels.to(torch.uint8)
        values = (pixels.float() * (self.std / self.scale)).add_(self.mean / self.scale)
        rounded = values.round()
        low, high = torch.aminmax(rounded)
        if low < 0 or high > 255 or (values - rounded).abs().max() > 1e-2:
            return pixels.clone()
        return rounded.to(torch.uint8)

    def decode(self, stored):
        """Float32 processor output for stored rows, shape (..., C, H, W)."""
        if stored.dtype != torch.uint8:
            return stored
        return stored.float().mul_(self.gain).add_(self.offset)


class ImageColumn:
    """Processed images, one tensor per row, stacked (or padded) per batch.

    Parameters
    ----------
    pixels : list of Tensor of shape (C, H, W)
        Processor output per row, or what ``codec`` made of it.
    name : str, default="pixel_values"
        The tensor name the backbone reads.
    pixel_mask : bool, default=False
        Whether to emit a ``pixel_mask`` (1 on real pixels), needed when images of
        different sizes are padded into one batch (ViLT).
    codec : PixelCodec, optional
        Turns stored rows back into processor output.
    """

    def __init__(self, pixels, *, name="pixel_values", pixel_mask=False, codec=None):
        self.pixels = list(pixels)
        self.name = name
        self.pixel_mask = pixel_mask
        self.codec = codec or PixelCodec()

    def __len__(self):
        return len(self.pixels)

    @property
    def nbytes(self):
        """Bytes held by the stored rows."""
        return sum(p.numel() * p.element_size() for p in self.pixels)

    def take(self, indices):
        """Return a new column holding the given rows."""
        return ImageColumn(
            [self.pixels[i] for i in indices],
            name=self.name,
            pixel_mask=self.pixel_mask,
            codec=self.codec,
        )

    def batch(self, indices):
        """Stack the given rows, padding at the bottom and right when sizes differ."""
        stored = [self.pixels[i] for i in indices]
        kinds = {(p.shape, p.dtype) for p in stored}
        if len(kinds) == 1 and not self.pixel_mask:
            # One size (the usual case): stack, then decode the batch at once.
            return {self.name: self.codec.decode(torch.stack(stored))}
        chosen = [self.codec.decode(p) for p in stored]
        height = max(p.shape[-2] for p in chosen)
        width = max(p.shape[-1] for p in chosen)
        out = chosen[0].new_zeros((len(chosen), chosen[0].shape[0], height, width))
        mask = torch.zeros((len(chosen), height, width), dtype=torch.int64)
        for row, pixels in enumerate(chosen):
            out[row, :, : pixels.shape[-2], : pixels.shape[-1]] = pixels
            mask[row, : pixels.shape[-2], : pixels.shape[-1]] = 1
        tensors = {self.name: out}
        if self.pixel_mask:
            tensors["pixel_mask"] = mask
        return tensors


class FeatureColumn:
    """Precomputed feature vectors of a frozen tower, one row each.

    Parameters
    ----------
    values : Tensor of shape (n_rows, n_features)
    name : str
        The feature's name; batches hold it as ``features.<name>``.
    """

    def __init__(self, values, name):
        self.values = values
        self.name = name

    def __len__(self):
        return len(self.values)

    def take(self, indices):
        """Return a new column holding the given rows."""
        return FeatureColumn(self.values[torch.as_tensor(indices)], self.name)

    def batch(self, indices):
        """Return the features of the given rows."""
        return {f"features.{self.name}": self.values[torch.as_tensor(indices)]}


class Rows:
    """Encoded rows: columns plus optional targets and weights, all aligned.

    Parameters
    ----------
    columns : dict of str to column
        Every column has one entry per row.
    targets : ndarray of int, optional
        Encoded class labels.
    weights : ndarray of float, optional
        Per-row loss weights.
    """

    def __init__(self, columns, targets=None, weights=None):
        self.columns = dict(columns)
        self.targets = targets
        self.weights = weights
        sizes = {name: len(column) for name, column in self.columns.items()}
        if targets is not None:
            sizes["targets"] = len(targets)
        if weights is not None:
            sizes["weights"] = len(weights)
        if len(set(sizes.values())) > 1:
            raise ValueError(f"encoded columns are not aligned: {sizes}")
        self._length = next(iter(sizes.values()), 0)

    def __len__(self):
        return self._length

    @property
    def lengths(self):
        """Per-row token counts (summed over text columns); zeros without text."""
        total = np.zeros(len(self), dtype=np.int64)
        for column in self.columns.values():
            if isinstance(column, TokenColumn):
                total += column.lengths
        return total

    def take(self, indices):
        """Return the rows at ``indices`` as a new :class:`Rows`."""
        indices = np.asarray(indices, dtype=np.int64)
        return Rows(
            {name: column.take(indices) for name, column in self.columns.items()},
            None if self.targets is None else self.targets[indices],
            None if self.weights is None else self.weights[indices],
        )

    def batch(self, indices):
        """Return a dict of tensors for the rows at ``indices``."""
        indices = [int(i) for i in indices]
        tensors = {}
        for column in self.columns.values():
            tensors.update(column.batch(indices))
        if self.targets is not None:
            tensors["labels"] = torch.as_tensor(self.targets[indices])
        if self.weights is not None:
            tensors["weights"] = torch.as_tensor(
                self.weights[indices], dtype=torch.float32
            )
        return tensors
