"""The classifier module (backbone + head) and frozen-feature computation."""

import contextlib
import logging
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from multimodal_clf._cache import backbone_fingerprint, feature_cache, row_key
from multimodal_clf.backbones._base import frozen, module_params
from multimodal_clf.data._batching import FeatureColumn, Rows, TokenColumn
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
        """Like :meth:`torch.nn.Module.train`, but frozen parts stay in eval mode.

        A frozen tower runs in eval mode (no dropout), and so does every frozen
        batch-norm layer of a partly frozen one: its running statistics are
        part of what ``freeze`` keeps.
        """
        super().train(mode)
        for modules in self.backbone.towers().values():
            if frozen(modules):
                for module in modules:
                    module.eval()
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and frozen([module]):
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
        # The head runs in float32 under any precision (its LayerNorms take the
        # features as float32): autocast would run its linear layers in bf16 /
        # fp16 and round the logits to a few digits.
        device = next(iter(features.values())).device
        with torch.autocast(device.type, enabled=False):
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
    max_image_pixels=None,
    device_ids=None,
    verbose=0,
):
    """Features of a frozen tower for every row, through the shared cache.

    Only rows missing from the cache are decoded, preprocessed and run. The
    pixel limit is part of the key, so that a row cached under a looser limit
    is read (and refused) again under a stricter one. Under a
    process group, rows missing on any rank are computed on every rank, each rank
    running a share of them, so that all ranks hold the same features.

    With ``verbose > 0``, computing features shows a progress bar and prints
    a line (``"<name> features: <n> rows (<seconds> s)"``) when done.

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
        # Reduced precision and other devices give (slightly) other numbers.
        prefix += f"|{precision}|{device.type}|"
        if "image" in inputs:
            prefix += f"{max_image_pixels}|"
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
        start = time.perf_counter()
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
            progress=f"{name} features" if verbose > 0 else None,
        ).numpy()
        # Decoding, preprocessing and the forward pass, shared out per row.
        seconds = (time.perf_counter() - start) / len(missing)
        for out, row in enumerate(missing):
            values[row] = computed[out]
            if keys[row] is not None:
                feature_cache.put(keys[row], computed[out], seconds=seconds)
    logger.debug("%s features: %d of %d rows computed", name, len(missing), n_rows)
    if not n_rows:
        return FeatureColumn(torch.empty((0, backbone.feature_dims[name])), name)
    return FeatureColumn(torch.from_numpy(np.stack(values)), name)


#: Backbone families without separate text and image towers, in words.
_ONE_TOWER = {
    "text": "text encoder",
    "flava": "FLAVA model (one joint tower)",
    "vilt": "ViLT model (one joint tower)",
}


def freeze_parameters(backbone, freeze, *, warn=True):
    """Set ``requires_grad=False`` on the parts of a backbone that ``freeze`` names.

    Parameters
    ----------
    backbone : Backbone
    freeze : None, True, int, str or list of str
        ``True``: everything. An int ``n``: the embeddings and the first ``n``
        layers of every tower. A str or list: parameter-name prefixes, where
        ``"text"`` and ``"image"`` name whole towers.
    warn : bool, default=True
        Warn when ``freeze=n`` exceeds the layers of a tower.

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
        for tower, modules in backbone.towers().items():
            names, n_layers = _first_layers(backbone, modules, freeze)
            chosen |= names
            if warn and freeze > n_layers:
                _warn_few_layers(freeze, tower, n_layers)
    else:
        prefixes = [freeze] if isinstance(freeze, str) else list(freeze)
        towers = backbone.towers()
        ids = {id(p): n for n, p in params.items()}
        unknown = []
        for prefix in prefixes:
            if prefix in towers:
                chosen |= {ids[id(p)] for p in module_params(towers[prefix])}
                continue
            if prefix in ("text", "image"):
                # A tower this ablation leaves out: nothing of it is trained. A
                # text encoder, or a joint model whose one tower reads both, has
                # no such tower at all: say so, since the user may think part of
                # the model is frozen.
                if backbone.family in _ONE_TOWER and warn:
                    warnings.warn(
                        f"freeze={freeze!r}: this {_ONE_TOWER[backbone.family]} has "
                        f"no {prefix!r} tower, so that entry freezes nothing (its "
                        f"towers: {', '.join(towers)}). Remove it, or use a number "
                        "of layers or a parameter prefix.",
                        UserWarning,
                        stacklevel=4,
                    )
                continue
            matched = {n for n in params if n == prefix or n.startswith(prefix + ".")}
            if not matched:
                unknown.append(prefix)
            chosen |= matched
        if unknown:
            raise ValueError(
                f"freeze={freeze!r}: {', '.join(map(repr, unknown))} "
                f"name{'s' if len(unknown) == 1 else ''} no parameter of this "
                f"backbone. Use a tower ({', '.join(towers)}), a number of "
                "layers, or a prefix such as "
                f"{next(iter(params)).rsplit('.', 2)[0]!r}."
            )
    for name in chosen:
        params[name].requires_grad_(False)
    return len(chosen)


def _first_layers(backbone, modules, n_layers):
    """Names of the embedding and first ``n_layers`` layer parameters, and the
    length of the longest layer list found."""
    ids = {id(p): n for n, p in backbone.named_parameters()}
    chosen = set()
    longest = 0
    for module in modules:
        lists = []
        for name, child in module.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if "embedding" in leaf or leaf == "embedder":
                chosen |= {ids[id(p)] for p in child.parameters()}
            # Transformers stack "layer"s; convolutional nets (ResNet, ConvNeXt)
            # "stages". A list inside a counted one is part of its layers.
            inside = any(name.startswith(f"{outer}.") for outer in lists)
            if (
                isinstance(child, nn.ModuleList)
                and leaf in ("layer", "layers", "stages")
                and not inside
            ):
                lists.append(name)
                longest = max(longest, len(child))
                for layer in list(child)[:n_layers]:
                    chosen |= {ids[id(p)] for p in layer.parameters()}
    return chosen, longest


