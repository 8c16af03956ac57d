"""SSIM (Wang, Bovik, Sheikh & Simoncelli 2004) on luminance, in numpy.

Computed on Rec. 601 luma (not per channel): colour errors are already charged by MSE and
LPIPS, and luma SSIM is what Wang et al.'s reference code and most SVG/RL papers report.
Gaussian window σ = 1.5 with 11 taps, K1 = 0.01, K2 = 0.03, dynamic range L = 1, 'valid'
filtering (no padding), mean over the SSIM map. Range [-1, 1]; 1 only for equal images.
"""

from __future__ import annotations

import numpy as np

from .filters import correlate_valid, gaussian_kernel

SIGMA = 1.5
TAPS = 11
K1, K2 = 0.01, 0.03


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean SSIM of two (..., H, W) luminance stacks in 0..1 (H, W >= 11)."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal shapes, got {a.shape} vs {b.shape}")
    k = gaussian_kernel(SIGMA, TAPS)
    c1, c2 = K1**2, K2**2
    mu_a, mu_b = correlate_valid(a, k), correlate_valid(b, k)
    # Filter the three second-moment images in one call rather than three.
    moments = correlate_valid(np.stack([a * a, b * b, a * b]), k)
    var_a = moments[0] - mu_a * mu_a
    var_b = moments[1] - mu_b * mu_b
    cov = moments[2] - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return np.mean(num / den, axis=(-2, -1))
