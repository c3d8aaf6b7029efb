"""The unified content-aware tower: one track vector from an id embedding and the sound.

A track's vector is its id embedding (for tracks on ``min_count``+ training playlists) plus a
gated projection of its scaled audio features (for tracks that have them). It is trained
with the collaborative tower's loss (in-batch softmax with logQ correction, temperature),
and for ``id_dropout`` of the examples the id part of a track that has features is dropped,
so the sound alone must place it well. That is what lets a track no playlist holds yet into
the collaborative space.

The export is a :class:`~recommender.collab.CollabModel` (query = normalised mean of the
seeds' raw vectors, score = dot product over the temperature), so serving is the same code.
``harmonya train --model unified`` builds it (recommender/train.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.collab import (
    CollabModel,
    CollabSettings,
    TrainReport,
    _build_index,
    _normalise,
    in_batch_loss,
)
from recommender.collab import make_examples as collab_examples
from recommender.data import DataError, Interactions

log = logging.getLogger(__name__)

ID_DROPOUT = 0.1  # measured against 0.3 in the README (issue 5)


def build_unified(
    n_items: int,
    features: npt.NDArray[np.float32],
    has_features: npt.NDArray[np.bool_],
    dimension: int,
) -> Any:
    """Keras model over item ids + 1 (0 pads): ``features`` (n_items, f) and ``has_features``
    are looked up inside the graph; a track without features gets no sound part at all (not
    the projection's bias), exactly as :func:`_export` serves it. Inputs: ``context``
    (batch, L), ``context_id`` (batch, L) floats (1 keeps the id part), ``target`` (batch,),
    ``target_id`` (batch,). Outputs the raw query (mean of the context's vectors) and the unit
    target vectors."""
    import keras

    width = features.shape[1]
    table = np.zeros((n_items + 1, width), dtype=np.float32)
    table[1:] = features
    present_table = np.zeros((n_items + 1, 1), dtype=np.float32)
    present_table[1:, 0] = has_features

    ids_layer = keras.layers.Embedding(n_items + 1, dimension, name="track_id")
    sound_layer = keras.layers.Embedding(
        n_items + 1, width, trainable=False, name="sound", weights=[table]
    )
    has_sound = keras.layers.Embedding(
        n_items + 1, 1, trainable=False, name="has_sound", weights=[present_table]
    )
    projection = keras.layers.Dense(dimension, name="sound_projection")
    gate = keras.layers.Dense(dimension, activation="sigmoid", name="sound_gate")

    def encode(item: Any, keep_id: Any) -> Any:
        sound = sound_layer(item)
        by_sound = keras.layers.Multiply()([projection(sound), gate(sound), has_sound(item)])
        by_id = keras.layers.Multiply()([ids_layer(item), keras.ops.expand_dims(keep_id, -1)])
        return keras.layers.Add()([by_id, by_sound])

    context = keras.Input(shape=(None,), dtype="int32", name="context")
    context_id = keras.Input(shape=(None,), dtype="float32", name="context_id")
    target = keras.Input(shape=(), dtype="int32", name="target")
    target_id = keras.Input(shape=(), dtype="float32", name="target_id")
    present = keras.ops.expand_dims(keras.ops.cast(context > 0, "float32"), -1)
    summed = keras.ops.sum(encode(context, context_id) * present, axis=1)
    query = summed / keras.ops.maximum(keras.ops.sum(present, axis=1), 1.0)
    vector = keras.layers.UnitNormalization(name="track")(encode(target, target_id))
    inputs = {
        "context": context,
        "context_id": context_id,
        "target": target,
        "target_id": target_id,
    }
    return keras.Model(inputs=inputs, outputs=[query, vector])


def train_unified(
    interactions: Interactions,
    features: npt.NDArray[np.float32],
    has_features: npt.NDArray[np.bool_],
    settings: CollabSettings,
    *,
    id_dropout: float = ID_DROPOUT,
    progress: Callable[[str], None] | None = None,
) -> tuple[CollabModel, TrainReport]:
    """Train on ``interactions`` with the collaborative tower's ``settings``; ``features``
    (n_catalog, f) and ``has_features`` (n_catalog,) cover the whole catalogue, whose first
    rows are the interaction vocabulary. Every catalogue row with an id or with features is
    in the exported tower."""
    if not (isinstance(id_dropout, int | float) and 0 <= id_dropout < 1):
        raise ValueError("id_dropout must be in [0, 1)")
    import tensorflow as tf

    started = time.perf_counter()
    tf.keras.utils.set_random_seed(settings.seed)
    n_catalog = len(features)
    counts = np.zeros(n_catalog, dtype=np.int64)
    counts[: interactions.n_tracks] = interactions.counts()
    has_id = counts >= settings.min_count
    usable = has_id | has_features
    # Training items: playlist tracks the model can represent.
    item_rows = np.flatnonzero(usable[: interactions.n_tracks]).astype(np.int64)
    if len(item_rows) < 2:
        raise DataError("too few tracks with an id or audio features to train on")
    item_of = np.full(interactions.n_tracks, -1, dtype=np.int64)
    item_of[item_rows] = np.arange(len(item_rows))
    log_q = np.log(np.maximum(counts[item_rows], 1) / max(counts[item_rows].sum(), 1))
    sounding = int(has_features[item_rows].sum())
    _tell(
        progress, f"unified: {sounding:,} of {len(item_rows):,} training tracks have audio features"
    )
    if sounding == 0:
        elsewhere = (
            " (the content tower still has the ones with features)"
            if has_features.any()
            else " (no track has audio features at all: check the feature tables in the data)"
        )
        _tell(
            progress,
            "unified: no training track has audio features, so the sound part learns nothing; "
            "tracks on no playlist stay out of this tower" + elsewhere,
            warn=True,
        )
        usable = has_id

    model = build_unified(
        len(item_rows),
        features[item_rows] * has_features[item_rows, None],
        has_features[item_rows],
        settings.dimension,
    )
    optimizer = tf.keras.optimizers.Adam(settings.learning_rate)
    log_q_table = tf.constant(log_q.astype(np.float32))
    id_table = np.concatenate([[0.0], has_id[item_rows]]).astype(np.float32)
    droppable = np.concatenate([[False], has_features[item_rows] & has_id[item_rows]])
    inverse_temperature = tf.constant(1.0 / settings.temperature)

    @tf.function(reduce_retracing=True)
    def step(batch: dict[str, Any]) -> Any:
        with tf.GradientTape() as tape:
            query, vector = model(batch, training=True)
            query = tf.math.l2_normalize(query, axis=-1)
            items = batch["target"] - 1  # the model's ids are shifted by one (0 pads)
            loss = in_batch_loss(query, vector, items, log_q_table, inverse_temperature)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(settings.seed)
    losses: list[float] = []
    n_examples = 0
    for epoch in range(settings.epochs):
        contexts, targets = collab_examples(interactions, item_of, settings.context_size, rng)
        targets = targets + 1  # shift to the model's item ids (0 pads)
        n_examples = len(targets)
        if n_examples < 2:
            raise DataError("no playlist has two usable tracks; nothing to learn")
        keep_context = _keep(contexts, id_table, droppable, id_dropout, rng)
        keep_target = _keep(targets, id_table, droppable, id_dropout, rng)
        total, batches = 0.0, 0
        for start in range(0, n_examples - 1, settings.batch_size):
            stop = min(start + settings.batch_size, n_examples)
            if stop - start < 2:
                break
            batch = {
                "context": contexts[start:stop],
                "context_id": keep_context[start:stop],
                "target": targets[start:stop],
                "target_id": keep_target[start:stop],
            }
            total += float(step(batch))
            batches += 1
        losses.append(total / max(batches, 1))
        if progress is not None:
            progress(f"unified epoch {epoch + 1}/{settings.epochs}: loss {losses[-1]:.4f}")

    rows = np.flatnonzero(usable).astype(np.int64)
    raw = _export(model, rows, item_rows, features, has_id, has_features)
    vectors = _normalise(raw)
    index = _build_index(vectors, settings.n_trees, settings.seed)
    tower = CollabModel(rows, raw, vectors, index, n_catalog, settings, keras_model=model)
    report = TrainReport(len(rows), n_examples, losses, time.perf_counter() - started)
    return tower, report


def _tell(progress: Callable[[str], None] | None, message: str, *, warn: bool = False) -> None:
    if progress is not None:  # the caller shows it (the command line prints it once)
        progress(message)
    else:
        log.log(logging.WARNING if warn else logging.INFO, "%s", message)


def _keep(
    items: npt.NDArray[np.int32],
    id_table: npt.NDArray[np.float32],
    droppable: npt.NDArray[np.bool_],
    share: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """1 where an item's id part is used, 0 where it has none or is dropped this time."""
    keep = id_table[items].copy()
    dropped = droppable[items] & (rng.random(items.shape) < share)
    keep[dropped] = 0.0
    return keep


def _export(
    model: Any,
    rows: npt.NDArray[np.int64],
    item_rows: npt.NDArray[np.int64],
    features: npt.NDArray[np.float32],
    has_id: npt.NDArray[np.bool_],
    has_features: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float32]:
    """Raw vectors (len(rows), d) of every representable catalogue row, in numpy."""
    ids = model.get_layer("track_id").get_weights()[0]
    kernel, bias = model.get_layer("sound_projection").get_weights()
    gate_kernel, gate_bias = model.get_layer("sound_gate").get_weights()
    sound = features[rows].astype(np.float64)
    by_sound = (sound @ kernel + bias) / (1.0 + np.exp(-(sound @ gate_kernel + gate_bias)))
    by_sound *= has_features[rows, None]
    item_of = np.full(len(features), -1, dtype=np.int64)
    item_of[item_rows] = np.arange(len(item_rows))
    by_id = np.zeros_like(by_sound)
    trained = (item_of[rows] >= 0) & has_id[rows]
    by_id[trained] = ids[item_of[rows][trained] + 1]
    return (by_id + by_sound).astype(np.float32)
