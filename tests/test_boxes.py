"""iou_matrix on hand-computed boxes, pinning pycocotools' no-+1 pixel convention."""

from __future__ import annotations

import numpy as np
import pytest

from genie.eval.boxes import iou_matrix


def test_identical_and_disjoint_boxes():
    out = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30]])
    assert out.shape == (1, 2)
    assert out[0, 0] == pytest.approx(1.0)
    assert out[0, 1] == 0.0


def test_half_overlap_is_50_over_150():
    assert iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)


def test_widths_have_no_plus_one():
    # Intersection [1,1,2,2] = 1, union 4 + 4 - 1 = 7; the +1 convention would give 4 / 14.
    assert iou_matrix([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0] == pytest.approx(1 / 7)


def test_matrix_rows_are_a_and_columns_are_b():
    a = np.array([[0, 0, 10, 10], [0, 0, 5, 10]])
    b = [[0, 0, 5, 10], [100, 100, 110, 110], [0, 0, 10, 10]]
    expected = np.array([[0.5, 0.0, 1.0], [1.0, 0.0, 0.5]])
    np.testing.assert_allclose(iou_matrix(a, b), expected)


def test_empty_inputs_give_empty_matrices():
    assert iou_matrix([], [[0, 0, 1, 1], [0, 0, 2, 2]]).shape == (0, 2)
    assert iou_matrix([[0, 0, 1, 1]], []).shape == (1, 0)
    assert iou_matrix(np.zeros((0, 4)), []).shape == (0, 0)


@pytest.mark.parametrize("degenerate", [[0, 0, 0, 10], [3, 3, 3, 3], [10, 0, 0, 10]])
def test_zero_area_or_inverted_box_gives_zero_not_nan(degenerate):
    out = iou_matrix([degenerate], [degenerate, [0, 0, 10, 10]])
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out, [[0.0, 0.0]])


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        iou_matrix([[0, 0, 1]], [[0, 0, 1, 1]])
