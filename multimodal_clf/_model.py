"""The classifier module (backbone + head) and frozen-feature computation."""

import logging

import numpy as np
import torch
from torch import nn

from multimodal_clf._cache import backbone_fingerprint, feature_cache, row_key
from multimodal_clf.backbones._base import frozen, module_params
from multimodal_clf.data._batching import FeatureColumn, Rows
from multimodal_clf.engine import predict_logits
from multimodal_clf.engine._distributed import all_rows_mask

logger = logging.getLogger(__name__)


class ClassifierModel(nn.Module):
    """A backbone adapter followed by a head.

    A batch may already hold a feature as ``features.<name>`` (computed once for a
    frozen tower); the backbone then skips that feature.
    """

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def frozen_features(self):
        """Names of the features whose tower has no trainable parameter."""
        return [n for n, mods in self.backbone.towers().items() if frozen(mods)]

    def train(self, mode=True):
        """Like :meth:`torch.nn.Module.train`, but frozen towers stay in eval mode."""
        super().train(mode)
        for modules in self.backbone.towers().values():
            if frozen(modules):
                for module in modules:
                    module.eval()
        return self

    def forward(self, batch):
        features, needed = {}, []
        for name in self.backbone.feature_dims:
            key = f"features.{name}"
            if key in batch:
                features[name] = batch[key]
            else:
                needed.append(name)
        if needed:
            features.update(self.backbone(batch, needed))
        return self.head(features)


class _FeatureModule(nn.Module):
    """Computes one feature of a backbone, for :func:`predict_logits`."""

    def __init__(self, backbone, name):
        super().__init__()
        self.backbone = backbone
        self.name = name

    def forward(self, batch):
        return self.backbone(batch, [self.name])[self.name]


def compute_frozen_features(
    model,
    name,
    columns,
    *,
    load_images,
    device,
    precision,
    batch_size,
    use_cache,
    image_root=None,
    device_ids=None,
):
    """Features of a frozen tower for every row, through the shared cache.

    Only rows missing from the cache are decoded, preprocessed and run. Under a
    process group, rows missing on any rank are computed on every rank, each rank
    running a share of them, so that all ranks hold the same features.

    Returns
    -------
    FeatureColumn
    """
    backbone = model.backbone
    inputs = backbone.feature_inputs(name)
    n_rows = len(next(iter(columns.values())))
    keys = [None] * n_rows
    values = [None] * n_rows
    if use_cache:
        prefix = backbone_fingerprint(backbone, inputs) + name
        for row in range(n_rows):
            parts = [
                row_key(columns[m][row], m, image_root=image_root)
                for m in inputs
                if m in columns
            ]
            if all(part is not None for part in parts):
                keys[row] = prefix + "|".join(parts)
                values[row] = feature_cache.get(keys[row])
    missing_mask = all_rows_mask([value is None for value in values])
    missing = np.flatnonzero(missing_mask).tolist()
    if missing:
        subset = {m: [columns[m][row] for row in missing] for m in columns}
        rows = Rows(backbone.encode(subset, inputs, load_images, positions=missing))
        module = _FeatureModule(backbone, name).to(device)
        computed = predict_logits(
            module,
            rows,
            device=device,
            precision=precision,
            batch_size=batch_size,
            device_ids=device_ids,
        ).numpy()
        for out, row in enumerate(missing):
            values[row] = computed[out]
            if keys[row] is not None:
                feature_cache.put(keys[row], computed[out])
    logger.debug("%s features: %d of %d rows computed", name, len(missing), n_rows)
    if not n_rows:
        return FeatureColumn(torch.empty((0, backbone.feature_dims[name])), name)
    return FeatureColumn(torch.from_numpy(np.stack(values)), name)


def freeze_parameters(backbone, freeze):
    """Set ``requires_grad=False`` on the parts of a backbone that ``freeze`` names.

    Parameters
    ----------
    backbone : Backbone
    freeze : None, True, int, str or list of str
        ``True``: everything. An int ``n``: the embeddings and the first ``n``
        layers of every tower. A str or list: parameter-name prefixes, where
        ``"text"`` and ``"image"`` name whole towers.

    Returns
    -------
    int
        The number of parameters frozen.
    """
    if freeze is None or freeze is False:
        return 0
    params = dict(backbone.named_parameters())
    chosen = set()
    if freeze is True:
        chosen = set(params)
    elif isinstance(freeze, int):
        for modules in backbone.towers().values():
            chosen |= _first_layers(backbone, modules, freeze)
    else:
        prefixes = [freeze] if isinstance(freeze, str) else list(freeze)
        towers = backbone.towers()
        ids = {id(p): n for n, p in params.items()}
        for prefix in prefixes:
            if prefix in towers:
                chosen |= {ids[id(p)] for p in module_params(towers[prefix])}
                continue
            if prefix in ("text", "image"):
                # A tower this ablation leaves out: nothing of it is trained.
                continue
            matched = {n for n in params if n == prefix or n.startswith(prefix + ".")}
            if not matched:
                raise ValueError(
                    f"freeze={freeze!r}: {prefix!r} names no parameter of this "
                    f"backbone. Use a tower ({', '.join(towers)}), a number of "
                    "layers, or a prefix such as "
                    f"{next(iter(params)).rsplit('.', 2)[0]!r}."
                )
            chosen |= matched
    for name in chosen:
        params[name].requires_grad_(False)
    return len(chosen)


def _first_layers(backbone, modules, n_layers):
    """Names of the embedding and first ``n_layers`` layer parameters."""
    ids = {id(p): n for n, p in backbone.named_parameters()}
    chosen = set()
    for module in modules:
        for name, child in module.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if "embedding" in leaf:
                chosen |= {ids[id(p)] for p in child.parameters()}
            if isinstance(child, nn.ModuleList) and leaf in ("layer", "layers"):
                for layer in list(child)[:n_layers]:
                    chosen |= {ids[id(p)] for p in layer.parameters()}
    return chosen
