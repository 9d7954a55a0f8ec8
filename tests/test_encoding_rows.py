"""collector/stages/encoding.py `rows_of`: the encoder takes a read's new frames without a copy
when they follow each other, and the same frames either way."""

from __future__ import annotations

import numpy as np
import pytest

from collector.stages.encoding import rows_of


@pytest.mark.parametrize("rows", [[0, 1, 2], [3], [1, 2, 3, 4], [0, 2, 3], [2, 1], [4, 4]])
def test_rows_of_are_the_indexed_rows(rows):
    images = np.arange(5 * 4 * 6 * 3, dtype=np.uint8).reshape(5, 4, 6, 3)
    picked = np.array(rows, np.intp)
    got = rows_of(images, picked)
    np.testing.assert_array_equal(got, images[picked])
    consecutive = bool(np.all(np.diff(picked) == 1))
    assert np.shares_memory(got, images) == consecutive  # a view exactly when they follow
