"""Damaged or impossible NIfTI files are errors naming the file and the field, never zeros.

SimpleITK reads a truncated .nii.gz with its missing part as zeros, NaN/±Inf as 0, a 0 in
``dim`` as 1 and a 0 or NaN ``pixdim`` as 1 mm; each case below must raise instead.
"""

import gzip
import struct

import nibabel as nib
import numpy as np
import pytest

from theradose.errors import InputError, UnreadableFileError
from theradose.io import read_labelmap, read_nifti, write_nifti
from theradose.volume import Geometry, Volume

SHAPE_XYZ = (6, 5, 4)  # NIfTI order; the Volume is (4, 5, 6) [z, y, x]


def _raw(dtype=np.float32, values=None, **header):
    """Uncompressed NIfTI-1 bytes (x fastest), header fields patched after nibabel wrote them."""
    data = np.arange(np.prod(SHAPE_XYZ), dtype=dtype).reshape(SHAPE_XYZ, order="F") + 1 \
        if values is None else values
    img = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    for k, v in header.items():
        img.header[k] = v
    img.header.set_data_offset(352)  # 348-byte header + 4-byte extension flag
    raw = bytearray(img.header.binaryblock) + b"\0" * 4 + data.tobytes(order="F")
    return raw


def _patch(raw, *, dim=None, pixdim=None):
    raw = bytearray(raw)
    if dim is not None:
        raw[40:56] = struct.pack("<8h", *dim)
    if pixdim is not None:
        raw[76:108] = struct.pack("<8f", *pixdim)
    return bytes(raw)


def _read(path):
    return read_nifti(path, unit="Bq/mL", modality="NM", sidecar=False)


def _one_line(exc):
    assert "\n" not in str(exc.value)


def test_intact_files_read_as_stored(tmp_path):
    raw = bytes(_raw())
    (tmp_path / "a.nii").write_bytes(raw)
    (tmp_path / "a.nii.gz").write_bytes(gzip.compress(raw))
    # Two gzip members (valid gzip, e.g. from concatenation) and a zero-padded stream.
    (tmp_path / "b.nii.gz").write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    (tmp_path / "c.nii.gz").write_bytes(gzip.compress(raw) + b"\0" * 64)
    expected = np.arange(120, dtype=np.float32).reshape(SHAPE_XYZ, order="F").T + 1
    for name in ("a.nii", "a.nii.gz", "b.nii.gz", "c.nii.gz"):
        v = _read(tmp_path / name)
        assert v.array.dtype == np.float32 and v.shape == (4, 5, 6)
        np.testing.assert_array_equal(v.array, expected)
        assert v.spacing_mm == (2.0, 3.0, 4.0)


