"""Resolving a checkpoint (hub id or local folder) and loading its parts."""

import contextlib
import contextvars
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

# Families whose position ids start after the padding index, so that the usable
# length is ``max_position_embeddings - pad_token_id - 1`` (514 -> 512 for RoBERTa).
_OFFSET_POSITION_FAMILIES = frozenset(
    {
        "roberta",
        "xlm-roberta",
        "camembert",
        "longformer",
        "data2vec-text",
        "xmod",
        "roberta-prelayernorm",
        "mpnet",
        "ibert",
        "luke",
    }
)


def _looks_like_hub_id(spec):
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.endswith("/"):
        return False
    return spec.count("/") <= 1 and " " not in spec


def resolve_checkpoint(spec, *, parameter="backbone"):
    """Return a local folder path or a hub id, checking local folders.

    Parameters
    ----------
    spec : str or path-like
        A Hugging Face hub id such as ``"bert-base-uncased"`` or a local folder.
    parameter : str, default="backbone"
        Name used in error messages.

    Returns
    -------
    str
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"{parameter} must be a Hugging Face model id or a local folder (str or "
            f"path); got {type(spec).__name__} {spec!r:.60}."
        )
    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{parameter} folder {str(path)!r} holds no model: there is no "
                "config.json in it. Point it at a folder written by "
                "save_pretrained, or pass a Hugging Face model id."
            )
        return str(path.resolve())
    if path.exists():
        raise ValueError(
            f"{parameter} {text!r} is a file, not a model folder; pass the folder "
            "that holds config.json."
        )
    if isinstance(spec, os.PathLike) or not _looks_like_hub_id(text):
        raise ValueError(
            f"{parameter} folder {text!r} does not exist. Check the path, or pass a "
            "Hugging Face model id such as 'bert-base-uncased'."
        )
    return text


def _hub_failure(spec, parameter, error):
    if Path(spec).is_dir():
        # A local folder (resolve_checkpoint has checked it holds config.json)
        # that lacks a file this part needs, such as an image encoder's
        # preprocessor_config.json beside a text model.
        return OSError(
            f"could not load {parameter} from the local folder {spec!r} "
            f"({type(error).__name__}: {error}). Check that the folder holds what "
            "this part needs: the weights, the tokenizer for a text encoder, "
            "preprocessor_config.json for an image encoder."
        )
    return OSError(
        f"could not load {parameter} {spec!r}: it is not a local folder and loading "
        f"it from the Hugging Face hub failed ({type(error).__name__}: {error}). "
        "Check the id, or download the model and pass its local folder."
    )


def load_config(spec, *, parameter="backbone"):
    """Load a model config from a resolved checkpoint."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec)
    except OSError as error:
        raise _hub_failure(spec, parameter, error) from error


@contextlib.contextmanager
def _quiet_progress():
    """Hide transformers' weight-loading progress bars, restoring the setting."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


# Set by :func:`architecture_only`: build models from their config, read no weights.
_FROM_CONFIG = contextvars.ContextVar("from_config", default=False)


@contextlib.contextmanager
def architecture_only():
    """Make :func:`load_model` build each model from its folder's config alone.

    The weights are freshly initialised, for the caller to replace (a saved
    estimator's weights file); no weights file is opened, no code from the folder
    is run, and nothing is downloaded for a local folder.
    """
    token = _FROM_CONFIG.set(True)
    try:
        yield
    finally:
        _FROM_CONFIG.reset(token)


def _skip_weight_init():
    """Skip the random initialisation of weights that are about to be replaced.

    Uses transformers' own switch where this version has it; otherwise the
    weights are initialised as usual (slower, same result).
    """
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        return contextlib.nullcontext()
    return no_init_weights()


def load_model(spec, *, parameter="backbone", model_class=None):
    """Load pretrained weights with ``AutoModel`` (or ``model_class``).

    Inside :func:`architecture_only`, build the model from its config instead.
    """
    from transformers import AutoConfig, AutoModel

    loader = model_class or AutoModel
    try:
        if _FROM_CONFIG.get():
            config = AutoConfig.from_pretrained(spec, trust_remote_code=False)
            with _skip_weight_init():
                if loader is AutoModel:
                    return AutoModel.from_config(config, trust_remote_code=False)
                return loader._from_config(config)
        with _quiet_progress():
            return loader.from_pretrained(spec)
    except OSError as error:
        raise _hub_failure(spec, parameter, error) from error


def load_tokenizer(spec, *, parameter="backbone"):
    """Load the tokenizer saved with a checkpoint."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(spec, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise _hub_failure(spec, parameter, error) from error


def load_image_processor(spec, *, parameter="backbone"):
    """Load the image processor saved with a checkpoint, on its Pillow backend.

    The Pillow backend is always available (torchvision is optional) and gives the
    same resizing as the checkpoint's authors used, so it is the default here.
    """
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(
            spec, backend="pil", trust_remote_code=False
        )
    except (OSError, ValueError) as error:
        raise _hub_failure(spec, parameter, error) from error


def text_token_limit(config, tokenizer=None):
    """Return the longest token sequence the text model accepts, from its config.

    Parameters
    ----------
    config : PretrainedConfig
        The text model's config (for joint models, their text config).
    tokenizer : PreTrainedTokenizerBase, optional
        Its ``model_max_length`` caps the limit when it is set to a real value.

    Returns
    -------
    int or None
    """
    positions = getattr(config, "max_position_embeddings", None)
    limit = positions
    if positions and getattr(config, "model_type", None) in _OFFSET_POSITION_FAMILIES:
        pad = getattr(config, "pad_token_id", None)
        limit = positions - (1 if pad is None else pad) - 1
    declared = getattr(tokenizer, "model_max_length", None)
    if declared and declared < 1_000_000:
        limit = declared if limit is None else min(limit, declared)
    return limit
