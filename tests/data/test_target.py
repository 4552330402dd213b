import numpy as np
import pandas as pd
import pytest

from gradstep.data.target import class_codes
from gradstep.errors import InputError


def test_class_codes_match_by_value_and_name_the_first_unknown_label():
    df = pd.DataFrame({"y": ["b", "A", "1.0"]})
    codes = class_codes(df, "y", ["A", "b", "1.0"], "plain", "f.csv")
    assert codes.dtype == np.int64 and codes.tolist() == [1, 0, 2]
    numbers = class_codes(pd.DataFrame({"y": ["1.0", "0"]}), "y", [0, 1], "plain", "f.csv")
    assert numbers.tolist() == [1, 0]
    bad = pd.DataFrame({"y": ["A", "zebra"]})
    with pytest.raises(InputError) as e:
        class_codes(bad, "y", ["A", "b"], "plain", "f.csv", "; is this the run's data?")
    assert "f.csv" in str(e.value)
    assert "column 'y': 'zebra' is not one of the run's classes (A, b)" in str(e.value)
    assert str(e.value).endswith("; is this the run's data?")
