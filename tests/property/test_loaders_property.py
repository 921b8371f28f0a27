"""read_nifti and read_sidecar on arbitrary small images and sidecars: a result or InputError.

NIfTI files are written with nibabel and then patched byte for byte (pixdim, sform code) so
that spacings nibabel would "fix" on writing (0, negative, NaN) reach the reader as a careless
script would leave them. Invariants of an accepted image: the shape and the values are the
written ones (NaN where NaN was written: nothing altered silently) and the spacing is finite
and > 0.
"""

from __future__ import annotations

import json
import struct
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from theradose.errors import InputError, TheradoseWarning
from theradose.io import read_nifti, read_sidecar
from theradose.io._nifti import SIDECAR_KEYS

DTYPES = [np.uint8, np.int16, np.int32, np.float32, np.float64]
spacings = st.one_of(st.floats(0.1, 20.0),
                     st.sampled_from([0.0, -4.8, 1e-30, 1e30, float("nan"), float("inf")]))


@st.composite
def images(draw):
    shape = draw(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)))
    dtype = draw(st.sampled_from(DTYPES))
    if np.issubdtype(dtype, np.floating):
        elems = st.floats(width=np.dtype(dtype).itemsize * 8, allow_nan=True,
                          allow_infinity=True)
    else:
        elems = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    arr = draw(hnp.arrays(dtype, shape, elements=elems))
    spacing = draw(st.tuples(spacings, spacings, spacings))
    return arr, spacing


def _write(path: Path, arr: np.ndarray, spacing: tuple[float, float, float]) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(arr, np.eye(4))
    img.header.set_qform(np.eye(4), code=1)
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<3f", raw, 80, *spacing)   # pixdim[1..3]
    struct.pack_into("<h", raw, 254, 0)          # sform_code 0: pixdim gives the spacing
    path.write_bytes(bytes(raw))


@settings(max_examples=120)
@given(images())
def test_read_nifti_result_or_input_error(case) -> None:
    arr, spacing = case
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "img.nii"
        _write(p, arr, spacing)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TheradoseWarning)
                vol = read_nifti(p, unit="Bq/mL", modality="NM")
        except InputError as exc:
            assert "\n" not in str(exc)
            assert str(p) in str(exc)
            return
    got = np.asarray(vol.array)
    want = np.transpose(arr, (2, 1, 0))  # NIfTI (x, y, z) -> theradose (z, y, x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))
    sp = np.asarray(vol.geometry.spacing_mm, dtype=float)
    assert np.all(np.isfinite(sp)) and np.all(sp > 0)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
                         st.sampled_from(["NM", "CT", "Bq/mL", "counts", "Lu-177",
                                          "2026-01-07T09:00:00", "2026-01-07", "HU"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
administration = st.fixed_dictionaries({}, optional={
    "nuclide": json_values, "injected_activity_mbq": json_values,
    "injection_time": json_values, "radiopharmaceutical": json_values})
sidecars = st.dictionaries(
    st.one_of(st.sampled_from(SIDECAR_KEYS), st.text(max_size=8)),
    st.one_of(json_values, administration), max_size=6)


@settings(max_examples=300)
@given(sidecars)
def test_read_sidecar_dict_or_input_error(data: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "img.json"
        p.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TheradoseWarning)
                out = read_sidecar(p)
        except InputError as exc:
            assert "\n" not in str(exc)
            assert str(p) in str(exc)
            return
    assert isinstance(out, dict)


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_read_sidecar_on_arbitrary_bytes(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "img.json"
        p.write_bytes(content)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", TheradoseWarning)
                read_sidecar(p)
        except InputError as exc:
            assert str(p) in str(exc)
