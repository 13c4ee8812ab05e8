"""Typed table columns: kinds, value checks, and the encoding fitted on the training split.

Every feature column is numeric, categorical or text (an image-path column makes the table an
image source instead). Encoded, numeric columns form one float block with missing values
filled; each categorical column becomes an integer id (0: unknown or missing) that the model
one-hot encodes or embeds; each text column either a bag of word n-grams with TF-IDF weights
(ids and weights, the model sums their embeddings: a dense layer on the TF-IDF vector) or a
fixed-length sequence of word ids (0: padding, 1: unknown) that the model embeds. The fitted
state (fill values, vocabularies, idf) is stored in each column's spec inside the schema, so
predict encodes new rows exactly the same way.

String lookups happen here, in NumPy, rather than in StringLookup/TextVectorization layers:
those layers need TensorFlow string tensors, and the pipeline must run on JAX and PyTorch too.
Words are lower-cased runs of 2+ letters or digits (scikit-learn's default token pattern), so
"https://t.co/x1" is the words https, co, x1.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.images import is_image_name
from pipeline.schema import ColumnSpec

MISSING_BY_KIND = {
    "numeric": ("mean", "median", "zero", "error"),
    "categorical": ("missing_category", "most_frequent", "error"),
    "text": ("empty", "error"),
    "image": ("error",),
}
NUMERIC_SHARE = 0.9  # a column counts as numeric when this share of its values parses as numbers
TEXT_MIN_WORDS = 3.0  # mean words per value above which a string column is text, not categorical
WORDS = re.compile(r"(?u)\b\w\w+\b")  # words of 2+ letters or digits (scikit-learn's default pattern)
PAD, UNKNOWN = 0, 1  # text token ids; vocabulary words start at 2
SAMPLES_PER_WORD = 1500  # Google's text guide: below this (texts / median words), n-gram bags do better
MIN_DOCUMENTS = 2  # an n-gram in fewer training texts is left out of the vocabulary


def input_name(kind: str, column: str) -> str:
    """A model input name for a column (letters, digits and underscores only)."""
    return f"{kind}_{re.sub(r'[^0-9A-Za-z_]', '_', column)}"


def infer_kind(series: pd.Series) -> str:
    """numeric, categorical, text or image, from the values of one column."""
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if values.empty:
        return "numeric"
    strings = values.astype(str)
    if strings.map(is_image_name).all():
        return "image"
    if pd.to_numeric(strings, errors="coerce").notna().mean() >= NUMERIC_SHARE:
        return "numeric"
    return "text" if strings.str.split().str.len().mean() >= TEXT_MIN_WORDS else "categorical"


def column_specs(frame: pd.DataFrame, features: list[str], declared: dict, missing: dict, where: str,
                 text: dict) -> list[ColumnSpec]:
    """One spec per feature column: its kind (declared or inferred) and missing-value strategy."""
    specs = []
    for column in features:
        kind = declared.get(column) or infer_kind(frame[column])
        strategy = missing.get(column, MISSING_BY_KIND[kind][0])
        if strategy not in MISSING_BY_KIND[kind]:
            raise DataError(f"data.missing.{column}: got {strategy!r}; allowed for a {kind} column: "
                            f"{', '.join(MISSING_BY_KIND[kind])}")
        spec = ColumnSpec(column, kind, strategy, input_name(kind, column))
        if kind == "text":
            spec = dataclasses.replace(spec, sequence_length=text["sequence_length"],
                                       vocabulary_size=text["vocabulary_size"],
                                       representation=text_representation(frame[column], text["representation"]))
            if spec.bag:
                spec = dataclasses.replace(spec, ngrams=text["ngrams"])
        specs.append(spec)
    check_values(frame, specs, where)
    return specs


def check_values(frame: pd.DataFrame, specs: list[ColumnSpec], where: str) -> None:
    """Columns present, numeric columns numeric, and no missing value where the strategy is `error`."""
    absent = [s.name for s in specs if s.name not in frame.columns]
    if absent:
        raise DataError(f"{where}: column(s) {absent} not found; columns are {list(frame.columns)}")
    for spec in specs:
        values = frame[spec.name]
        if spec.kind == "numeric":
            parsed = pd.to_numeric(values, errors="coerce")
            bad = parsed.isna() & values.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{where}: column '{spec.name}' must be numeric; row {row} holds {values.iloc[row]!r}")
            infinite = np.isinf(parsed.to_numpy(dtype="float64"))
            if infinite.any():
                row = int(np.flatnonzero(infinite)[0])
                raise DataError(f"{where}: column '{spec.name}' holds an infinite value at row {row} "
                                f"({values.iloc[row]!r}); replace it with a number, or leave the cell empty to fill "
                                f"it by data.missing.{spec.name}")
        if spec.missing == "error" and values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{where}: column '{spec.name}' has a missing value at row {row} "
                            f"(data.missing.{spec.name} is error; allowed: {', '.join(MISSING_BY_KIND[spec.kind])})")


def text_representation(values: pd.Series, setting: str) -> str:
    """ngrams or sequence; `auto` by the ratio of texts to median words per text (Google's guide)."""
    if setting != "auto":
        return setting
    words = float(np.median([len(tokens(v)) for v in values])) or 1.0
    return "ngrams" if len(values) / words < SAMPLES_PER_WORD else "sequence"


def time_values(values: pd.Series, where: str) -> np.ndarray:
    """Sortable time stamps from a column: numbers as they are, dates as nanoseconds."""
    column = values.name
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{where}: time column '{column}' has a missing value at row {row}")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64")
    try:
        return pd.to_datetime(values).astype("int64").to_numpy(dtype="float64")
    except (ValueError, TypeError):
        raise DataError(f"{where}: time column '{column}' is neither numbers nor dates "
                        f"(row 0 holds {values.iloc[0]!r})") from None


