"""Records flattened one way for CSV, the service and pandas: columns, rounding, a DataFrame in one call."""
import pytest

from csa_keras.inference.predictor import make_record
from csa_keras.inference.records import flat_columns, flat_row, records_frame, rounded_record

NAMES = ["anger", "happiness"]


def records():
    return [
        make_record("a.jpg", face=0, status="ok", crop="detected", box=[10, 20, 30, 30], label="happiness",
                    score=0.7000004, probabilities={"anger": 0.2999996, "happiness": 0.7000004}),
        make_record("b.jpg", status="no_face"),
        make_record("c.mp4", frame=7, time_s=0.28, face=1, status="ok", crop="detected", box=[1, 2, 3, 4],
                    label="anger", score=0.9, probabilities={"happiness": 0.1, "anger": 0.9}),
    ]


def test_rounding_keeps_six_decimals_and_leaves_the_record_alone():
    record = records()[0]
    rounded = rounded_record(record)
    assert rounded["score"] == 0.7 and rounded["probabilities"] == {"anger": 0.3, "happiness": 0.7}
    assert record["score"] == 0.7000004
    assert rounded_record(records()[1])["score"] is None


def test_a_flat_row_has_the_box_split_and_one_probability_per_class_in_order():
    assert flat_columns(NAMES) == ["source", "frame", "time_s", "face", "status", "crop", "x", "y", "w", "h",
                                   "label", "score", "p_anger", "p_happiness", "error"]
    assert flat_row(records()[2], NAMES) == ["c.mp4", 7, 0.28, 1, "ok", "detected", 1, 2, 3, 4, "anger", 0.9,
                                             0.9, 0.1, None]
    assert flat_row(records()[1], NAMES)[6:10] == [None] * 4


def test_records_become_a_dataframe_in_one_call():
    pd = pytest.importorskip("pandas")
    frame = records_frame(records())
    assert list(frame.columns) == flat_columns(NAMES)
    assert len(frame) == 3
    assert frame["x"].tolist()[0] == 10 and pd.isna(frame["x"][1]) and str(frame["x"].dtype) == "Int64"
    assert frame.loc[2, "p_anger"] == 0.9 and frame.loc[0, "p_happiness"] == 0.7
    assert frame.groupby("status").size().to_dict() == {"no_face": 1, "ok": 2}
