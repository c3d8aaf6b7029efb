"""The track catalogue: dense index 0..n-1 <-> Spotify track id, with display name and artist.

Every tower speaks in catalogue indices; this is the one mapping they share, saved with the
model so a bundle never mixes vocabularies.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from recommender.text import one_line

log = logging.getLogger(__name__)

CATALOG_COLUMNS = ("track_id", "name", "artist")


@dataclass
class TrackCatalog:
    """Track ids with their names and artists; ``index_of`` maps an id back to its row."""

    track_ids: list[str]
    names: list[str]
    artists: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not len(self.track_ids) == len(self.names) == len(self.artists):
            raise ValueError("catalog columns differ in length")
        self._index = {track_id: i for i, track_id in enumerate(self.track_ids)}
        if len(self._index) != len(self.track_ids):
            raise ValueError("catalog track ids are not unique")

    def __len__(self) -> int:
        return len(self.track_ids)

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._index

    def index_of(self, track_id: str) -> int | None:
        return self._index.get(track_id)

    def indices(self, track_ids: Iterable[str]) -> tuple[npt.NDArray[np.int64], list[str]]:
        """Catalogue rows of the known ``track_ids`` (in order) and the unknown ids."""
        known: list[int] = []
        unknown: list[str] = []
        for track_id in track_ids:
            row = self._index.get(track_id)
            if row is None:
                unknown.append(track_id)
            else:
                known.append(row)
        return np.asarray(known, dtype=np.int64), unknown

    def label(self, row: int) -> str:
        """``Artist - Name`` for display, falling back to the URI when both are unknown."""
        name, artist = self.names[row], self.artists[row]
        if name and artist:
            return f"{artist} - {name}"
        return name or artist or f"spotify:track:{self.track_ids[row]}"

    @classmethod
    def merge(
        cls, sources: Sequence[tuple[Sequence[str], Sequence[str], Sequence[str]]]
    ) -> TrackCatalog:
        """Union of (ids, names, artists) sources; the first non-empty name/artist wins.

        Names are put on one printable line (see :mod:`recommender.text`), so the saved
        catalogue reads back as it was.
        """
        ids: list[str] = []
        names: list[str] = []
        artists: list[str] = []
        index: dict[str, int] = {}
        for source_ids, source_names, source_artists in sources:
            for track_id, name, artist in zip(
                source_ids, source_names, source_artists, strict=True
            ):
                name, artist = one_line(name or ""), one_line(artist or "")
                row = index.get(track_id)
                if row is None:
                    index[track_id] = len(ids)
                    ids.append(track_id)
                    names.append(name or "")
                    artists.append(artist or "")
                    continue
                if not names[row] and name:
                    names[row] = name
                if not artists[row] and artist:
                    artists[row] = artist
        return cls(ids, names, artists)

    def save(self, path: Path) -> None:
        frame = pd.DataFrame(
            {"track_id": self.track_ids, "name": self.names, "artist": self.artists}
        )
        frame.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")

    @classmethod
    def load(cls, path: Path) -> TrackCatalog:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        if tuple(frame.columns) != CATALOG_COLUMNS:
            raise ValueError(
                f"catalog columns are {list(frame.columns)}, not {list(CATALOG_COLUMNS)}"
            )
        return cls(frame["track_id"].tolist(), frame["name"].tolist(), frame["artist"].tolist())