def category_strings(values: pd.Series) -> list[str | None]:
    """Category values as strings (3 and 3.0 are one category); None where missing."""
    def text(value):
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)
    return [None if pd.isna(v) else text(v) for v in values]


def tokens(value) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return WORDS.findall(str(value).lower())


def ngrams_of(value, longest: int) -> list[str]:
    """Every run of 1..`longest` words of a text, as strings ("not", "not good")."""
    words = tokens(value)
    return [" ".join(words[i:i + n]) for n in range(1, longest + 1) for i in range(len(words) - n + 1)]


def fit_specs(train: pd.DataFrame, specs: list[ColumnSpec]) -> list[ColumnSpec]:
    """Specs with the state learned from the training rows only: fill values and vocabularies."""
    fitted = []
    for spec in specs:
        values = train[spec.name]
        if spec.kind == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            fill = {"mean": numbers.mean(), "median": numbers.median(), "zero": 0.0, "error": 0.0}[spec.missing]
            spec = dataclasses.replace(spec, fill=float(0.0 if pd.isna(fill) else fill))
        elif spec.kind == "categorical":
            counts = Counter(v for v in category_strings(values) if v is not None)
            vocabulary = [v for v, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
            spec = dataclasses.replace(spec, vocabulary=vocabulary, most_frequent=vocabulary[0] if vocabulary else None)
        elif spec.kind == "text" and spec.bag:
            spec = _fit_ngrams(values, spec)
        elif spec.kind == "text":
            counts = Counter(t for value in values for t in tokens(value))
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            spec = dataclasses.replace(spec, vocabulary=[t for t, _ in ranked[: spec.vocabulary_size - 2]])
        fitted.append(spec)
    return fitted


def _fit_ngrams(values, spec: ColumnSpec) -> ColumnSpec:
    """The `vocabulary_size` n-grams found in the most training texts (at least MIN_DOCUMENTS), and
    their smoothed inverse document frequency, ln((1 + texts) / (1 + texts with it)) + 1."""
    documents = Counter(g for value in values for g in set(ngrams_of(value, spec.ngrams)))
    kept = [(g, n) for g, n in documents.items() if n >= MIN_DOCUMENTS] or list(documents.items())
    ranked = sorted(kept, key=lambda item: (-item[1], item[0]))[: spec.vocabulary_size - 1]
    total = len(values)
    return dataclasses.replace(spec, vocabulary=[g for g, _ in ranked],
                               idf=[float(np.log((1 + total) / (1 + n)) + 1) for _, n in ranked])


def ngram_bags(values, spec: ColumnSpec) -> tuple[np.ndarray, np.ndarray]:
    """(ids, weights) per text: its vocabulary n-grams (id 0: padding) with their L2-normalised
    TF-IDF weights, (1 + ln count) x idf, the `sequence_length` highest kept. A model that sums
    the weighted rows of an embedding over them computes a dense layer on the TF-IDF vector."""
    index = {g: i for i, g in enumerate(spec.vocabulary)}
    idf = np.asarray(spec.idf)
    length = spec.sequence_length
    ids = np.zeros((len(values), length), dtype="int32")
    weights = np.zeros((len(values), length), dtype="float32")
    for row, value in enumerate(values):
        counts = Counter(index[g] for g in ngrams_of(value, spec.ngrams) if g in index)
        if not counts:
            continue
        found = np.fromiter(counts.keys(), dtype="int64")
        tfidf = (1.0 + np.log(np.fromiter(counts.values(), dtype="float64"))) * idf[found]
        tfidf /= np.linalg.norm(tfidf)
        top = np.argsort(-tfidf, kind="stable")[:length]
        ids[row, :len(top)] = found[top] + 1
        weights[row, :len(top)] = tfidf[top]
    return ids, weights


def encode(frame: pd.DataFrame, specs: list[ColumnSpec], input_kind: str):
    """Model inputs for `frame`: a (n, k) float block, or a dict of one input per column group."""
    numeric = [s for s in specs if s.kind == "numeric"]
    others = [s for s in specs if s.kind != "numeric"]
    parts: dict[str, np.ndarray] = {}
    if numeric:
        parts["numeric"] = np.stack([pd.to_numeric(frame[s.name], errors="coerce").fillna(s.fill).to_numpy("float32")
                                     for s in numeric], axis=1)
    for spec in others:
        if spec.kind == "categorical":
            index = {v: i + 1 for i, v in enumerate(spec.vocabulary)}
            fill = spec.most_frequent if spec.missing == "most_frequent" else None
            parts[spec.input] = np.array(
                [[index.get(v if v is not None else fill, 0)] for v in category_strings(frame[spec.name])], "int32")
        elif spec.bag:
            parts[f"{spec.input}_ids"], parts[f"{spec.input}_weights"] = ngram_bags(frame[spec.name], spec)
        else:
            parts[spec.input] = text_ids(frame[spec.name], spec)
    if not others or (input_kind == "text" and len(parts) == 1):
        return next(iter(parts.values()))
    return parts


def text_ids(values, spec: ColumnSpec) -> np.ndarray:
    """Token ids, truncated or padded (with 0) to the spec's sequence length.

    An empty text becomes one unknown token: the model averages the unmasked word embeddings,
    and an all-padding row would make that average 0/0.
    """
    index = {t: i + 2 for i, t in enumerate(spec.vocabulary)}
    length = spec.sequence_length
    ids = np.zeros((len(values), length), dtype="int32")
    for row, value in enumerate(values):
        found = [index.get(t, UNKNOWN) for t in tokens(value)][:length] or [UNKNOWN]
        ids[row, : len(found)] = found
    return ids
