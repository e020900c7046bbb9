"""Item and user attributes as features: a CSV of ``id, attribute columns`` as a sparse one-hot matrix.

A column whose every non-empty value is a number is numeric: it becomes ``bins`` quantile bins
(one feature each, so a price band or an age band is learnt as a level, not as a line). Any
other column is categorical; ``|`` separates the values of a multi-valued cell ("Comedy|Drama"),
each value a feature of its own. Empty cells give no feature. Every row also has a constant
feature, so a model can learn what all items (or users) share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

MULTI_SEPARATOR = "|"
NUMERIC_BINS = 5
CONSTANT = "(all)"


@dataclass
class AttributeTable:
    """One row of features per id; ``names`` label the columns (``genre=Comedy``, ``year#2``)."""

    ids: np.ndarray
    matrix: sparse.csr_matrix
    names: list[str]

    def rows(self, ids) -> sparse.csr_matrix:
        """Feature rows for ``ids`` in that order; an id without attributes gets the constant only."""
        index = pd.Index(self.ids).get_indexer(list(ids))
        known = index >= 0
        out = self.matrix[np.where(known, index, 0)].tolil()
        constant = self.names.index(CONSTANT)
        for row in np.flatnonzero(~known):
            out.rows[row], out.data[row] = [constant], [1.0]
        return out.tocsr()

    def describe(self, item_id: str) -> list[str]:
        """The feature names of one id (used for the reason a list gives)."""
        position = pd.Index(self.ids).get_indexer([item_id])[0]
        if position < 0:
            return []
        return [self.names[column] for column in self.matrix[position].indices if self.names[column] != CONSTANT]


def read_attribute_file(path: Path, id_column: str) -> pd.DataFrame:
    """The CSV as strings; its first column must be ``id_column``. Duplicate ids keep the last row."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    if frame.columns.empty or frame.columns[0].strip() != id_column:
        raise ValueError(f"{path}: the header must start with {id_column!r}, got {list(frame.columns)[:3]}")
    frame = frame.rename(columns={frame.columns[0]: id_column})
    frame[id_column] = frame[id_column].str.strip()
    frame = frame[frame[id_column] != ""]
    return frame.drop_duplicates(id_column, keep="last").reset_index(drop=True)


def encode_attributes(frame: pd.DataFrame, id_column: str, bins: int = NUMERIC_BINS) -> AttributeTable:
    """The one-hot feature matrix of every attribute column of ``frame`` (see the module's rules)."""
    ids = frame[id_column].astype(str).to_numpy(dtype=object)
    rows: list[np.ndarray] = [np.arange(len(frame))]
    columns: list[np.ndarray] = [np.zeros(len(frame), dtype=np.int64)]
    names = [CONSTANT]
    for column in frame.columns:
        if column == id_column:
            continue
        values = frame[column].fillna("").astype(str).str.strip()
        numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
        filled = values != ""
        numeric = (
            filled.any()
            and numbers[filled].notna().all()
            and not values.str.contains(MULTI_SEPARATOR, regex=False).any()
        )
        if numeric:
            codes = _quantile_bins(numbers, bins)
            tokens = [f"{column}#{code}" for code in codes]
            exploded = pd.DataFrame({"row": np.arange(len(frame)), "token": tokens})[codes >= 0]
        else:
            split = values.str.split(MULTI_SEPARATOR, regex=False)
            exploded = pd.DataFrame({"row": np.arange(len(frame)), "token": split}).explode("token")
            exploded["token"] = exploded["token"].str.strip()
            exploded = exploded[exploded["token"] != ""]
            exploded["token"] = column + "=" + exploded["token"]
        vocabulary = sorted(exploded["token"].unique())
        offset = len(names)
        names.extend(vocabulary)
        rows.append(exploded["row"].to_numpy(dtype=np.int64))
        columns.append(offset + pd.Index(vocabulary).get_indexer(exploded["token"]))
    row = np.concatenate(rows)
    col = np.concatenate(columns)
    matrix = sparse.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)), shape=(len(frame), len(names)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return AttributeTable(ids, matrix, names)


def _quantile_bins(numbers: pd.Series, bins: int) -> np.ndarray:
    """Bin codes from 0 (-1 where missing): quantile edges, merged where values repeat."""
    present = numbers.dropna()
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])) if len(present) else np.array([])
    codes = np.where(numbers.isna(), -1, np.searchsorted(edges, numbers.fillna(0).to_numpy(), side="right"))
    return codes.astype(np.int64)
