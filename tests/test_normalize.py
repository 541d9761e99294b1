"""normalize_frame: the exact stretch rule, dtype independence, non-finite and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cathtrack.data.normalize import normalize_frame, resize_frame


def test_exact_values_on_a_ramp():
    # 201 pixels 0..200: n-1 = 200, lo rank = 200*5//1000 = 1, hi rank = ceil(200*0.995) = 199.
    ramp = np.arange(201, dtype=np.uint8).reshape(1, 201)
    out = normalize_frame(ramp)
    expected = np.clip((np.arange(201, dtype=np.float32) - 1) / np.float32(198), 0, 1)
    assert out.dtype == np.float32 and out.shape == (1, 201)
    np.testing.assert_array_equal(out[0], expected)
    assert out[0, 0] == 0 and out[0, 1] == 0 and out[0, 199] == 1 and out[0, 200] == 1


def test_rank_rounding_uses_integer_arithmetic():
    # n-1 = 200 gives 0.995*200 = 199.00000000000003 in floating point: ceil must still be 199.
    values = np.arange(201, dtype=np.float64).reshape(3, 67) * 10.0
    out = normalize_frame(values)
    assert out.reshape(-1)[199] == 1.0
    assert out.reshape(-1)[198] == pytest.approx(197 / 198)


def test_outliers_do_not_steal_the_contrast():
    image = np.full((100, 100), 1000, np.uint16)
    image[:50] = 2000
    image[0, :20] = 65535  # 20 hot pixels, < 0.5 %
    image[99, :20] = 0  # 20 dead pixels
    out = normalize_frame(image)
    assert out[60, 0] == 0.0 and out[10, 0] == 1.0
    assert out[0, 0] == 1.0 and out[99, 0] == 0.0


@pytest.mark.parametrize("shape", [(37, 53), (256, 256)])
def test_same_result_for_uint8_uint16_int_and_float_storage(shape):
    rng = np.random.default_rng(1)
    gray8 = rng.integers(0, 256, shape).astype(np.uint8)
    reference = normalize_frame(gray8)
    np.testing.assert_array_equal(normalize_frame(gray8.astype(np.uint16) * 257), reference)
    np.testing.assert_array_equal(normalize_frame(gray8.astype(np.int16) - 128), reference)
    np.testing.assert_array_equal(normalize_frame(gray8.astype(np.int32) * 1000 - 7), reference)
    np.testing.assert_allclose(normalize_frame(gray8 / np.float32(255)), reference, atol=1e-6)
    np.testing.assert_allclose(normalize_frame(gray8 / 255.0), reference, atol=1e-6)
    np.testing.assert_array_equal(normalize_frame(gray8[:, :, None]), reference)


def test_colour_is_bgr_converted_by_opencv():
    blue = np.zeros((10, 10, 3), np.uint8)
    blue[:5, :, 0] = 255  # top half pure blue: gray 0.114 * 255 = 29
    red = blue[:, :, ::-1].copy()  # top half pure red: gray 0.299 * 255 = 76
    blue[5:] = red[5:] = 255  # bottom half white
    assert normalize_frame(blue)[0, 0] == 0 and normalize_frame(red)[0, 0] == 0
    bgra = np.dstack([blue, np.zeros((10, 10), np.uint8)])
    np.testing.assert_array_equal(normalize_frame(bgra), normalize_frame(blue))
    # Three equal channels are the gray image itself, in any dtype.
    gray = np.arange(100, dtype=np.uint16).reshape(10, 10) * 300
    np.testing.assert_array_equal(normalize_frame(np.dstack([gray] * 3)), normalize_frame(gray))
    gray_i32 = gray.astype(np.int32)
    np.testing.assert_allclose(
        normalize_frame(np.dstack([gray_i32] * 3)), normalize_frame(gray), atol=1e-6
    )


def test_non_finite_pixels_become_zero_and_do_not_count():
    image = np.tile(np.arange(10, dtype=np.float32), (10, 1))
    image[0, 0], image[0, 1], image[0, 2] = np.nan, np.inf, -np.inf
    out = normalize_frame(image)
    assert out[0, 0] == out[0, 1] == out[0, 2] == 0.0
    assert np.isfinite(out).all()
    # 97 finite values: lo = rank 0 (value 0), hi = rank 96 (value 9); 9 -> 1, 3 -> 1/3.
    assert out[5, 9] == 1.0 and out[5, 3] == pytest.approx(1 / 3)
    assert not normalize_frame(np.full((4, 4), np.nan)).any()


def test_constant_image_is_mid_gray():
    np.testing.assert_array_equal(normalize_frame(np.full((3, 5), 7, np.uint16)), 0.5)
    np.testing.assert_array_equal(normalize_frame(np.full((3, 5), -2.5)), 0.5)
    # Almost constant: the percentiles coincide, the rare outliers still show as black/white.
    image = np.full((100, 100), 100, np.uint8)
    image[0, 0], image[0, 1] = 0, 255
    out = normalize_frame(image)
    assert out[0, 0] == 0.0 and out[0, 1] == 1.0 and out[50, 50] == 0.5


def test_normalisation_is_idempotent():
    image = np.random.default_rng(2).normal(100, 30, (64, 64)).astype(np.float32)
    once = normalize_frame(image)
    np.testing.assert_array_equal(normalize_frame(once), once)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 5), np.uint8),
        np.zeros(7, np.uint8),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((2, 2, 2, 2)),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_shape(image):
    with pytest.raises(ValueError, match=str(image.shape).replace("(", r"\(").replace(")", r"\)")):
        normalize_frame(image)


def test_bad_dtypes_raise_type_error():
    for image in (np.zeros((4, 4), bool), np.zeros((4, 4), np.int64), np.zeros((4, 4), complex)):
        with pytest.raises(TypeError, match="dtype"):
            normalize_frame(image)
    with pytest.raises(TypeError):
        normalize_frame([[1, 2], [3, 4]])


def test_resize_frame_shrinks_with_antialiasing_and_enlarges_linearly():
    # A one-pixel wire shrunk 4x keeps its weight wherever it lies (the antialiasing filter);
    # plain bilinear sampling would drop wires that fall between its sample positions.
    for column in range(8, 56):
        wire = np.zeros((64, 64), np.float32)
        wire[:, column] = 1.0
        row = resize_frame(wire, 16)[8]
        assert row.sum() * 4 == pytest.approx(1.0, abs=1e-5)
        assert row.max() >= 0.15
    small = np.array([[0, 1]], np.float32).repeat(2, axis=0)
    np.testing.assert_allclose(resize_frame(small, 4), [[0, 0.25, 0.75, 1]] * 4)  # bilinear
    checker = (np.indices((8, 8)).sum(axis=0) % 2).astype(np.float32)
    np.testing.assert_array_equal(resize_frame(checker, 8), checker)  # same size: unchanged
    with pytest.raises(ValueError, match="shape"):
        resize_frame(np.zeros((2, 2, 3), np.float32), 4)
