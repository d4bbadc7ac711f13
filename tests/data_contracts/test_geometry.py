import numpy as np
import pytest

from data_contracts.geometry import Geometry

EYE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def test_scan_position_in_the_scanned_box():
    g = Geometry((11, 21, 41), (2.0, 2.0, 5.0), (-40.0, -20.0, -1000.0), EYE)  # x 41, y 21, z 11 voxels
    lo, hi = g.bounds_mm()
    assert np.allclose(lo, (-40, -20, -1000)) and np.allclose(hi, (40, 20, -950))
    assert np.allclose(g.scan_position((0.0, 0.0, -975.0)), (0.5, 0.5, 0.5))
    assert np.allclose(g.scan_position((-40.0, 20.0, -950.0)), (0.0, 1.0, 1.0))
    assert np.allclose(g.scan_position((-100.0, 0.0, 0.0)), (0.0, 0.5, 1.0))  # outside: clipped


@pytest.mark.parametrize("flip", [(-1, 1, 1), (1, -1, 1), (1, 1, -1), (-1, -1, -1)])
def test_scan_position_ignores_axis_flips(flip):
    """NIfTI (RAS-stored) and DICOM (LPS) volumes of one patient give one position for one physical point."""
    g = Geometry((11, 21, 41), (2.0, 2.0, 5.0), (-40.0, -20.0, -1000.0), EYE)
    lo, hi = g.bounds_mm()
    origin = tuple(h if f < 0 else l for l, h, f in zip(lo, hi, flip))  # voxel 0 at the other end
    direction = tuple(float(v) for v in np.diag(flip).ravel())
    flipped = Geometry(g.shape, g.spacing, origin, direction)
    point = (12.5, -7.0, -960.0)
    assert np.allclose(flipped.scan_position(point), g.scan_position(point))
    assert np.allclose(flipped.bounds_mm()[0], lo) and np.allclose(flipped.bounds_mm()[1], hi)


def test_an_array_placed_on_a_grid_and_its_attributes_round_trip():
    import SimpleITK as sitk

    grid = Geometry((2, 3, 4), (0.8, 1.1, 2.5), (-120.0, 35.5, -900.0), (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    array = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    image = grid.image(array)
    assert Geometry.of(image) == grid
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), array)
    assert Geometry.from_attrs(grid.to_attrs()) == grid
    with pytest.raises(ValueError, match="shape"):
        grid.image(array.T)
