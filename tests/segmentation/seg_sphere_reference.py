"""Analytic blurred-sphere profile shared by the segmentation tests (independent reference)."""

from __future__ import annotations

import math

from scipy.special import erf


def blurred_ball(r: float, radius: float, sigma: float) -> float:
    """Uniform ball (value 1) convolved with an isotropic Gaussian, at distance r from its centre.

    Analytic: the radial integral of the 3-D Gaussian over the ball (e.g. Hoffman et al. 1979,
    doi:10.1097/00004728-197906000-00001; derivation by integrating the Gaussian over spherical
    shells).
    """
    s2 = math.sqrt(2.0) * sigma
    if r < 1e-9 * sigma:
        return erf(radius / s2) - math.sqrt(2 / math.pi) * radius / sigma * \
            math.exp(-radius**2 / (2 * sigma**2))
    a, b = (radius - r) / s2, (radius + r) / s2
    return 0.5 * (erf(a) + erf(b)) - sigma / (r * math.sqrt(2 * math.pi)) * \
        (math.exp(-a * a) - math.exp(-b * b))
