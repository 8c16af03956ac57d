"""numpy metrics: conversion, area resize, MSE, IoU, filters, SSIM, Canny, edge L2."""

from __future__ import annotations

import numpy as np
import pytest
from derender.reward import edges, filters, image
from derender.reward.ssim import ssim

RNG = np.random.default_rng(1234)


def square(size: int = 64, lo: int = 20, hi: int = 44, value: float = 1.0) -> np.ndarray:
    img = np.zeros((size, size))
    img[lo:hi, lo:hi] = value
    return img


# -- conversion and resize ---------------------------------------------------------------
def test_as_float_scales_uint8_drops_alpha_and_rejects_bad_input() -> None:
    rgba = np.full((4, 4, 4), 255, dtype=np.uint8)
    assert image.as_float(rgba).shape == (4, 4, 3)
    assert image.as_float(rgba).max() == 1.0
    with pytest.raises(ValueError, match="shape"):
        image.as_float(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="int32"):
        image.as_float(np.zeros((4, 4, 3), dtype=np.int32))


def test_area_resize_matches_block_means_and_preserves_the_mean() -> None:
    img = RNG.random((128, 96, 3))
    out = image.resize(img, 32)
    block = img.reshape(32, 4, 32, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(out, block, atol=1e-12)
    odd = RNG.random((240, 320, 3))  # CLEVR's native frame: non-integer factors
    small = image.resize(odd, 64)
    assert small.shape == (64, 64, 3)
    assert small.mean() == pytest.approx(odd.mean(), abs=1e-12)
    batch = image.resize(np.stack([img, img[::-1]]), 32)
    np.testing.assert_allclose(batch[1], image.resize(img[::-1], 32), atol=1e-12)


def test_mse_and_iou_ranges_and_directions() -> None:
    a = RNG.random((2, 8, 8, 3))
    assert image.mse(a, a).tolist() == [0.0, 0.0]
    assert image.mse(np.zeros((8, 8, 3)), np.ones((8, 8, 3))) == 1.0
    m1, m2 = square(16, 2, 10) > 0, square(16, 6, 14) > 0
    assert image.iou(m1, m1) == 1.0
    assert image.iou(m1, m2) == pytest.approx(16 / (64 + 64 - 16))
    assert image.iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0


def test_foreground_from_background_difference_and_instance_masks() -> None:
    bg = np.full((16, 16, 3), 0.5)
    img = bg.copy()
    img[4:8, 4:8] = [0.8, 0.1, 0.1]
    img[0, 0] += 0.01  # render noise stays background
    fg = image.foreground(img, bg)
    assert fg.sum() == 16 and fg[4:8, 4:8].all()
    ids = np.zeros((16, 16), dtype=np.int32)
    ids[4:8, 4:8] = 3
    np.testing.assert_array_equal(image.mask_foreground(ids), fg)
    with pytest.raises(ValueError, match="shape"):
        image.foreground(img, bg[:8])


# -- filters ----------------------------------------------------------------------------
def test_gaussian_kernel_is_normalised_and_validated() -> None:
    k = filters.gaussian_kernel(1.5, 11)
    assert k.sum() == pytest.approx(1.0) and k.argmax() == 5
    assert k[0] == pytest.approx(k[-1])
    with pytest.raises(ValueError, match="odd"):
        filters.gaussian_kernel(1.5, 10)


def test_banded_correlation_equals_shifted_sums() -> None:
    x = RNG.random((3, 20, 23))
    k = filters.gaussian_kernel(1.0, 5)
    ref = sum(k[i] * x[:, i : 16 + i, :] for i in range(5))
    ref = sum(k[i] * ref[:, :, i : 19 + i] for i in range(5))
    np.testing.assert_allclose(filters.correlate_valid(x, k), ref, atol=1e-12)
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2)], mode="edge")
    np.testing.assert_allclose(
        filters.correlate_same(x, k), filters.correlate_valid(padded, k), atol=1e-12
    )


def test_dilate3_grows_a_pixel_to_a_3x3_block() -> None:
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    assert filters.dilate3(m).sum() == 9 and filters.dilate3(m)[1:4, 1:4].all()


@pytest.mark.parametrize("shape", [(64, 64), (3, 17, 9), (1, 1), (2, 1, 5), (6, 1)])
def test_dilate3_equals_the_or_of_all_nine_shifts(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    for density in (0.02, 0.2, 0.6):
        m = rng.random(shape) < density
        padded = np.pad(m, [(0, 0)] * (m.ndim - 2) + [(1, 1), (1, 1)])
        h, w = shape[-2:]
        want = np.zeros(shape, bool)
        for dy in range(3):
            for dx in range(3):
                want |= padded[..., dy : dy + h, dx : dx + w]
        got = filters.dilate3(m.astype(np.uint8))  # any truthy dtype
        assert got.dtype == bool and np.array_equal(got, want)
        assert not np.shares_memory(got, m)


# -- SSIM -------------------------------------------------------------------------------
def _ssim_at(a: np.ndarray, b: np.ndarray, y: int, x: int) -> float:
    """One SSIM-map value computed the slow, obvious way (an independent reference)."""
    k = filters.gaussian_kernel(1.5, 11)
    w = np.outer(k, k)
    pa, pb = a[y : y + 11, x : x + 11], b[y : y + 11, x : x + 11]
    ma, mb = (w * pa).sum(), (w * pb).sum()
    va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
    cov = (w * (pa - ma) * (pb - mb)).sum()
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))


