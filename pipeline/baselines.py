"""Plain baselines on the pipeline's own split: is the network worth it?

The cheap models a practitioner fits first, for the input kind: always predicting the training
prior (or mean); a linear model and gradient boosting for tables; TF-IDF word 1-2-grams with a
linear model for text; a linear model on the flattened values of small images and sequences.
Each is fitted on the training rows only and scored on validation and test like the network.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.images import ImageFiles
from pipeline.prepared import Splits
from pipeline.schema import Schema

FLAT_VALUES_LIMIT = 20_000  # flattened values per row a linear baseline still fits in seconds


@dataclass
class Entry:
    """One leaderboard row: a model, its scores, what it cost to fit and to run, and its size."""

    name: str
    kind: str  # "network" or "baseline"
    validation: float | None
    test: float
    fit_seconds: float | None
    predict_ms_per_row: float
    size_kb: float
    note: str = ""


@dataclass
class Baseline:
    name: str
    make: Callable[[], object]  # a fresh scikit-learn estimator
    features: Callable[[object], object]  # raw rows -> what the estimator reads


def _column_kinds(schema: Schema) -> dict[str, list[str]]:
    kinds = {"numeric": [], "categorical": [], "text": []}
    for column in schema.columns or ():
        kinds[column.kind].append(column.name)
    if not schema.columns:
        kinds["numeric"] = list(schema.features)
    return kinds


def _table_baselines(schema: Schema, regression: bool) -> list[Baseline]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    kinds = _column_kinds(schema)

    def frame(raw) -> pd.DataFrame:
        table = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(np.asarray(raw), columns=schema.features)
        return table.astype({name: "float64" for name in kinds["numeric"]})

    def linear():
        parts = [("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), kinds["numeric"]),
                 ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                               OneHotEncoder(handle_unknown="ignore")), kinds["categorical"])]
        parts += [(f"text {name}", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), name)
                  for name in kinds["text"]]
        return make_pipeline(ColumnTransformer([p for p in parts if len(p[2])]),
                             Ridge() if regression else LogisticRegression(max_iter=3000))

    def for_linear(raw):
        table = frame(raw)
        categories = {name: table[name].astype(object).where(table[name].notna(), "missing")
                      for name in kinds["categorical"]}
        return table.assign(**categories, **{name: table[name].fillna("").astype(str) for name in kinds["text"]})

    def boosting():
        kind = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        return kind(categorical_features="from_dtype", random_state=0)

    def for_boosting(raw):  # text columns left out: boosting reads numbers and categories
        table = frame(raw)[kinds["numeric"] + kinds["categorical"]]
        return table.astype({name: "category" for name in kinds["categorical"]})

    return [Baseline("linear", linear, for_linear), Baseline("gradient boosting", boosting, for_boosting)]


def _text_baselines(schema: Schema, regression: bool) -> list[Baseline]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline

    column = schema.features[0]

    def tfidf():
        return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                             Ridge() if regression else LogisticRegression(max_iter=3000))

    def texts(raw):
        return raw[column].fillna("").astype(str) if isinstance(raw, pd.DataFrame) else np.asarray(raw).ravel()

    return [Baseline("tf-idf 1-2-grams + linear", tfidf, texts)]


def _flat_baselines(schema: Schema, regression: bool) -> list[Baseline]:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if int(np.prod(schema.input_shape)) > FLAT_VALUES_LIMIT:
        return []

    def linear():
        return make_pipeline(StandardScaler(), Ridge() if regression else LogisticRegression(max_iter=2000))

    def flat(raw):
        return np.asarray(raw, dtype="float32").reshape(len(raw), -1)

    return [Baseline("linear on the flattened values", linear, flat)]


def baselines_for(schema: Schema) -> list[Baseline]:
    """The baselines for the schema's task and input kind (none for multilabel tasks)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    task = schema.task
    if not (task.predicts_value or task.single_label):
        return []
    regression = task.predicts_value
    prior = Baseline("always the training mean" if regression else "always the training prior",
                     (lambda: DummyRegressor()) if regression else (lambda: DummyClassifier(strategy="prior")),
                     lambda raw: np.zeros((len(raw), 1)))
    kinds = {"tabular": _table_baselines, "text": _text_baselines, "image": _flat_baselines,
             "sequence": _flat_baselines}
    return [prior, *kinds.get(schema.input_kind, lambda *_: [])(schema, regression)]


def outputs(estimator, x, schema: Schema) -> np.ndarray:
    """Predictions in the network's output layout: values, P(positive) for binary, else class probabilities."""
    if schema.task.predicts_value:
        return np.asarray(estimator.predict(x), dtype="float64")
    probs = np.zeros((len(x), len(schema.classes)))
    probs[:, estimator.classes_] = estimator.predict_proba(x)  # a class missing from train keeps 0
    return probs[:, 1] if schema.n_outputs == 1 else probs


def fit_baselines(schema: Schema, splits: Splits, metric: str) -> list[Entry]:
    """Each baseline fitted on the training rows and scored on validation and test; skipped
    (with no row) when its input is not in memory (image folders)."""
    if any(isinstance(rows.raw, ImageFiles) for rows in (splits.train, splits.test)):
        chosen = [b for b in baselines_for(schema) if b.name.startswith("always")]
    else:
        chosen = baselines_for(schema)
    entries = []
    for baseline in chosen:
        estimator = baseline.make()
        started = time.perf_counter()
        try:
            estimator.fit(baseline.features(splits.train.raw), splits.train.y)
        except ValueError as error:  # e.g. a category with more values than boosting takes
            print(f"validate: baseline {baseline.name} left out: {str(error).splitlines()[0]}")
            continue
        fit_seconds = time.perf_counter() - started
        validation = schema.task.score(metric, splits.validation.y,
                                       outputs(estimator, baseline.features(splits.validation.raw), schema))
        started = time.perf_counter()
        test_outputs = outputs(estimator, baseline.features(splits.test.raw), schema)
        per_row = (time.perf_counter() - started) * 1000 / max(1, len(splits.test))
        entries.append(Entry(baseline.name, "baseline", validation, schema.task.score(metric, splits.test.y,
                                                                                      test_outputs),
                             round(fit_seconds, 3), round(per_row, 4),
                             round(len(pickle.dumps(estimator)) / 1024, 1), "fitted on the training rows"))
    return entries
