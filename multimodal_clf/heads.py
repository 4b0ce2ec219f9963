"""Classification and fusion heads: named feature vectors in, logits out.

Each feature first passes through its own LayerNorm, so that embeddings of very
different scales (a text encoder's mean-pooled states beside a vision encoder's
class token) enter the fusion on an equal footing.
"""

import torch
from torch import nn

__all__ = ["FUSIONS", "ConcatHead", "LateHead", "ProductHead", "make_head"]


def _mlp(in_features, hidden, n_classes, dropout):
    if not hidden:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_classes))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_features, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )


class _Head(nn.Module):
    def __init__(self, feature_dims, modality_dropout=0.0):
        super().__init__()
        self.names = list(feature_dims)
        self.modality_dropout = modality_dropout
        self.norms = nn.ModuleDict(
            {name: nn.LayerNorm(width) for name, width in feature_dims.items()}
        )

    def normed(self, features):
        """Each feature through its LayerNorm, with modality dropout in training.

        Modality dropout blanks one randomly chosen feature of a row with
        probability ``modality_dropout``. A fine-tuned text tower can fit the
        training rows on its own within an epoch or two, after which nothing
        pushes the head to read the image; rows that must be classified from one
        modality keep every modality useful.
        """
        return self.normed_and_kept(features)[0]

    def normed_and_kept(self, features):
        """:meth:`normed`, and per feature a boolean mask of the rows that keep
        it (None when modality dropout is off)."""
        parts = [self.norms[name](features[name].float()) for name in self.names]
        if not (self.training and self.modality_dropout > 0 and len(parts) > 1):
            return parts, None
        rows = parts[0].shape[0]
        device = parts[0].device
        dropped = torch.rand(rows, device=device) < self.modality_dropout
        which = torch.randint(len(parts), (rows,), device=device)
        kept = [~(dropped & (which == i)) for i in range(len(parts))]
        return [part * keep.unsqueeze(1) for part, keep in zip(parts, kept)], kept


class ConcatHead(_Head):
    """Concatenate the features, then an MLP (a linear layer when ``hidden=0``).

    Parameters
    ----------
    feature_dims : dict of str to int
    n_classes : int
    hidden : int, default=256
    dropout : float, default=0.1
    modality_dropout : float, default=0.0
        Probability that a training row loses one of its features (see
        :meth:`_Head.normed`).
    """

    def __init__(
        self, feature_dims, n_classes, *, hidden=256, dropout=0.1, modality_dropout=0.0
    ):
        super().__init__(feature_dims, modality_dropout)
        self.mlp = _mlp(sum(feature_dims.values()), hidden, n_classes, dropout)

    def forward(self, features):
        return self.mlp(torch.cat(self.normed(features), dim=-1))


class LateHead(_Head):
    """One MLP per feature; the logits are averaged (late fusion).

    A row whose feature modality dropout blanked averages the logits of the
    features it kept, as prediction with that modality alone would.
    """

    def __init__(
        self, feature_dims, n_classes, *, hidden=256, dropout=0.1, modality_dropout=0.0
    ):
        super().__init__(feature_dims, modality_dropout)
        self.mlps = nn.ModuleList(
            [_mlp(width, hidden, n_classes, dropout) for width in feature_dims.values()]
        )

    def forward(self, features):
        parts, kept = self.normed_and_kept(features)
        logits = torch.stack([mlp(x) for mlp, x in zip(self.mlps, parts)])
        if kept is None:
            return logits.mean(0)
        weights = torch.stack(kept).unsqueeze(-1).to(logits.dtype)
        return (logits * weights).sum(0) / weights.sum(0)


class ProductHead(_Head):
    """Project every feature to ``hidden`` and let them interact.

    The MLP reads ``[p_1, ..., p_k, p_1 * ... * p_k]``: the projections and their
    element-wise product, which carries the text-image interaction terms. With
    ``hidden=0`` the projections are 256 wide and a linear layer reads them.
    """

    def __init__(
        self, feature_dims, n_classes, *, hidden=256, dropout=0.1, modality_dropout=0.0
    ):
        super().__init__(feature_dims, modality_dropout)
        width = hidden or 256
        self.projections = nn.ModuleList(
            [nn.Linear(w, width) for w in feature_dims.values()]
        )
        n_parts = len(feature_dims) + (1 if len(feature_dims) > 1 else 0)
        self.mlp = _mlp(n_parts * width, hidden, n_classes, dropout)

    def forward(self, features):
        projected = [
            torch.tanh(proj(x))
            for proj, x in zip(self.projections, self.normed(features))
        ]
        parts = list(projected)
        if len(projected) > 1:
            parts.append(torch.stack(projected).prod(0))
        return self.mlp(torch.cat(parts, dim=-1))


#: fusion name -> head class
FUSIONS = {"concat": ConcatHead, "late": LateHead, "product": ProductHead}


def make_head(
    fusion, feature_dims, n_classes, *, hidden=256, dropout=0.1, modality_dropout=0.0
):
    """Build the head for a fusion name."""
    return FUSIONS[fusion](
        feature_dims,
        n_classes,
        hidden=hidden,
        dropout=dropout,
        modality_dropout=modality_dropout,
    )
