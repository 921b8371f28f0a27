"""Organ S-values (MIRD schema) of the reference virtual phantoms.

``S(t ← s)`` is the mean absorbed dose in target organ ``t`` per decay in source organ ``s``,
stored in mGy/(MBq·s) as the sum of three parts:

* **electrons** (β, internal conversion, Auger) and **alphas** (with recoils): absorbed where they
  are emitted, so ``S_e(s ← s) = Δ_e / m_s`` and nothing reaches other organs, with two documented
  exceptions: the total body (``S_e(t ← TB) = S_e(TB ← s) = Δ_e / m_TB``, local deposition of a
  uniform source) and the walled organs of :data:`WALL_CONTENT` (ICRP-30 convention: the wall
  receives half the equilibrium dose of its contents, ``S_e(wall ← content) = ½ Δ_e / m_content``);
* **photons** (γ, X, annihilation): Monte Carlo transport in the voxelised phantom with a source
  uniform per gram in the source organ (:mod:`scripts/generate_svalues.py` via
  :func:`compute_svalue_table`), with their statistical σ.

Tables are generated data in ``theradose/data/svalues/<phantom>_<nuclide>[_chain].json``; see
``docs/dose-organ-svalues.md`` for the organ list, masses, mass scaling and validation.

References
----------
Bolch WE, Eckerman KF, Sgouros G, Thomas SR. MIRD Pamphlet No. 21: a generalized schema for
radiopharmaceutical dosimetry. J Nucl Med 2009;50(3):477-484. doi:10.2967/jnumed.108.056036.

ICRP Publication 30, Part 1. Ann ICRP 1979;2(3-4) (walled organs: dose at the contents' surface).
doi:10.1016/0146-6453(79)90123-4.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from theradose.dose._point_kernel import KEV_TO_J
from theradose.errors import InputError, UnreadableFileError
from theradose.io._outputs import atomic_path
from theradose.nuclides import Nuclide, get_nuclide

__all__ = [
    "KEV_PER_G_TO_MGY_PER_MBQ_S",
    "ORGANS",
    "PHANTOMS",
    "REMAINDER",
    "SCHEMA",
    "SVALUE_UNIT",
    "TOTAL_BODY",
    "WALL_CONTENT",
    "OrganDef",
    "SValueTable",
    "available_svalue_tables",
    "load_svalue_table",
    "read_svalue_table",
    "svalue",
    "svalue_table_path",
]

SVALUE_UNIT = "mGy/(MBq*s)"
SCHEMA = "theradose.svalues/1"
PHANTOMS: tuple[str, ...] = ("adult_male", "adult_female")
TOTAL_BODY = "total_body"
REMAINDER = "remainder"

#: keV per decay and g -> mGy/(MBq*s): J/keV * 1e6 decays/(MBq*s) * 1e3 mGy/Gy / 1e-3 kg/g.
KEV_PER_G_TO_MGY_PER_MBQ_S = KEV_TO_J * 1e12


@dataclass(frozen=True)
class OrganDef:
    """A source/target organ of the S-value tables.

    Attributes
    ----------
    name : str
        Organ name in the tables.
    regions : tuple of str
        Fine regions or groups of :class:`theradose.phantoms.Anatomy` that make up the organ
        (``("*",)``: every body voxel).
    mass_key : str
        Key of :attr:`Anatomy.masses_g` giving the organ mass (g) used for the electron/alpha
        self-dose and reported as the organ mass.
    sexes : tuple of str
        Phantoms that have the organ.
    note : str
        What the organ stands for, when it is a proxy.
    """

    name: str
    regions: tuple[str, ...]
    mass_key: str
    sexes: tuple[str, ...] = ("male", "female")
    note: str = ""


_BOTH = ("male", "female")
#: Sources = targets of the tables (square matrices), in table order.
ORGANS: tuple[OrganDef, ...] = (
    OrganDef("kidneys", ("kidney_left", "kidney_right"), "kidneys"),
    OrganDef("liver", ("liver",), "liver"),
    OrganDef("spleen", ("spleen",), "spleen"),
    OrganDef("lungs", ("lungs",), "lungs"),
    OrganDef("red_marrow", ("bone_spongiosa",), "red_marrow", note=(
        "red-marrow-bearing spongiosa as proxy: sources uniform in spongiosa, photon dose = mean "
        "spongiosa dose; electron self-dose with the ICRP-89 red marrow mass")),
    OrganDef("salivary_glands", ("salivary_glands",), "salivary_glands",
             note="parotid + submandibular glands (no sublingual glands)"),
    OrganDef("lacrimal_glands", ("lacrimal_glands",), "lacrimal_glands"),
    OrganDef("thyroid", ("thyroid_gland",), "thyroid_gland"),
    OrganDef("brain", ("brain",), "brain"),
    OrganDef("heart_wall", ("heart",), "heart", note="ICRP-89 heart tissue (wall)"),
    OrganDef("heart_contents", ("heart_blood_pool",), "heart_blood_pool"),
    OrganDef("stomach", ("stomach",), "stomach", note="wall + contents, not separated"),
    OrganDef("small_bowel", ("small_bowel",), "small_bowel", note="wall + contents"),
    OrganDef("colon", ("colon",), "colon", note="wall + contents"),
    OrganDef("pancreas", ("pancreas",), "pancreas"),
    OrganDef("urinary_bladder_wall", ("urinary_bladder_wall",), "urinary_bladder_wall"),
    OrganDef("urinary_bladder_content", ("urinary_bladder_content",),
             "urinary_bladder_content"),
    OrganDef("prostate", ("prostate",), "prostate", ("male",)),
    OrganDef("testes", ("testes",), "testes", ("male",)),
    OrganDef("uterus", ("uterus",), "uterus", ("female",)),
    OrganDef("ovaries", ("ovaries",), "ovaries", ("female",)),
    OrganDef(TOTAL_BODY, ("*",), "mass_in_fov", _BOTH, note=(
        "every body voxel of the field of view (head to mid-thigh); the legs below it are not "
        "modelled")),
)

#: Walled organs: (wall, contents) -> fraction of the contents' equilibrium electron/alpha dose
#: the wall receives (ICRP Publication 30: dose at the surface of the contents = ½ of it).
WALL_CONTENT: dict[tuple[str, str], float] = {
    ("urinary_bladder_wall", "urinary_bladder_content"): 0.5,
}


def organs_for(phantom: str) -> tuple[OrganDef, ...]:
    """Organs of a reference phantom (``"adult_male"`` / ``"adult_female"``)."""
    sex = _check_phantom(phantom).removeprefix("adult_")
    return tuple(o for o in ORGANS if sex in o.sexes)


def _check_phantom(phantom: Any) -> str:
    if phantom not in PHANTOMS:
        raise InputError(f"unknown phantom {phantom!r}; accepted: {', '.join(PHANTOMS)}",
                         field="phantom")
    return str(phantom)


def _nuclide_name(nuclide: str | Nuclide) -> str:
    return nuclide.name if isinstance(nuclide, Nuclide) else get_nuclide(nuclide).name


# --------------------------------------------------------------------------------- the table
def _matrix(value: Any, n: int, key: str, file: str | None) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"expected a {n}x{n} matrix of numbers, got {str(value)[:40]!r}",
                         file=file, field=key) from None
    if a.shape != (n, n):
        raise InputError(f"expected shape ({n}, {n}) (targets x sources), got {a.shape}",
                         file=file, field=key)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise InputError("expected finite values >= 0, got negative or non-finite entries",
                         file=file, field=key)
    return a


@dataclass(frozen=True, eq=False)
class SValueTable:
    """Organ S-values ``S(target ← source)`` of one phantom and nuclide, in mGy/(MBq·s).

    Matrices are indexed ``[target, source]`` over :attr:`organs` (sources = targets).

    Attributes
    ----------
    phantom : str
        ``"adult_male"`` / ``"adult_female"`` (or a patient label after :meth:`scaled`).
    nuclide : str
        ICRP-107 parent nuclide.
    organs : tuple of str
        Organ names (rows = targets, columns = sources).
    s_electron, s_alpha, s_photon : (N, N) ndarray
        Parts of the S-value by emission class, mGy/(MBq·s).
    sigma_photon : (N, N) ndarray
        Statistical standard deviation of ``s_photon`` (Monte Carlo), mGy/(MBq·s); the
        electron and alpha parts are exact given the decay data.
    masses_g : mapping of str to float
        Organ masses, g (the masses of the electron/alpha self-dose).
    photon_masses_g : mapping of str to float
        Mass of the voxels the photon dose of each organ is scored in (and the source is
        spread over), g.
    energy_per_decay_kev : mapping of str to float
        ``electron``, ``alpha``, ``photon`` energy per parent decay, keV.
    chain : bool
        Whether progeny in equilibrium are included (per parent decay).
    provenance : mapping
        Phantom version, voxel size, histories, seed, code and data versions, run time.
    """

    phantom: str
    nuclide: str
    organs: tuple[str, ...]
    s_electron: np.ndarray
    s_alpha: np.ndarray
    s_photon: np.ndarray
    sigma_photon: np.ndarray
    masses_g: Mapping[str, float]
    photon_masses_g: Mapping[str, float]
    energy_per_decay_kev: Mapping[str, float]
    chain: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def s_total(self) -> np.ndarray:
        """``S(t ← s)``, all classes, (N, N) mGy/(MBq·s)."""
        return self.s_electron + self.s_alpha + self.s_photon

    @property
    def sigma_total(self) -> np.ndarray:
        """Statistical σ of :attr:`s_total` (= that of the photon part), mGy/(MBq·s)."""
        return self.sigma_photon

    def index(self, organ: str, field: str = "organ") -> int:
        """Row/column of ``organ``; unknown names raise :class:`InputError` listing the known."""
        try:
            return self.organs.index(organ)
        except ValueError:
            raise InputError(f"unknown organ {organ!r} for phantom {self.phantom} "
                             f"({self.nuclide}); known: {', '.join(self.organs)}",
                             field=field) from None

    def s(self, target: str, source: str) -> tuple[float, float]:
        """``(S, σ)`` of ``S(target ← source)``, mGy/(MBq·s)."""
        t, s = self.index(target, "target"), self.index(source, "source")
        return float(self.s_total[t, s]), float(self.sigma_total[t, s])

    # ----------------------------------------------------------------------------- mass scaling
    def scaled(self, masses_g: Mapping[str, float], *, label: str | None = None) -> SValueTable:
        """S-values rescaled to patient organ masses.

        * electron and alpha parts: ``∝ 1/m_source`` (exact for local deposition; applies to
          the self-dose, the wall←contents terms and the total-body column), the total-body row
          ``∝ 1/m_TB``;
        * photon self-dose: ``∝ m^(-2/3)`` (the photon self absorbed fraction grows as
          ``m^(1/3)``: Snyder et al. 1975, MIRD Pamphlet 11; Stabin 2008);
        * photon cross-dose: unscaled (the specific absorbed fraction ``φ(t←s)/m_t`` of
          penetrating radiation depends little on the organ masses; Petoussi-Henss et al. 2007).

        Parameters
        ----------
        masses_g : mapping of str to float
            Patient organ masses, g, for any subset of :attr:`organs`; others keep the reference.
        label : str, optional
            Name of the scaled table (default ``"<phantom> scaled"``).

        Raises
        ------
        InputError
            Unknown organ, or a mass that is not a finite number > 0.

        References
        ----------
        Snyder WS, Ford MR, Warner GG, Watson SB. "S," absorbed dose per unit cumulated activity
        for selected radionuclides and organs. MIRD Pamphlet No. 11. SNM, New York, 1975.
        Stabin MG. Uncertainties in internal dose calculations for radiopharmaceuticals.
        J Nucl Med 2008;49(5):853-860. doi:10.2967/jnumed.107.048132.
        Petoussi-Henss N, Bolch WE, Zankl M, Sgouros G, Wessels B. Patient-specific scaling of
        reference S-values for cross-organ radionuclide S-values: what is appropriate?
        Radiat Prot Dosimetry 2007;127(1-4):192-196. doi:10.1093/rpd/ncm274.
        """
        ratio = np.ones(len(self.organs))
        new_masses = dict(self.masses_g)
        for organ, m in dict(masses_g).items():
            i = self.index(organ, field=f"masses_g[{organ!r}]")
            m = _positive(m, f"masses_g[{organ!r}]", "g")
            ratio[i] = self.masses_g[organ] / m
            new_masses[organ] = m
        # local deposition scales with 1/m_source, except the total-body row (all the energy
        # stays in the body, so S_e(TB <- s) = Δ_e/m_TB scales with the total-body mass)
        col = np.repeat(ratio[None, :], len(self.organs), axis=0)
        if TOTAL_BODY in self.organs:
            tb = self.organs.index(TOTAL_BODY)
            col[tb, :] = ratio[tb]
        photon = self.s_photon.copy()
        sig = self.sigma_photon.copy()
        diag = np.diag_indices(len(self.organs))
        photon[diag] *= ratio ** (2.0 / 3.0)
        sig[diag] *= ratio ** (2.0 / 3.0)
        photon_masses = {k: v * (new_masses[k] / self.masses_g[k])
                         for k, v in self.photon_masses_g.items()}
        prov = dict(self.provenance)
        prov["mass_scaling"] = {
            "masses_g": {k: float(v) for k, v in dict(masses_g).items()},
            "electron_alpha": "S x m_ref/m (source mass)",
            "photon_self": "S x (m_ref/m)^(2/3)",
            "photon_cross": "unscaled",
        }
        return SValueTable(
            phantom=label or f"{self.phantom} scaled", nuclide=self.nuclide, organs=self.organs,
            s_electron=self.s_electron * col, s_alpha=self.s_alpha * col, s_photon=photon,
            sigma_photon=sig, masses_g=new_masses, photon_masses_g=photon_masses,
            energy_per_decay_kev=dict(self.energy_per_decay_kev), chain=self.chain,
            provenance=prov)

    # ----------------------------------------------------------------------------- remainder
    def remainder_column(self, sources: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """``S(t ← remainder)`` for every target, where remainder = total body − ``sources``.

        ``S(t ← RB) = [m_TB S(t ← TB) − Σ_s m_s S(t ← s)] / m_RB`` with
        ``m_RB = m_TB − Σ_s m_s`` (Cloutier et al. 1973): the remainder is the total body with
        the named source organs taken out, activity uniform per gram in what is left.

        Parameters
        ----------
        sources : sequence of str
            Source organs with their own activity (``total_body`` and ``remainder`` not allowed).

        Returns
        -------
        s, sigma : (N,) ndarray
            Over :attr:`organs` as targets, mGy/(MBq·s) (negative values from statistics are
            clipped to 0).
        mass_g : float
            Remainder mass, g.

        Raises
        ------
        InputError
            Unknown organ, ``total_body`` among the sources, or sources heavier than the body.

        References
        ----------
        Cloutier RJ, Watson EE, Rohrer RH, Smith EM. Calculating the radiation dose to an organ.
        J Nucl Med 1973;14(1):53-55.
        """
        tb = self.index(TOTAL_BODY, "organs")
        m_tb = self.masses_g[TOTAL_BODY]
        s_all, sig_all = self.s_total, self.sigma_total
        num = m_tb * s_all[:, tb]
        var = (m_tb * sig_all[:, tb]) ** 2
        m_rb = m_tb
        for name in dict.fromkeys(sources):
            if name in (TOTAL_BODY, REMAINDER):
                raise InputError(f"{name!r} cannot be a source together with the remainder; "
                                 "give organ sources only", field="sources")
            j = self.index(name, "sources")
            m = self.masses_g[name]
            num = num - m * s_all[:, j]
            var = var + (m * sig_all[:, j]) ** 2
            m_rb -= m
        if m_rb <= 0:
            raise InputError(f"source organs weigh {m_tb - m_rb:.6g} g, more than the total body "
                             f"{m_tb:.6g} g: no remainder left", field="sources")
        return np.clip(num / m_rb, 0.0, None), np.sqrt(var) / m_rb, float(m_rb)

    # ----------------------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable document (schema :data:`SCHEMA`, 6 significant digits)."""
        def mat(a: np.ndarray) -> list[list[float]]:
            return [[float(f"{v:.6g}") for v in row] for row in a]

        return {
            "schema": SCHEMA,
            "phantom": self.phantom,
            "nuclide": self.nuclide,
            "chain": self.chain,
            "unit": SVALUE_UNIT,
            "index": "[target][source]",
            "organs": list(self.organs),
            "masses_g": {k: float(f"{v:.6g}") for k, v in self.masses_g.items()},
            "photon_masses_g": {k: float(f"{v:.6g}") for k, v in self.photon_masses_g.items()},
            "energy_per_decay_kev": {k: float(v) for k, v in self.energy_per_decay_kev.items()},
            "s_electron": mat(self.s_electron),
            "s_alpha": mat(self.s_alpha),
            "s_photon": mat(self.s_photon),
            "sigma_photon": mat(self.sigma_photon),
            "provenance": dict(self.provenance),
        }

    def to_json(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_dict` to ``path`` (atomic; refuses to overwrite unless asked).

        Raises
        ------
        OutputExistsError
            If ``path`` exists and ``overwrite`` is False.
        """
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
            tmp.chmod(0o644)  # package data: readable by all (mkstemp creates 0600)
        return Path(path)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, file: str | None = None) -> SValueTable:
        """Validate and build a table from :meth:`to_dict`'s document.

        Raises
        ------
        InputError
            Wrong schema or unit, missing key, bad matrix shape or values, missing mass.
        """
        if not isinstance(doc, Mapping):
            raise InputError(f"expected a JSON object, got {type(doc).__name__}", file=file,
                             field="(document)")
        for key in ("schema", "phantom", "nuclide", "unit", "organs", "masses_g",
                    "photon_masses_g", "s_electron", "s_alpha", "s_photon", "sigma_photon"):
            if key not in doc:
                raise InputError("missing key", file=file, field=key)
        if doc["schema"] != SCHEMA:
            raise InputError(f"expected {SCHEMA!r}, got {doc['schema']!r}", file=file,
                             field="schema")
        if doc["unit"] != SVALUE_UNIT:
            raise InputError(f"expected {SVALUE_UNIT!r}, got {doc['unit']!r}", file=file,
                             field="unit")
        organs = tuple(str(o) for o in doc["organs"])
        if not organs or len(set(organs)) != len(organs):
            raise InputError(f"expected distinct organ names, got {list(organs)}", file=file,
                             field="organs")
        n = len(organs)
        mats = {k: _matrix(doc[k], n, k, file)
                for k in ("s_electron", "s_alpha", "s_photon", "sigma_photon")}
        masses = {}
        for key in ("masses_g", "photon_masses_g"):
            d = doc[key]
            for o in organs:
                if not isinstance(d, Mapping) or o not in d:
                    raise InputError(f"no mass for organ {o!r}", file=file, field=key)
                _positive(d[o], f"{key}[{o!r}]", "g", file=file)
            masses[key] = {o: float(d[o]) for o in organs}
        return cls(phantom=str(doc["phantom"]), nuclide=str(doc["nuclide"]), organs=organs,
                   s_electron=mats["s_electron"], s_alpha=mats["s_alpha"],
                   s_photon=mats["s_photon"], sigma_photon=mats["sigma_photon"],
                   masses_g=masses["masses_g"], photon_masses_g=masses["photon_masses_g"],
                   energy_per_decay_kev=dict(doc.get("energy_per_decay_kev", {})),
                   chain=bool(doc.get("chain", False)),
                   provenance=dict(doc.get("provenance", {})))


def _positive(value: Any, name: str, unit: str, *, file: str | None = None) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"expected a finite number > 0 ({unit}), got {value!r}", file=file,
                         field=name)
    return v


# --------------------------------------------------------------------------------- package data
def _data_dir() -> Path:
    return Path(str(resources.files("theradose"))) / "data" / "svalues"


def svalue_table_path(phantom: str, nuclide: str | Nuclide, *, chain: bool = False,
                      data_dir: str | Path | None = None) -> Path:
    """Path of the packaged table ``<phantom>_<nuclide>[_chain].json`` (may not exist)."""
    name = f"{_check_phantom(phantom)}_{_nuclide_name(nuclide)}{'_chain' if chain else ''}.json"
    return Path(data_dir) / name if data_dir is not None else _data_dir() / name


def available_svalue_tables(data_dir: str | Path | None = None) -> list[str]:
    """Stems of the tables present (``"adult_male_Lu-177"``, ...), sorted."""
    d = Path(data_dir) if data_dir is not None else _data_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def read_svalue_table(path: str | Path) -> SValueTable:
    """Read and validate an S-value table file.

    Raises
    ------
    UnreadableFileError
        Missing file or invalid JSON.
    InputError
        Invalid content (see :meth:`SValueTable.from_dict`).
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise UnreadableFileError("file not found", file=p, field="path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableFileError(f"not a JSON S-value table ({type(exc).__name__})",
                                  file=p, field="path") from None
    return SValueTable.from_dict(doc, file=str(p))


@lru_cache(maxsize=16)
def _load_cached(path: str) -> SValueTable:
    return read_svalue_table(path)


def load_svalue_table(nuclide: str | Nuclide, phantom: str = "adult_male", *,
                      chain: bool = False, data_dir: str | Path | None = None) -> SValueTable:
    """The packaged S-value table of a reference phantom and nuclide.

    Parameters
    ----------
    nuclide : str or Nuclide
        Parent nuclide (any spelling :func:`theradose.nuclides.get_nuclide` accepts).
    phantom : {"adult_male", "adult_female"}
    chain : bool
        Table with the progeny in equilibrium (per parent decay), e.g. Ac-225.
    data_dir : str or Path, optional
        Folder of tables instead of the packaged ``theradose/data/svalues``.

    Raises
    ------
    UnknownNuclideError
        Unknown nuclide.
    InputError
        Unknown phantom, or no table for this nuclide (the message lists those present).
    """
    path = svalue_table_path(phantom, nuclide, chain=chain, data_dir=data_dir)
    if not path.is_file():
        have = available_svalue_tables(data_dir) or ["none"]
        raise InputError(f"no S-value table {path.stem!r}; available: {', '.join(have)} "
                         "(generate with scripts/generate_svalues.py)", field="nuclide")
    return _load_cached(str(path))


def svalue(nuclide: str | Nuclide, source: str, target: str, phantom: str = "adult_male", *,
           chain: bool = False, data_dir: str | Path | None = None) -> dict[str, Any]:
    """One organ S-value ``S(target ← source)`` of a reference phantom.

    Parameters
    ----------
    nuclide : str or Nuclide
        Parent nuclide.
    source, target : str
        Organ names (:data:`ORGANS`; ``"remainder"`` is not a table organ: use
        :func:`theradose.dose.mc._organ_dose.organ_doses`).
    phantom : {"adult_male", "adult_female"}
    chain, data_dir
        As :func:`load_svalue_table`.

    Returns
    -------
    dict
        ``s_value_mgy_per_mbq_s``, ``sigma_mgy_per_mbq_s``, ``s_value_gy_per_mbq_h``, the parts
        ``electron_mgy_per_mbq_s``, ``alpha_mgy_per_mbq_s``, ``photon_mgy_per_mbq_s``,
        ``source``, ``target``, ``source_mass_g``, ``target_mass_g``, ``nuclide``, ``phantom``,
        ``chain``, ``unit``, ``provenance``.

    Raises
    ------
    InputError
        Unknown organ (the message lists the known ones), phantom or missing table.

    Examples
    --------
    >>> d = svalue("Lu-177", "kidneys", "kidneys")  # doctest: +SKIP
    >>> d["s_value_mgy_per_mbq_s"]  # doctest: +SKIP
    """
    tab = load_svalue_table(nuclide, phantom, chain=chain, data_dir=data_dir)
    t, s = tab.index(target, "target"), tab.index(source, "source")
    value, sigma = float(tab.s_total[t, s]), float(tab.sigma_total[t, s])
    return {
        "s_value_mgy_per_mbq_s": value,
        "sigma_mgy_per_mbq_s": sigma,
        "s_value_gy_per_mbq_h": value * 3600.0 * 1e-3,
        "electron_mgy_per_mbq_s": float(tab.s_electron[t, s]),
        "alpha_mgy_per_mbq_s": float(tab.s_alpha[t, s]),
        "photon_mgy_per_mbq_s": float(tab.s_photon[t, s]),
        "source": source,
        "target": target,
        "source_mass_g": float(tab.masses_g[source]),
        "target_mass_g": float(tab.masses_g[target]),
        "nuclide": tab.nuclide,
        "phantom": tab.phantom,
        "chain": tab.chain,
        "unit": SVALUE_UNIT,
        "provenance": dict(tab.provenance),
    }
