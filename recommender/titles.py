"""Playlist titles as a signal: what playlists with the same name hold.

People name playlists with a small vocabulary ("chill", "workout", "throwbacks", "country"),
so a title alone says a lot when nothing else is known, which is the challenge's "title
only" case and a member's playlist of tracks the model has never seen. Titles are
normalised (case, accents, emoji and punctuation dropped); each normalised title used by at
least ``min_playlists`` training playlists keeps its most frequent tracks. A title never
seen whole is answered from its words that are titles of their own.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recommender.data import Interactions

_NOT_WORD = re.compile(r"[^0-9a-z]+")
TITLES_FILE = "titles.npz"


def normalise_title(title: str) -> str:
    """Lower case, accents and everything but letters and digits removed, single spaces."""
    if not isinstance(title, str):
        return ""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    return " ".join(_NOT_WORD.split(folded.lower())).strip()


class TitleIndex:
    """Normalised title -> catalogue rows of the tracks its playlists hold most, best first."""

    def __init__(self, keys: list[str], indptr: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]):
        self.keys = keys
        self.indptr = indptr
        self.rows = rows
        self.position = {key: number for number, key in enumerate(keys)}

    @classmethod
    def build(
        cls, interactions: Interactions, *, min_playlists: int = 1, depth: int = 500
    ) -> TitleIndex:
        """Rows are interaction vocabulary indices, which are the first catalogue rows."""
        members: dict[str, list[int]] = defaultdict(list)
        for row, name in enumerate(interactions.playlist_names):
            key = normalise_title(name)
            if key:
                members[key].append(row)
        keys: list[str] = []
        lists: list[list[int]] = []
        for key in sorted(members):
            playlists = members[key]
            if len(playlists) < min_playlists:
                continue
            counts: Counter[int] = Counter()
            for row in playlists:
                counts.update(set(interactions.playlist(row).tolist()))
            ranked = sorted(counts, key=lambda t: (-counts[t], t))[:depth]
            keys.append(key)
            lists.append(ranked)
        indptr = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in lists], out=indptr[1:])
        rows = np.asarray([r for x in lists for r in x], dtype=np.int64)
        return cls(keys, indptr, rows)

    def __len__(self) -> int:
        return len(self.keys)

    def recommend(self, title: str, top_k: int) -> npt.NDArray[np.int64]:
        """Rows for ``title`` (up to ``top_k``), empty when neither it nor its words are known."""
        key = normalise_title(title)
        number = self.position.get(key)
        if number is not None:
            return self.rows[self.indptr[number] : self.indptr[number + 1]][:top_k]
        lists = [self._rows(word) for word in key.split() if word in self.position]
        if not lists:
            return np.zeros(0, dtype=np.int64)
        scores: dict[int, float] = {}
        for rows in lists:  # reciprocal-rank fusion of the words' lists
            for rank, row in enumerate(rows.tolist()):
                scores[row] = scores.get(row, 0.0) + 1.0 / (60 + rank)
        ranked = sorted(scores, key=lambda r: (-scores[r], r))[:top_k]
        return np.asarray(ranked, dtype=np.int64)

    def _rows(self, key: str) -> npt.NDArray[np.int64]:
        number = self.position[key]
        return self.rows[self.indptr[number] : self.indptr[number + 1]]

    def save(self, directory: Path) -> dict[str, Any]:
        np.savez(
            directory / TITLES_FILE,
            keys=np.asarray(self.keys, dtype=np.str_),
            indptr=self.indptr,
            rows=self.rows,
        )
        return {"arrays": TITLES_FILE, "titles": len(self.keys)}

    @classmethod
    def load(cls, directory: Path, entry: dict[str, Any], n_catalog: int) -> TitleIndex:
        with np.load(directory / entry["arrays"]) as arrays:
            keys = [str(k) for k in arrays["keys"].tolist()]
            indptr = arrays["indptr"].astype(np.int64)
            rows = arrays["rows"].astype(np.int64)
        if len(keys) != entry["titles"] or len(indptr) != len(keys) + 1 or indptr[-1] != len(rows):
            raise ValueError("the title arrays do not match the manifest")
        if len(rows) and (rows.min() < 0 or rows.max() >= n_catalog):
            raise ValueError("title rows fall outside the catalogue")
        return cls(keys, indptr, rows)
