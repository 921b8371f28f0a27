"""Radiobiology: BED with the Lea–Catcheside factor, EQD2, EUD, multi-cycle accumulation.

Public names
------------
TissueParameters, TISSUES, get_tissue
    α/β, repair half-time and α per tissue, with cited (or flagged conventional) defaults.
lea_catcheside_g, piecewise_g, sum_of_exponentials
    Dose-protraction factor G of a sum-of-exponentials dose-rate curve (closed form, any
    repair rate) or of a piecewise-linear curve with an exponential tail.
bed, bed_mono, eqd2, bed_from_fit, BEDResult
    BED = D (1 + G D/(α/β)); the mono-exponential closed form; EQD2; BED of a VOI from a
    :class:`theradose.kinetics.KineticFit`.
accumulate_cycles, CycleAccumulation
    Total BED over cycles (complete repair between cycles).
geud, eubed
    Generalised EUD (Niemierko) and the equivalent uniform BED (O'Donoghue / Strigari).
bed_map, effective_rate_map
    Voxel-wise BED maps (mono or multi-exponential dose rate, α/β maps) and per-voxel
    effective rates from the last time points.
"""

from theradose.radiobiology._bed import (
    BEDResult,
    CycleAccumulation,
    accumulate_cycles,
    bed,
    bed_from_fit,
    bed_mono,
    eqd2,
)
from theradose.radiobiology._bed_map import bed_map, effective_rate_map
from theradose.radiobiology._eud import eubed, geud
from theradose.radiobiology._lea_catcheside import (
    lea_catcheside_g,
    piecewise_g,
    sum_of_exponentials,
)
from theradose.radiobiology._tissues import TISSUES, TissueParameters, get_tissue

__all__ = [
    "TISSUES",
    "BEDResult",
    "CycleAccumulation",
    "TissueParameters",
    "accumulate_cycles",
    "bed",
    "bed_from_fit",
    "bed_map",
    "bed_mono",
    "effective_rate_map",
    "eqd2",
    "eubed",
    "get_tissue",
    "geud",
    "lea_catcheside_g",
    "piecewise_g",
    "sum_of_exponentials",
]
