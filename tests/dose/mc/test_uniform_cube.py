"""Issue acceptance: uniform activity in a water cube, Monte Carlo vs kernel vs LED.

In the interior of a medium large compared with every range, a uniform activity gives the same
dose with any correct method: the energy emitted per gram (charged-particle and photon
equilibrium), which is what local deposition (LED, all classes local) computes. An 80 cm water
cube holds 94 % of the 177Lu photon energy within 40 cm of its centre (the project's photon point
kernel, infinite water), so the centre dose of the Monte Carlo (finite cube) lies 1.1 % below
LED — inside the issue's 2 % — and the kernel convolution (voxel S-values out to 40 cm) must sit
between them. Electrons are deposited locally in the Monte Carlo (exact for a uniform source).
"""

from __future__ import annotations

import numpy as np
import pytest

from theradose.dose import get_engine
from theradose.dose.mc import MonteCarloEngine, VoxelPhantom
from theradose.volume import Geometry, LabelMap, Volume


@pytest.mark.slow
def test_uniform_cube_mc_equals_kernel_and_led_within_2_percent():
    n = 100
    g = Geometry((n, n, n), (8.0, 8.0, 8.0))  # 80 cm water cube
    tia = Volume(np.ones(g.shape), g, unit="MBq*h")
    density = Volume(np.ones(g.shape), g, unit="g/cm3")
    lab = np.zeros(g.shape, dtype=np.int16)
    c = slice(n // 2 - 5, n // 2 + 5)  # central 8 cm cube
    lab[c, c, c] = 1
    centre = LabelMap(lab, g, names={1: "centre"})

    # photons local: the infinite-medium reference (the LED default convolves photons)
    led = get_engine("led", photons="local").compute(tia, density, "Lu-177",
                                                     labels=centre).voi[0]
    mc = MonteCarloEngine(n_histories=4_000_000, seed=7,
                          phantom=VoxelPhantom.uniform(g, "water", 1.0)).compute(
        tia, density, "Lu-177", labels=centre).voi[0]
    ker = get_engine("kernel", medium="water", vsv_options={"radius_mm": 400.0}).compute(
        tia, density, "Lu-177", labels=centre).voi[0]

    assert mc.sigma_gy / mc.mean_gy <= 0.005           # statistics <= 0.5 %
    assert mc.mean_gy == pytest.approx(led.mean_gy, rel=0.02)
    assert mc.mean_gy == pytest.approx(ker.mean_gy, rel=0.02)
    assert ker.mean_gy == pytest.approx(led.mean_gy, rel=0.02)
    # finite cube: no method may exceed the infinite-medium (LED) value beyond statistics
    assert mc.mean_gy <= led.mean_gy + 3 * mc.sigma_gy
    assert ker.mean_gy <= led.mean_gy * (1 + 1e-6)