def test_ssim_matches_a_direct_windowed_reference() -> None:
    a, b = RNG.random((16, 16)), RNG.random((16, 16))
    ref = np.mean([_ssim_at(a, b, y, x) for y in range(6) for x in range(6)])
    assert ssim(a, b) == pytest.approx(ref, abs=1e-12)


def test_ssim_is_one_for_equal_images_and_falls_with_noise() -> None:
    a = RNG.random((2, 32, 32))
    assert ssim(a, a) == pytest.approx([1.0, 1.0])
    mild = ssim(a[0], np.clip(a[0] + 0.05 * RNG.standard_normal((32, 32)), 0, 1))
    strong = ssim(a[0], np.clip(a[0] + 0.3 * RNG.standard_normal((32, 32)), 0, 1))
    assert 1.0 > mild > strong
    assert ssim(a[0], a[1]) == pytest.approx(ssim(a[1], a[0]))


# -- Canny and edge L2 --------------------------------------------------------------------
def test_canny_finds_the_thin_outline_of_a_square_and_nothing_on_flat_ground() -> None:
    e = edges.canny(square())
    assert not edges.canny(np.full((64, 64), 0.4)).any()
    assert not e[30:34, 30:34].any() and not e[:10].any()  # inside and far outside
    for row in (26, 32, 38):  # left and right sides: exactly one edge pixel each
        assert e[row, :32].sum() == 1 and e[row, 32:].sum() == 1
    cols = np.nonzero(e[32])[0]
    assert abs(cols[0] - 19.5) <= 1 and abs(cols[1] - 43.5) <= 1


def test_canny_hysteresis_keeps_weak_edges_only_when_connected() -> None:
    img = np.zeros((64, 64))
    img[:, 32:] = np.linspace(0.35, 0.07, 64)[:, None]  # one step edge, strong to weak
    img[10:20, 5:15] = 0.07  # an isolated weak square
    e = edges.canny(img, low=0.03, high=0.2)
    assert e[:, 30:34].any(axis=1).all()  # the whole step survives through its weak end
    assert not e[5:25, 0:20].any()  # the isolated weak outline does not
    assert edges.canny(img, low=0.2, high=0.2)[:, 30:34].any(axis=1).sum() < 64


def test_edge_l2_is_zero_for_equal_small_for_a_nudge_and_large_for_disjoint() -> None:
    a = square()
    assert edges.edge_l2(a, a) == 0.0
    nudged = np.roll(a, 1, axis=1)
    far = square(lo=2, hi=12)
    assert 0.0 < edges.edge_l2(a, nudged) < edges.edge_l2(a, far) <= 1.0
    assert edges.edge_l2(a, far) > 0.9
    assert edges.edge_l2(np.zeros((32, 32)), np.zeros((32, 32))) == 0.0


def test_soft_edge_cache_returns_what_soft_edges_computes_and_stays_bounded() -> None:
    cache = edges.SoftEdgeCache(capacity=2)
    a, b, c = square(), square(lo=2, hi=12), np.roll(square(), 3, axis=0)
    got = cache.get(["a", "b"], np.stack([a, b]))
    assert np.array_equal(got, edges.soft_edges(np.stack([a, b])))
    # a key already cached is not recomputed: a different image under it is ignored
    again = cache.get(["b", "a"], np.stack([c, c]))
    assert np.array_equal(again, got[::-1])
    assert len(cache) == 2
    cache.get(["c"], c[None])  # least recently used ("b") goes
    assert len(cache) == 2
    assert np.array_equal(cache.get(["b"], c[None])[0], edges.soft_edges(c))
    cache.get(["c"], c[None])[0][:] = 1.0  # the caller's copy: the cached map is kept
    assert np.array_equal(cache.get(["c"], c[None])[0], edges.soft_edges(c))
    with pytest.raises(ValueError, match="2 keys for 1 images"):
        cache.get(["a", "b"], a[None])


def test_prepare_resamples_like_resize_to_float32_precision() -> None:
    img = (RNG.random((96, 128, 4)) * 255).astype(np.uint8)
    exact = image.resize(image.as_float(img), 64)
    fast = image.prepare(img, 64)
    assert fast.dtype == np.float64 and fast.shape == (64, 64, 3)
    np.testing.assert_allclose(fast, exact, atol=1e-6)
    np.testing.assert_array_equal(image.prepare(img, None), image.as_float(img))
