import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import DataError
from pipeline.predict import predict_file
from tests.conftest import REPO


def test_predict_on_csv_rows(breast_cancer_run, tmp_path):
    _, paths, _ = breast_cancer_run
    frame = predict_file(paths.export / "model.keras", paths.export / "sample_input.csv")
    assert list(frame.columns) == ["prediction", "prob_malignant", "prob_benign"]
    assert np.allclose(frame[["prob_malignant", "prob_benign"]].sum(axis=1), 1, atol=1e-5)
    assert set(frame["prediction"]) <= {"malignant", "benign"}


def test_predict_on_npy_array(breast_cancer_run, tmp_path):
    _, paths, _ = breast_cancer_run
    x = np.load(paths.prepared / "data.npz")["x"][:7]
    np.save(tmp_path / "x.npy", x)
    assert len(predict_file(paths.export / "model.keras", tmp_path / "x.npy")) == 7


def test_mismatched_columns_are_named(breast_cancer_run, tmp_path):
    _, paths, _ = breast_cancer_run
    rows = pd.read_csv(paths.export / "sample_input.csv").drop(columns=["mean radius"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(DataError, match=r"lacks column\(s\) \['mean radius'\]"):
        predict_file(paths.export / "model.keras", tmp_path / "rows.csv")


def test_wrong_array_shape(breast_cancer_run, tmp_path):
    _, paths, _ = breast_cancer_run
    np.save(tmp_path / "x.npy", np.zeros((2, 29), "float32"))
    with pytest.raises(DataError, match=r"holds arrays of shape \(29,\); the model expects \(30,\)"):
        predict_file(paths.export / "model.keras", tmp_path / "x.npy")


def test_predict_command_writes_csv(breast_cancer_run, tmp_path):
    _, paths, _ = breast_cancer_run
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "predict", "--model", str(paths.export / "model.keras"),
         "--input", str(paths.export / "sample_input.csv"), "--output", str(tmp_path / "out.csv")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5
