"""The collaborative tower: gated track embeddings learned from playlist co-occurrence.

Training (TensorFlow/Keras) sees pairs (context, target): the target is one track of a
playlist, the context a sample of the playlist's other tracks. A playlist's query vector is
the normalised mean of its tracks' gated context embeddings; a track's vector is its gated,
normalised target embedding; the score is their dot product over a temperature. The loss is
an in-batch sampled softmax over every other target in the batch, with the log of each
track's sampling probability subtracted from its logit (the "logQ" correction), so popular
tracks are not over-punished for turning up as negatives more often.

Serving needs no TensorFlow: the gated context table and the track vectors are exported to
numpy, the playlist vector is a mean of rows, and retrieval is an Annoy (angular) lookup.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from annoy import AnnoyIndex

from recommender.data import DataError, Interactions

log = logging.getLogger(__name__)

COLLAB_METRIC: Final = "angular"


@dataclass(frozen=True)
class CollabSettings:
    """Training settings of the collaborative tower (saved in the manifest)."""

    dimension: int = 64
    temperature: float = 0.1
    epochs: int = 5
    batch_size: int = 1024
    context_size: int = 32
    learning_rate: float = 0.003
    min_count: int = 2
    n_trees: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.temperature, self.learning_rate)
        if not all(isinstance(x, int | float) and math.isfinite(x) and x > 0 for x in rates):
            raise ValueError("temperature and learning rate must be finite numbers > 0")
        counts = (self.dimension, self.epochs, self.batch_size, self.context_size, self.n_trees)
        if not all(isinstance(n, int) and n > 0 for n in counts) or self.min_count < 1:
            raise ValueError("collaborative sizes and counts must be whole numbers > 0")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError("the seed must be a whole number from 0 to 2**32 - 1")


@dataclass
class TrainReport:
    """What training did: sizes, per-epoch loss and wall time."""

    items: int
    examples_per_epoch: int
    losses: list[float]
    seconds: float


def build_model(n_items: int, dimension: int) -> Any:
    """A Keras model of standard layers only, so it loads without custom objects.

    Inputs: ``context`` (batch, L) int32 item ids + 1 (0 pads) and ``target`` (batch,) int32
    item ids. Outputs: query vectors and target vectors, both (batch, dimension), unit length.
    """
    import keras

    context = keras.Input(shape=(None,), dtype="int32", name="context")
    target = keras.Input(shape=(), dtype="int32", name="target")
    embedded = keras.layers.Embedding(
        n_items + 1, dimension, mask_zero=True, name="context_embedding"
    )(context)
    gate = keras.layers.Dense(dimension, activation="sigmoid", name="context_gate")(embedded)
    gated = keras.layers.Multiply(name="context_gated")([embedded, gate])
    pooled = keras.layers.GlobalAveragePooling1D(name="context_mean")(gated)
    query = keras.layers.UnitNormalization(name="query")(pooled)

    item = keras.layers.Embedding(n_items, dimension, name="track_embedding")(target)
    item_gate = keras.layers.Dense(dimension, activation="sigmoid", name="track_gate")(item)
    item_gated = keras.layers.Multiply(name="track_gated")([item, item_gate])
    vector = keras.layers.UnitNormalization(name="track")(item_gated)
    return keras.Model(inputs={"context": context, "target": target}, outputs=[query, vector])


def make_examples(
    interactions: Interactions,
    item_of: npt.NDArray[np.int64],
    context_size: int,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """One epoch of (context, target) pairs, shuffled.

    ``item_of`` (n_tracks,) maps vocabulary indices to collaborative item ids (-1 = not
    trained). Each known track of each playlist is a target once; its context is
    ``context_size`` draws (with replacement) from the playlist's other known tracks.
    Returns contexts (N, context_size) of item id + 1 and targets (N,), both int32.
    """
    items = item_of[interactions.tracks]
    lengths = np.diff(interactions.indptr)
    playlist_of = np.repeat(np.arange(len(lengths)), lengths)
    keep = items >= 0
    items, playlist_of = items[keep], playlist_of[keep]
    known = np.bincount(playlist_of, minlength=len(lengths))
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(known, out=starts[1:])
    usable = known[playlist_of] >= 2
    positions = np.flatnonzero(usable)
    group = playlist_of[positions]
    size = known[group]
    offset = positions - starts[group]
    draws = rng.integers(1, size[:, None], size=(len(positions), context_size))
    context_positions = starts[group][:, None] + (offset[:, None] + draws) % size[:, None]
    contexts = (items[context_positions] + 1).astype(np.int32)
    targets = items[positions].astype(np.int32)
    order = rng.permutation(len(targets))
    return contexts[order], targets[order]


def in_batch_loss(
    query: Any, vector: Any, targets: Any, log_q: Any, inverse_temperature: Any
) -> Any:
    """In-batch sampled softmax with logQ correction (TensorFlow tensors): each query's
    positive is its own target; the batch's other targets are its negatives, their logits
    lowered by the log of how often they are sampled. ``targets`` index ``log_q``."""
    import tensorflow as tf

    logits = tf.matmul(query, vector, transpose_b=True) * inverse_temperature
    logits -= tf.gather(log_q, targets)[None, :]
    # The same track twice in a batch is not a negative of itself.
    same = tf.equal(targets[:, None], targets[None, :])
    diagonal = tf.eye(tf.shape(targets)[0], dtype=tf.bool)
    logits = tf.where(same & ~diagonal, tf.fill(tf.shape(logits), -1e9), logits)
    labels = tf.range(tf.shape(targets)[0])
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def train_collab(
    interactions: Interactions,
    settings: CollabSettings,
    *,
    n_catalog: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[CollabModel, TrainReport]:
    """Train the tower on ``interactions`` and export it for serving.

    Catalogue rows must start with the interaction vocabulary (row i = vocabulary index i);
    ``n_catalog`` is the catalogue's full length (default: the vocabulary's).

    >>> model, report = train_collab(interactions, CollabSettings(epochs=3))
    >>> rows, scores = model.recommend(model_rows_of_playlist, top_k=10)
    """
    import tensorflow as tf

    started = time.perf_counter()
    tf.keras.utils.set_random_seed(settings.seed)
    counts = interactions.counts()
    item_rows = np.flatnonzero(counts >= settings.min_count).astype(np.int64)
    if len(item_rows) < 2:
        raise DataError(
            f"too few tracks occur in {settings.min_count} or more playlists to train on; "
            "give more playlists"
        )
    item_of = np.full(interactions.n_tracks, -1, dtype=np.int64)
    item_of[item_rows] = np.arange(len(item_rows))
    log_q = np.log(counts[item_rows] / counts[item_rows].sum()).astype(np.float32)

    model = build_model(len(item_rows), settings.dimension)
    optimizer = tf.keras.optimizers.Adam(settings.learning_rate)
    log_q_table = tf.constant(log_q)
    inverse_temperature = tf.constant(1.0 / settings.temperature)

    @tf.function(reduce_retracing=True)
    def step(contexts: Any, targets: Any) -> Any:
        with tf.GradientTape() as tape:
            query, vector = model({"context": contexts, "target": targets}, training=True)
            loss = in_batch_loss(query, vector, targets, log_q_table, inverse_temperature)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(settings.seed)
    losses: list[float] = []
    n_examples = 0
    for epoch in range(settings.epochs):
        contexts, targets = make_examples(interactions, item_of, settings.context_size, rng)
        n_examples = len(targets)
        if n_examples < 2:
            raise DataError("no playlist has two tracks that occur elsewhere; nothing to learn")
        total, batches = 0.0, 0
        for start in range(0, n_examples - 1, settings.batch_size):
            stop = min(start + settings.batch_size, n_examples)
            if stop - start < 2:
                break
            total += float(step(contexts[start:stop], targets[start:stop]))
            batches += 1
        losses.append(total / max(batches, 1))
        if progress is not None:
            progress(f"collaborative epoch {epoch + 1}/{settings.epochs}: loss {losses[-1]:.4f}")
        log.info("epoch %d loss %.4f", epoch + 1, losses[-1])

    n_catalog = interactions.n_tracks if n_catalog is None else n_catalog
    if n_catalog < interactions.n_tracks:
        raise ValueError("the catalogue is smaller than the playlist vocabulary")
    collab = CollabModel.from_keras(model, item_rows, n_catalog, settings)
    report = TrainReport(len(item_rows), n_examples, losses, time.perf_counter() - started)
    return collab, report


class CollabModel:
    """The exported tower: context table, track vectors and their Annoy index.

    ``rows`` (m,) are the catalogue rows the tower knows; ``contexts`` (m, d) their gated
    context embeddings; ``vectors`` (m, d) their unit-length track vectors; Annoy item ``i``
    is ``rows[i]``.
    """

    def __init__(
        self,
        rows: npt.NDArray[np.int64],
        contexts: npt.NDArray[np.float32],
        vectors: npt.NDArray[np.float32],
        index: AnnoyIndex,
        n_catalog: int,
        settings: CollabSettings,
        keras_model: Any = None,
    ) -> None:
        self.rows = rows
        self.contexts = contexts
        self.vectors = vectors
        self.index = index
        self.settings = settings
        self.keras_model = keras_model
        self.position = np.full(n_catalog, -1, dtype=np.int64)
        self.position[rows] = np.arange(len(rows))

    @classmethod
    def from_keras(
        cls, model: Any, rows: npt.NDArray[np.int64], n_catalog: int, settings: CollabSettings
    ) -> CollabModel:
        embedding = model.get_layer("context_embedding").get_weights()[0][1:]
        kernel, bias = model.get_layer("context_gate").get_weights()
        contexts = (embedding * _sigmoid(embedding @ kernel + bias)).astype(np.float32)
        track = model.get_layer("track_embedding").get_weights()[0]
        kernel, bias = model.get_layer("track_gate").get_weights()
        vectors = _normalise(track * _sigmoid(track @ kernel + bias))
        index = _build_index(vectors, settings.n_trees, settings.seed)
        return cls(rows, contexts, vectors, index, n_catalog, settings, keras_model=model)

    def knows(self, row: int) -> bool:
        return 0 <= row < len(self.position) and self.position[row] >= 0

    def query_vector(self, seed_rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32] | None:
        """Unit query vector (d,) of a playlist from its known seed rows, or None."""
        positions = self.position[np.asarray(seed_rows, dtype=np.int64)]
        positions = positions[positions >= 0]
        if len(positions) == 0:
            return None
        return _normalise(self.contexts[positions].mean(axis=0, keepdims=True))[0]

    def recommend(
        self, seed_rows: npt.NDArray[np.int64], top_k: int, *, search_k: int = -1
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The ``top_k`` catalogue rows scored highest for a playlist of ``seed_rows``.

        Returns rows (<= top_k,) int64 and temperature-scaled scores (<= top_k,) float32,
        best first; seeds are excluded.
        """
        query = self.query_vector(seed_rows)
        if query is None or top_k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        seeds = set(np.asarray(seed_rows, dtype=np.int64).tolist())
        found = self.index.get_nns_by_vector(query, top_k + len(seeds), search_k=search_k)
        positions = np.asarray([p for p in found if int(self.rows[p]) not in seeds][:top_k])
        if len(positions) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self.vectors[positions] @ query / self.settings.temperature
        order = np.argsort(-scores, kind="stable")
        return self.rows[positions[order]], scores[order].astype(np.float32)

    def similar(
        self, row: int, top_k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Tracks that share playlists with ``row``: the tower's view of "similar"."""
        return self.recommend(np.asarray([row]), top_k)

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the Keras model, the exported arrays and the index; returns the manifest entry."""
        if self.keras_model is not None:
            self.keras_model.save(directory / "collab.keras")
        np.savez(
            directory / "collab.npz", rows=self.rows, contexts=self.contexts, vectors=self.vectors
        )
        self.index.save(str(directory / "collab.ann"))
        return {
            "index": "collab.ann",
            "arrays": "collab.npz",
            "keras_model": "collab.keras" if self.keras_model is not None else None,
            "metric": COLLAB_METRIC,
            "dimension": int(self.vectors.shape[1]),
            "items": len(self.rows),
            "settings": asdict(self.settings),
        }

    @classmethod
    def load(cls, directory: Path, entry: dict[str, Any], n_catalog: int) -> CollabModel:
        # Bundles from an earlier version may name training options since dropped (such as
        # variable_context); none of them changes how the exported tower serves.
        known = {option.name for option in fields(CollabSettings)}
        settings = CollabSettings(**{k: v for k, v in entry["settings"].items() if k in known})
        with np.load(directory / entry["arrays"]) as arrays:
            rows = arrays["rows"].astype(np.int64)
            contexts = arrays["contexts"].astype(np.float32)
            vectors = arrays["vectors"].astype(np.float32)
        shape = (entry["items"], entry["dimension"])
        if contexts.shape != shape or vectors.shape != shape or len(rows) != entry["items"]:
            raise ValueError("collaborative arrays do not match the manifest")
        if len(rows) and (rows.min() < 0 or rows.max() >= n_catalog):
            raise ValueError("collaborative rows fall outside the catalogue")
        index = AnnoyIndex(
            entry["dimension"], COLLAB_METRIC
        )  # the manifest check ensured they match
        index.load(str(directory / entry["index"]))
        if index.get_n_items() != entry["items"]:
            raise ValueError("the collaborative index holds a different number of items")
        return cls(rows, contexts, vectors, index, n_catalog, settings)


def _sigmoid(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def _normalise(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _build_index(vectors: npt.NDArray[np.float32], n_trees: int, seed: int) -> AnnoyIndex:
    index = AnnoyIndex(vectors.shape[1], COLLAB_METRIC)
    index.set_seed(seed)
    for i, vector in enumerate(vectors):
        index.add_item(i, vector)
    index.build(n_trees, n_jobs=1)
    return index
