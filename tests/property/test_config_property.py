"""PipelineConfig.from_dict with arbitrary values in every key: a valid config or InputError.

Invariants of an accepted configuration: it serialises to strict JSON (it is copied into
results.json), every number in it is finite, and the registration seed fits the 32-bit seed
of SimpleITK's metric sampling (``seed + 1`` is passed on).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theradose.errors import InputError
from theradose.pipeline._config import DEFAULTS, PipelineConfig

KEYS = [(s, k) for s, keys in DEFAULTS.items() for k in keys]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.5, 1e30, 1e308, 5e-324, 2**32 - 1, 2**32, 2**64]),
    st.text(max_size=12),
    st.sampled_from(["mono", "bi", "aicc", "bic", "gtm", "none", "kernel", "led", "auto",
                     "Lu-177", "2026-01-06T09:00:00", "percent_max", "lesion*"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4),
                   st.dictionaries(st.text(max_size=6), scalars, max_size=3))


@st.composite
def configs(draw) -> dict:
    data: dict = {}
    for sec, key in draw(st.lists(st.sampled_from(KEYS), max_size=6, unique=True)):
        data.setdefault(sec, {})[key] = draw(values)
    if draw(st.integers(0, 9)) == 0:  # now and then an unknown key, section or bad section
        what = draw(st.integers(0, 2))
        if what == 0:
            data.setdefault("study", {})[draw(st.text(min_size=1, max_size=8))] = 1
        elif what == 1:
            data[draw(st.text(min_size=1, max_size=8))] = {}
        else:
            data["kinetics"] = draw(scalars)
    return data


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield obj


@settings(max_examples=400)
@given(configs())
def test_from_dict_valid_or_input_error(data: dict) -> None:
    try:
        cfg = PipelineConfig.from_dict(data, source="cfg.toml")
    except InputError as exc:
        msg = str(exc)
        assert "\n" not in msg
        assert msg.startswith("cfg.toml: ")
        return
    full = cfg.to_dict()
    json.dumps(full, allow_nan=False)  # results.json is strict JSON
    assert all(math.isfinite(x) for x in _numbers(full))
    seed = full["registration"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32 - 1


@pytest.mark.parametrize(("section", "key", "value"), [
    ("registration", "seed", 1e30),
    ("registration", "seed", 2**64),
])
def test_seed_beyond_32_bits_is_refused(section: str, key: str, value) -> None:
    """The named hostile case: seed = 1e30 (SimpleITK takes a 32-bit seed)."""
    with pytest.raises(InputError, match=r"registration\.seed"):
        PipelineConfig.from_dict({section: {key: value}}, source="cfg.toml")