def test_big_endian_and_scaled_images(tmp_path):
    data = np.arange(120, dtype=">i2").reshape(SHAPE_XYZ, order="F")
    img = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header.set_data_dtype(">i2")
    nib.save(img, tmp_path / "be.nii.gz")
    v = _read(tmp_path / "be.nii.gz")
    np.testing.assert_array_equal(v.array, data.T)
    assert v.array.dtype == np.int16
    # scl_slope 2, scl_inter 1: value = 2 x stored + 1 (read by SimpleITK after the checks).
    img = nib.Nifti1Image(np.arange(120, dtype=np.int16).reshape(SHAPE_XYZ, order="F"),
                          np.eye(4))
    img.header.set_slope_inter(2.0, 1.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    w = _read(tmp_path / "scaled.nii.gz")
    np.testing.assert_allclose(w.array, 2.0 * np.arange(120).reshape(SHAPE_XYZ, order="F").T + 1)


def test_truncated_and_corrupt_files(tmp_path):
    raw = bytes(_raw())
    gz = gzip.compress(raw)
    (tmp_path / "t.nii.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(UnreadableFileError, match=r"t\.nii\.gz: data: truncated gzip file") as e:
        _read(tmp_path / "t.nii.gz")
    _one_line(e)
    bad = bytearray(gz)
    bad[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    (tmp_path / "crc.nii.gz").write_bytes(bytes(bad))
    with pytest.raises(UnreadableFileError, match=r"crc\.nii\.gz: data: corrupt gzip data "
                                                  r"\(.*incorrect data check"):
        _read(tmp_path / "crc.nii.gz")
    # A complete gzip stream of a file cut short: the header asks for more bytes.
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(raw[:-40]))
    with pytest.raises(UnreadableFileError, match=r"short\.nii\.gz: data: truncated: the header "
                       r"needs 832 bytes \(offset 352 \+ 120 voxels x 4 bytes\), the file "
                       r"holds 792"):
        _read(tmp_path / "short.nii.gz")
    (tmp_path / "short.nii").write_bytes(raw[:-1])
    with pytest.raises(UnreadableFileError, match=r"short\.nii: data: truncated"):
        _read(tmp_path / "short.nii")
    (tmp_path / "hdr.nii.gz").write_bytes(gzip.compress(raw[:200]))
    with pytest.raises(UnreadableFileError, match=r"hdr\.nii\.gz: cannot read NIfTI image"):
        _read(tmp_path / "hdr.nii.gz")


@pytest.mark.parametrize("dim, pattern", [
    ((3, 6, 5, 0, 1, 1, 1, 1), r"dim: image size \[6, 5, 0\] \(x, y, z, \.\.\.\) has a 0 "
                               r"along axis 3"),
    ((3, 0, 5, 4, 1, 1, 1, 1), r"dim: image size \[0, 5, 4\].* along axis 1"),
    ((0, 6, 5, 4, 1, 1, 1, 1), r"dim: dim\[0\] = 0"),
])
def test_zero_size(tmp_path, dim, pattern):
    (tmp_path / "z.nii.gz").write_bytes(gzip.compress(_patch(_raw(), dim=dim)))
    with pytest.raises(InputError, match=r"z\.nii\.gz: " + pattern) as e:
        _read(tmp_path / "z.nii.gz")
    _one_line(e)


@pytest.mark.parametrize("pixdim, shown", [
    ((1, 2, 0, 4, 1, 1, 1, 1), r"\[2\.0, 0\.0, 4\.0\]"),
    ((1, 2, -3, 4, 1, 1, 1, 1), r"\[2\.0, -3\.0, 4\.0\]"),
    ((1, float("nan"), 3, 4, 1, 1, 1, 1), r"\[nan, 3\.0, 4\.0\]"),
])
def test_bad_pixdim(tmp_path, pixdim, shown):
    (tmp_path / "p.nii.gz").write_bytes(gzip.compress(_patch(_raw(), pixdim=pixdim)))
    with pytest.raises(InputError, match=r"p\.nii\.gz: pixdim: voxel size " + shown +
                       r" mm \(pixdim\[1\.\.3\]\) must be finite and > 0"):
        _read(tmp_path / "p.nii.gz")


def test_non_finite_values_count_and_first_index(tmp_path):
    data = np.ones(SHAPE_XYZ, np.float32, order="F")
    data[4, 2, 3] = np.nan   # x=4, y=2, z=3 -> [z, y, x] = [3, 2, 4]
    data[1, 0, 3] = np.inf   # [3, 0, 1]: first in [z, y, x] order
    data[5, 4, 3] = -np.inf
    raw = _raw(values=data)
    for name, blob in (("v.nii.gz", gzip.compress(bytes(raw))), ("v.nii", bytes(raw))):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(InputError, match=r"v\.nii(\.gz)?: data: 3 of 120 voxels are not "
                                             r"finite \(NaN or ±Inf\), the first at \[z, y, x\] "
                                             r"\[3, 0, 1\]") as e:
            _read(tmp_path / name)
        _one_line(e)
    # The same through SimpleITK's path for scaled images (values checked in the stream).
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(2.0, 0.0)
    nib.save(img, tmp_path / "s.nii.gz")
    with pytest.raises(InputError, match=r"s\.nii\.gz: data: 3 of 120 voxels .* \[3, 0, 1\]"):
        _read(tmp_path / "s.nii.gz")
    # A whole time point of NaN.
    nib.save(nib.Nifti1Image(np.full(SHAPE_XYZ, np.nan, np.float32), np.eye(4)),
             tmp_path / "all.nii.gz")
    with pytest.raises(InputError, match=r"all\.nii\.gz: data: 120 of 120 voxels are not "
                                         r"finite .* \[0, 0, 0\]"):
        _read(tmp_path / "all.nii.gz")
    # Label maps: NaN is not read as background.
    with pytest.raises(InputError, match=r"all\.nii\.gz: data: 120 of 120 voxels"):
        read_labelmap(tmp_path / "all.nii.gz", sidecar=False)


def test_sigma_image_is_checked_too(tmp_path):
    g = Geometry((4, 5, 6), (2.0, 3.0, 4.0))
    v = Volume(np.ones(g.shape, np.float32), g, unit="Bq/mL", modality="NM",
               sigma=np.full(g.shape, 0.1, np.float32))
    write_nifti(v, tmp_path / "x.nii.gz")
    sig = np.full(SHAPE_XYZ, 0.1, np.float32)
    sig[0, 1, 2] = np.nan  # [z, y, x] = [2, 1, 0]
    nib.save(nib.Nifti1Image(sig, nib.load(tmp_path / "x_sigma.nii.gz").affine),
             tmp_path / "x_sigma.nii.gz")
    with pytest.raises(InputError, match=r"x_sigma\.nii\.gz: data: 1 of 120 voxels are not "
                                         r"finite .* \[2, 1, 0\]"):
        read_nifti(tmp_path / "x.nii.gz")
