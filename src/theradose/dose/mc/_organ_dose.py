"""Organ absorbed doses from organ TIAs with the MIRD schema, ``D(t) = Σ_s Ã_s S(t ← s)``.

The S-values come from the packaged tables of the reference phantoms
(:func:`theradose.dose.mc._svalues.load_svalue_table`), optionally rescaled to the patient's organ
masses (:meth:`SValueTable.scaled`). Activity not assigned to a source organ can be given as
``"remainder"``: the total body minus the named source organs, uniform per gram
(:meth:`SValueTable.remainder_column`, Cloutier et al. 1973).

References
----------
Bolch WE, Eckerman KF, Sgouros G, Thomas SR. MIRD Pamphlet No. 21. J Nucl Med 2009;50(3):477-484.
doi:10.2967/jnumed.108.056036.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from theradose import __version__
from theradose.dose.mc._svalues import (
    REMAINDER,
    SVALUE_UNIT,
    TOTAL_BODY,
    SValueTable,
    load_svalue_table,
)
from theradose.errors import InputError
from theradose.nuclides import Nuclide, get_nuclide
from theradose.units import convert

__all__ = ["OrganDoseResult", "organ_doses"]


@dataclass(frozen=True, eq=False)
class OrganDoseResult:
    """Mean absorbed dose per target organ from organ TIAs (MIRD schema).

    Attributes
    ----------
    nuclide, phantom : str
        Nuclide and S-value table (``"<phantom> scaled"`` after mass scaling).
    targets : tuple of str
        Target organs (all organs of the table).
    dose_gy, sigma_gy : (T,) ndarray
        Mean absorbed dose and its standard deviation (S-value statistics and TIA σ), Gy.
    mass_g : (T,) ndarray
        Target masses used, g.
    contributions_gy : (T, S) ndarray
        Dose to each target from each source in :attr:`sources`, Gy.
    sources : tuple of str
        Sources with a TIA (``"remainder"`` included when given).
    tias_mbq_h : mapping of str to float
        The TIAs used, MBq·h.
    provenance : mapping
        Table provenance, mass scaling, remainder mass, theradose version.
    """

    nuclide: str
    phantom: str
    targets: tuple[str, ...]
    dose_gy: np.ndarray
    sigma_gy: np.ndarray
    mass_g: np.ndarray
    contributions_gy: np.ndarray
    sources: tuple[str, ...]
    tias_mbq_h: Mapping[str, float]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def dose(self, target: str) -> tuple[float, float]:
        """``(dose, σ)`` of one target, Gy."""
        if target not in self.targets:
            raise InputError(f"unknown target {target!r}; known: {', '.join(self.targets)}",
                             field="target")
        i = self.targets.index(target)
        return float(self.dose_gy[i]), float(self.sigma_gy[i])

    def table(self) -> dict[str, list]:
        """Column dict: ``target``, ``dose_gy``, ``sigma_gy``, ``mass_g``."""
        return {"target": list(self.targets), "dose_gy": self.dose_gy.tolist(),
                "sigma_gy": self.sigma_gy.tolist(), "mass_g": self.mass_g.tolist()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {"nuclide": self.nuclide, "phantom": self.phantom,
                "tias_mbq_h": dict(self.tias_mbq_h),
                "organs": [{"target": t, "dose_gy": float(d), "sigma_gy": float(s),
                            "mass_g": float(m)}
                           for t, d, s, m in zip(self.targets, self.dose_gy, self.sigma_gy,
                                                 self.mass_g, strict=True)],
                "provenance": dict(self.provenance)}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), **kwargs)


def _value(v: Any, name: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and x >= 0):
        raise InputError(f"expected a finite number >= 0 (MBq*h), got {v!r}", field=name)
    return x


def organ_doses(
    tias_mbq_h: Mapping[str, float],
    nuclide: str | Nuclide,
    phantom: str = "adult_male",
    masses_g: Mapping[str, float] | None = None,
    tia_sigma: Mapping[str, float] | None = None,
    *,
    chain: bool = False,
    table: SValueTable | None = None,
    data_dir: str | Path | None = None,
) -> OrganDoseResult:
    """Organ absorbed doses ``D(t) = Σ_s Ã_s S(t ← s)`` with their σ.

    Parameters
    ----------
    tias_mbq_h : mapping of str to float
        TIA per source organ, MBq·h (organs of the table; ``"remainder"`` for the rest of the
        body, total body minus the named organs; or ``"total_body"`` for a uniform whole-body
        component, not together with ``"remainder"``).
    nuclide : str or Nuclide
        Parent nuclide of the S-value table.
    phantom : {"adult_male", "adult_female"}
        Reference phantom.
    masses_g : mapping of str to float, optional
        Patient organ masses, g: the table is rescaled (:meth:`SValueTable.scaled`) first.
    tia_sigma : mapping of str to float, optional
        Standard deviation of each TIA, MBq·h (keys among ``tias_mbq_h``).
    chain : bool
        Use the table with progeny in equilibrium.
    table : SValueTable, optional
        A table to use instead of the packaged one (``nuclide`` must match).
    data_dir : str or Path, optional
        Folder of tables (see :func:`load_svalue_table`).

    Returns
    -------
    OrganDoseResult
        Dose (Gy) ± σ per target organ. ``σ² = Σ_s (Ã_s σ_S)² + (S σ_Ã_s)²`` (sources
        independent; the remainder's σ_S includes that of the subtracted organs).

    Raises
    ------
    InputError
        Empty or non-mapping TIAs, unknown organ, negative or non-finite TIA or σ, a σ for an
        organ without a TIA, ``remainder`` together with ``total_body``, a table of another
        nuclide, invalid masses.

    Examples
    --------
    >>> res = organ_doses({"kidneys": 100.0, "remainder": 2000.0}, "Lu-177")  # doctest: +SKIP
    >>> res.dose("kidneys")  # doctest: +SKIP
    """
    if not isinstance(tias_mbq_h, Mapping) or not tias_mbq_h:
        raise InputError(f"expected a non-empty mapping organ -> TIA (MBq*h), got "
                         f"{tias_mbq_h!r}", field="tias_mbq_h")
    if table is None:
        tab = load_svalue_table(nuclide, phantom, chain=chain, data_dir=data_dir)
    else:
        if not isinstance(table, SValueTable):
            raise InputError(f"expected an SValueTable, got {type(table).__name__}",
                             field="table")
        tab = table
        name = nuclide.name if isinstance(nuclide, Nuclide) else str(nuclide)
        if get_nuclide(name).name != tab.nuclide:
            raise InputError(f"table is for {tab.nuclide}, got nuclide {name!r}",
                             field="table")
    if masses_g:
        tab = tab.scaled(masses_g)
    tias = {str(k): _value(v, f"tias_mbq_h[{k!r}]") for k, v in tias_mbq_h.items()}
    if REMAINDER in tias and TOTAL_BODY in tias:
        raise InputError("give either 'remainder' or 'total_body', not both (the remainder "
                         "already is the total body minus the source organs)",
                         field="tias_mbq_h")
    sig_in = dict(tia_sigma or {})
    for k in sig_in:
        if k not in tias:
            raise InputError(f"sigma for {k!r} but no TIA for it; TIAs given: "
                             f"{', '.join(tias)}", field="tia_sigma")
    sigmas = {k: _value(v, f"tia_sigma[{k!r}]") for k, v in sig_in.items()}

    organ_sources = [k for k in tias if k != REMAINDER]
    cols, col_sig = [], []
    for k in organ_sources:
        j = tab.index(k, field="tias_mbq_h")
        cols.append(tab.s_total[:, j])
        col_sig.append(tab.sigma_total[:, j])
    remainder_mass = None
    if REMAINDER in tias:
        s_rb, sig_rb, remainder_mass = tab.remainder_column(organ_sources)
        cols.append(s_rb)
        col_sig.append(sig_rb)
    sources = tuple(organ_sources + ([REMAINDER] if REMAINDER in tias else []))
    s_mat = np.stack(cols, axis=1)                         # (T, S) mGy/(MBq*s)
    s_sig = np.stack(col_sig, axis=1)
    a = np.array([tias[k] for k in sources])               # MBq*h
    a_sig = np.array([sigmas.get(k, 0.0) for k in sources])
    a_s = convert(a, "MBq*h", "MBq*s")
    a_sig_s = convert(a_sig, "MBq*h", "MBq*s")
    contrib = convert(s_mat * a_s[None, :], "mGy", "Gy")
    var = (s_sig * a_s[None, :]) ** 2 + (s_mat * a_sig_s[None, :]) ** 2
    sigma = convert(np.sqrt(var.sum(axis=1)), "mGy", "Gy")
    prov = {
        "method": "MIRD schema D = sum_s TIA_s S(t<-s) (Bolch et al. 2009, MIRD Pamphlet 21)",
        "svalue_unit": SVALUE_UNIT,
        "svalue_table": dict(tab.provenance),
        "remainder": None if remainder_mass is None else {
            "mass_g": remainder_mass,
            "method": "S(t<-RB) = [m_TB S(t<-TB) - sum_s m_s S(t<-s)] / m_RB (Cloutier 1973)"},
        "theradose_version": __version__,
    }
    return OrganDoseResult(
        nuclide=tab.nuclide, phantom=tab.phantom, targets=tab.organs,
        dose_gy=contrib.sum(axis=1), sigma_gy=sigma,
        mass_g=np.array([tab.masses_g[o] for o in tab.organs]), contributions_gy=contrib,
        sources=sources, tias_mbq_h={k: tias[k] for k in sources}, provenance=prov)
