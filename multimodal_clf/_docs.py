"""Parameter documentation shared by the estimators' docstrings."""

TRAINING_PARAMETERS = """\
max_length : int, default=None
        Longest token sequence fed to the text model. ``None`` uses the model's
        own limit, read from its config (512 for BERT and RoBERTa, 77 for CLIP,
        40 for ViLT). Longer texts are truncated, with one
        :class:`~multimodal_clf.exceptions.TruncationWarning` per call; a value
        above the model's limit is an error.
    batch_size : int, default=16
        Rows per forward pass. Batches are padded to their own longest row.
    epochs : int, default=3
        Passes over the training data.
    learning_rate : float, default=2e-5
        Peak AdamW learning rate of the backbone.
    head_learning_rate : float, default=None
        Learning rate of the head. ``None`` uses ``learning_rate``, or ``1e-3``
        when the whole backbone is frozen.
    weight_decay : float, default=0.01
        AdamW weight decay (not applied to biases and norms).
    warmup_ratio : float, default=0.1
        Fraction of optimizer steps over which the learning rate rises linearly
        from 0; it then decays linearly to 0.
    class_weight : dict, "balanced" or None, default=None
        Loss weight per class; ``"balanced"`` weighs classes inversely to their
        frequency, like :func:`sklearn.utils.class_weight.compute_class_weight`.
    validation_fraction : float, default=0.1
        Share of the training rows held out (stratified) to monitor the
        validation loss when ``early_stopping=True``; must be in [0, 1).
    early_stopping : bool, default=False
        Stop when the validation loss has not improved for ``patience`` epochs,
        and keep the weights of the best epoch.
    patience : int, default=2
        Epochs without improvement before early stopping.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Mixed precision: ``"auto"`` is bf16 on GPUs that support it, fp16 with a
        gradient scaler on other GPUs, and fp32 on the CPU. ``"bf16"`` on the CPU
        uses CPU autocast; ``"fp16"`` needs a GPU. Weights stay in float32.
    gradient_checkpointing : bool, default=False
        Recompute activations in the backward pass to save memory.
    gradient_accumulation_steps : int, default=1
        Micro-batches per optimizer step; the update equals that of one batch
        ``gradient_accumulation_steps`` times larger.
    freeze_backbone : bool, default=False
        Train only the head (a linear probe when the head has no hidden layer).
        Features of frozen towers are computed once and cached.
    freeze : int, str, list of str or None, default=None
        Freeze part of the backbone: a number of layers (the embeddings and the
        first ``n`` layers of every tower), or parameter-name prefixes, where
        ``"text"`` and ``"image"`` name whole towers.
    device : str or torch.device, default="auto"
        ``"auto"`` (every visible GPU when there are any, else the CPU),
        ``"cpu"``, ``"cuda"`` (one GPU), ``"cuda:<index>"`` or ``"mps"``. Under
        ``torchrun`` each process uses its own GPU (``LOCAL_RANK``) and training
        is distributed; see the scaling page of the documentation.
    cache_features : bool, default=True
        Keep features of frozen towers in a shared in-memory cache so that later
        epochs, fits and folds reuse them. Clear it with
        :func:`multimodal_clf.clear_feature_cache`.
    warm_start : bool, default=False
        When True and already fitted with the same classes, a new ``fit``
        continues from the current weights; otherwise it starts again from the
        pretrained backbone.
    random_state : int, RandomState or None, default=None
        Seeds the head's initialisation, dropout, shuffling and the validation
        split. With an int, two CPU fits give identical probabilities.
    verbose : int, default=1
        When positive, print one line per epoch (losses and seconds) and one
        when frozen-tower features have been computed, and on a terminal or in
        a notebook also show progress bars while they run. 0 prints nothing.
    text_column : str, default="text"
        Name of the text column when X is a DataFrame or a list of dicts.
    checkpoint_dir : str or path-like, default=None
        When set, ``fit`` writes the whole training state there after every
        epoch (safetensors and JSON, the latest epoch only), and
        ``fit(X, y, resume=True)`` continues an interrupted run from it."""

FITTED_ATTRIBUTES = """\
classes_ : ndarray of shape (n_classes,)
        The sorted class labels, of the type given to ``fit``.
    model_ : torch.nn.Module
        The fitted backbone and head.
    tokenizer_ : transformers tokenizer
        The backbone's tokenizer.
    history_ : list of dict
        Per epoch: ``train_loss``, and ``valid_loss`` and ``valid_accuracy`` when
        a validation split is used.
    n_iter_ : int
        Epochs run."""