def _warn_few_layers(freeze, tower, n_layers):
    if n_layers:
        what = (
            f"has {n_layers} layers, so all of them and its embeddings are frozen. "
            f"Pass freeze={n_layers} to say so, or freeze_backbone=True to train "
            "the head alone"
        )
    else:
        what = (
            "has no list of layers that freeze can count, so only its embeddings "
            "are frozen. Name the parts to freeze by parameter prefix instead"
        )
    # Point at the caller of fit (fit -> _build_model -> freeze_parameters -> here).
    warnings.warn(
        f"freeze={freeze}: the {tower} tower {what}.", UserWarning, stacklevel=5
    )


class _UsedRows(nn.Module):
    """An embedding table cut down to the rows that the training data uses.

    Token ids keep their values (models that also read them, for position ids or
    pooling, see no change); a lookup maps each id to a row of the small table.
    The table has one extra row that no id maps to: it starts at 1.0 and, never
    having a gradient, goes through exactly what the optimizer does to every
    unused row (decoupled weight decay), so that on the way back the unused rows
    are scaled by it. Update rules that are linear in the weight of a row without
    gradient (AdamW, SGD with or without momentum) are reproduced this way.
    """

    def __init__(self, embedding, used):
        super().__init__()
        weight = embedding.weight.detach()
        probe = weight.new_ones((1, weight.shape[1]))
        self.weight = nn.Parameter(torch.cat([weight[used], probe]))
        lookup = torch.full(
            (embedding.num_embeddings,), len(used), dtype=torch.long
        ).to(weight.device)
        lookup[used] = torch.arange(len(used), device=weight.device)
        self.register_buffer("lookup", lookup, persistent=False)
        self.register_buffer("used", used, persistent=False)
        pad = embedding.padding_idx
        self.padding_idx = None
        if pad is not None and int(lookup[pad]) < len(used):
            self.padding_idx = int(lookup[pad])

    def forward(self, input_ids):
        return F.embedding(self.lookup[input_ids], self.weight, self.padding_idx)

    def write_back(self, embedding):
        """Move the trained rows into ``embedding``; scale the unused ones."""
        weight = self.weight.detach()
        embedding.to(weight.device)
        with torch.no_grad():
            unused = torch.ones(
                embedding.num_embeddings, dtype=torch.bool, device=weight.device
            )
            unused[self.used] = False
            embedding.weight[unused] *= weight[-1]
            embedding.weight[self.used] = weight[:-1]


def _token_tables(backbone):
    """``(parent module, attribute name, embedding)`` of trainable token tables."""
    uses = {}
    for _, param in backbone.named_parameters(remove_duplicate=False):
        uses[id(param)] = uses.get(id(param), 0) + 1
    found = []
    for model in backbone.pretrained_models():
        try:
            embedding = model.get_input_embeddings()
        except (NotImplementedError, AttributeError):
            continue
        plain = (
            type(embedding) is nn.Embedding
            and embedding.max_norm is None
            and not embedding.sparse
            and not embedding.scale_grad_by_freq
        )
        # A weight tied to another module (an output layer) is left alone.
        if not plain or not embedding.weight.requires_grad:
            continue
        if uses.get(id(embedding.weight)) != 1:
            continue
        found += [
            (parent, name, embedding)
            for parent in model.modules()
            for name, child in parent.named_children()
            if child is embedding
        ]
    return found


@contextlib.contextmanager
def train_used_embeddings(model, *datasets, enabled=True):
    """Within the block, train only the token-embedding rows that ``datasets`` use.

    With a large vocabulary most of the token table never appears in the training
    data, yet its dense gradient, gradient clipping and AdamW read and write all
    of it at every step. Inside this block the table is replaced by the rows the
    data uses (when that is at most half of it); on exit they are written back
    and the unused rows get the update the optimizer gave rows without gradient.
    The result equals training the whole table, at the cost of the used rows.

    Parameters
    ----------
    model : ClassifierModel
    *datasets : Rows or None
        Every row the model sees inside the block (training and validation).
    enabled : bool, default=True
        False makes the block do nothing (checkpoints written inside it must
        hold the whole table).
    """
    columns = [
        column
        for data in datasets
        if data is not None
        for column in data.columns.values()
        if isinstance(column, TokenColumn)
    ]
    # Padding ids are added per batch, so they are counted here explicitly.
    ids = [column.flat_ids for column in columns] + [
        np.array([column.pad_id]) for column in columns
    ]
    distributed = torch.distributed.is_available() and (
        torch.distributed.is_initialized()
    )
    swaps = []
    if enabled and ids and not distributed:
        used = torch.from_numpy(np.unique(np.concatenate(ids)))
        for parent, name, embedding in _token_tables(model.backbone):
            size = embedding.num_embeddings
            if not len(used) or used[-1] >= size or 2 * len(used) > size:
                continue
            compact = _UsedRows(embedding, used.to(embedding.weight.device))
            setattr(parent, name, compact)
            swaps.append((parent, name, embedding, compact))
            logger.debug("training %d of %d token embedding rows", len(used), size)
    try:
        yield
    finally:
        for parent, name, embedding, compact in swaps:
            compact.write_back(embedding)
            setattr(parent, name, embedding)
