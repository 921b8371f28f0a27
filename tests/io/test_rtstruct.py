"""RTSTRUCT: exact voxel-boundary round trips, analytic shapes, rasterisation rule, bad inputs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from _rt_fixtures import check_message, ct_datasets, ct_volume, rotation_z, sha256, write_ct
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from theradose.errors import (
    DicomTagError,
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
)
from theradose.io import read_rtstruct, rtstruct_to_labelmap, write_rtstruct
from theradose.io._contours import rasterize_even_odd, trace_voxel_boundaries
from theradose.volume import Geometry, LabelMap

DIRECTIONS = {
    "identity": np.eye(3),
    "flipped_z": np.diag([1.0, 1.0, -1.0]),
    "flipped_xy": np.diag([-1.0, -1.0, 1.0]),
    "rotated_90": rotation_z(90),
}


def _masks(shape, seed=5):
    """Holes, several components, diagonal contacts, border voxels and random noise."""
    rng = np.random.default_rng(seed)
    _, ny, nx = shape
    ring = np.zeros(shape, bool)
    ring[1:4, 2:10, 2:12] = True
    ring[2, 4:8, 5:9] = False  # a hole on slice 2 only
    ring[2, 5, 6] = True  # an island inside the hole
    comps = np.zeros(shape, bool)
    comps[:, 0:2, 0:2] = True  # touches the grid border
    comps[0, ny - 3, 3] = comps[0, ny - 2, 4] = comps[0, ny - 3, 5] = True  # diagonal contacts
    comps[1, ny - 4:ny - 1, nx - 4:nx - 1] = True
    comps[1, ny - 3, nx - 3] = False  # one-voxel hole
    checker = (np.indices(shape).sum(axis=0) % 2 == 0) & (np.arange(nx) > nx - 5)
    noise = rng.random(shape) < 0.45
    return {"ring": ring, "components": comps, "checker": checker, "noise": noise,
            "empty": np.zeros(shape, bool)}


def _geometry(direction):
    return Geometry((5, 15, 18), (0.9, 1.3, 2.5), (-30.2, 11.7, -40.0), direction)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_round_trip_is_exact(tmp_path, name):
    g = _geometry(DIRECTIONS[name])
    dss = ct_datasets(g)
    masks = _masks(g.shape)
    out = write_rtstruct(masks, tmp_path / "rs.dcm", reference=ct_volume(dss, g))
    for ref in (ct_volume(dss, g), g, dss):
        back = read_rtstruct(out, ref)
        assert list(back) == list(masks)
        expected = masks
        if ref is dss and name == "flipped_z":
            # DICOM slices are sorted along row x column, so this grid's z axis is reversed:
            # the same voxels in physical space
            expected = {k: m[::-1] for k, m in masks.items()}
        for k, m in expected.items():
            np.testing.assert_array_equal(back[k], m, err_msg=k)


def test_round_trip_through_folder_reference_and_b_reader(tmp_path):
    # the CT as written by theradose.io.write_ct_series and read back by read_ct
    from theradose.io import read_ct, write_ct_series
    from theradose.volume import Volume

    g = Geometry((4, 12, 10), (1.2, 1.2, 3.0), (-5.0, 7.0, 11.0))
    write_ct_series(Volume(np.zeros(g.shape), g, unit="HU", modality="CT"), tmp_path / "ct")
    ct = read_ct(tmp_path / "ct")
    masks = _masks(ct.shape, seed=9)
    out = write_rtstruct(masks, tmp_path / "rs.dcm", reference=ct)
    for ref in (tmp_path / "ct", ct):
        back = read_rtstruct(out, ref)
        for k, m in masks.items():
            np.testing.assert_array_equal(back[k], m, err_msg=k)


def test_tracing_reproduces_random_masks_in_index_space():
    # conservation of the even-odd parity: every configuration of 2x2 neighbourhoods occurs
    rng = np.random.default_rng(2)
    for p in (0.2, 0.5, 0.8):
        m = rng.random((4, 21, 19)) < p
        xy, poly, sl = trace_voxel_boundaries(m)
        np.testing.assert_array_equal(rasterize_even_odd(xy, poly, sl, m.shape), m)
        # outlines pass through voxel corners only (half-integer coordinates)
        np.testing.assert_array_equal(xy % 1, 0.5)


def test_diagonal_voxels_get_separate_loops():
    m = np.zeros((1, 3, 3), bool)
    m[0, 0, 0] = m[0, 1, 1] = True
    _, poly, _ = trace_voxel_boundaries(m)
    # two unit squares of 4 corners each (4-connected components)
    assert np.bincount(poly).tolist() == [4, 4]


def _contour(points_xyz, uid="1.2.3"):
    c = Dataset()
    c.ContourGeometricType = "CLOSED_PLANAR"
    c.NumberOfContourPoints = len(points_xyz)
    c.ContourData = [f"{v:.6f}" for v in np.asarray(points_xyz).ravel()]
    return c


def _structure_set(path, rois: dict[str, list], *, for_uid="1.2.3.4", types=None):
    """A minimal RTSTRUCT written by hand: ROI name -> list of contour item datasets."""
    ds = Dataset()
    ds.Modality = "RTSTRUCT"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ss, rc = [], []
    for n, (name, contours) in enumerate(rois.items(), start=1):
        item = Dataset()
        item.ROINumber = n
        item.ROIName = name
        item.ReferencedFrameOfReferenceUID = for_uid
        ss.append(item)
        r = Dataset()
        r.ReferencedROINumber = n
        if contours:
            r.ContourSequence = Sequence(contours)
        rc.append(r)
    ds.StructureSetROISequence = Sequence(ss)
    ds.ROIContourSequence = Sequence(rc)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    # implicit VR: long ContourData exceed the 64 KiB value length of explicit-VR DS
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _circle(r, z, n=3600, centre=(0.0, 0.0)):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t),
                            np.full(n, z)])


def test_circle_area_matches_lattice_count_and_pi_r2(tmp_path):
    # 1 mm grid centred on the circle; r^2 = 412.09 is 0.09 away from every integer x^2 + y^2,
    # i.e. >= 0.0022 mm radially, far more than the 3600-gon's sagitta (r*(1-cos(pi/3600)) =
    # 7.7e-6 mm): the rasterised count must equal the lattice-point count exactly
    r = 20.3
    g = Geometry((1, 51, 51), (1.0, 1.0, 1.0), (-25.0, -25.0, 0.0))
    path = _structure_set(tmp_path / "c.dcm", {"disc": [_contour(_circle(r, 0.0))]})
    n = int(read_rtstruct(path, g)["disc"].sum())
    i = np.arange(-25, 26)
    lattice = int(np.sum(i[:, None] ** 2 + i[None, :] ** 2 < r * r))
    assert n == lattice
    # analytic: pi r^2 = 1294.6; every voxel centre counted lies within r + sqrt(2)/2 and
    # covers the disc of radius r - sqrt(2)/2, so pi (r -/+ 0.7071)^2 bounds the area
    assert np.pi * (r - 0.7071) ** 2 < n < np.pi * (r + 0.7071) ** 2
    assert abs(n - np.pi * r * r) / (np.pi * r * r) < 0.01


def test_sphere_volume_matches_lattice_count_and_four_thirds_pi_r3(tmp_path):
    # anisotropic grid (0.8, 1.2, 2.0) mm, sphere R = 15.1 mm, one circular contour per slice
    R = 15.1
    g = Geometry((19, 31, 45), (0.8, 1.2, 2.0), (-17.6, -18.0, -18.0))
    zs = g.index_to_physical(np.column_stack([np.zeros(19), np.zeros(19), np.arange(19)]))[:, 2]
    contours = [_contour(_circle(np.sqrt(R * R - z * z), z, n=2000)) for z in zs if abs(z) < R]
    path = _structure_set(tmp_path / "s.dcm", {"sphere": contours})
    n = int(read_rtstruct(path, g)["sphere"].sum())
    c = g.voxel_centres()
    d2 = np.sum(c**2, axis=-1)
    # no centre near the surface: |d^2 - R^2| > 0.01 mm^2 puts every centre >= 3.3e-4 mm from
    # the circle of its slice, above the 2000-gon's sagitta (15.1 (1 - cos(pi/2000)) = 1.9e-5)
    assert np.min(np.abs(d2 - R * R)) > 0.01
    assert n == int(np.sum(d2 < R * R))
    v_vox = g.voxel_volume_ml * 1000.0  # mm^3
    exact = 4 / 3 * np.pi * R**3
    half_diag = 0.5 * np.linalg.norm(g.spacing_mm)
    assert 4 / 3 * np.pi * (R - half_diag) ** 3 < n * v_vox < 4 / 3 * np.pi * (R + half_diag) ** 3
    assert abs(n * v_vox - exact) / exact < 0.02


def _square(x0, x1, y0, y1, z):
    return [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)]


def test_even_odd_hole_and_two_components_by_hand(tmp_path):
    # outer square [-0.5, 9.5]^2 holds 10 x 10 centres, the hole [2.5, 6.5]^2 holds 4 x 4,
    # a separate square [11.5, 13.5]^2 holds 2 x 2: 100 - 16 + 4 = 88 voxels
    g = Geometry((3, 16, 16), (1.0, 1.0, 2.0))
    path = _structure_set(tmp_path / "h.dcm", {"roi": [
        _contour(_square(-0.5, 9.5, -0.5, 9.5, 2.0)),
        _contour(_square(2.5, 6.5, 2.5, 6.5, 2.0)),
        _contour(_square(11.5, 13.5, 11.5, 13.5, 2.0))]})
    m = read_rtstruct(path, g)["roi"]
    assert m.sum() == 88 and m[1].sum() == 88
    assert not m[1, 4, 4] and m[1, 0, 0] and m[1, 12, 12]


def test_contour_goes_to_nearest_slice_and_nearest_plane_wins(tmp_path):
    # slices at z = 0, 5, 10 mm. A contour at z = 6.9 belongs to slice 1 (|6.9-5| < 2.5);
    # a second, larger contour at z = 4.2 is nearer to slice 1's centre and replaces it
    g = Geometry((3, 10, 10), (1.0, 1.0, 5.0))
    path = _structure_set(tmp_path / "p.dcm", {
        "one": [_contour(_square(-0.5, 1.5, -0.5, 1.5, 6.9))],
        "two": [_contour(_square(-0.5, 1.5, -0.5, 1.5, 6.9)),
                _contour(_square(-0.5, 3.5, -0.5, 3.5, 4.2))]})
    masks = read_rtstruct(path, g)
    assert masks["one"].sum() == 4 and masks["one"][1].sum() == 4
    assert masks["two"].sum() == 16 and masks["two"][1].sum() == 16


def test_warnings_for_contours_off_the_grid(tmp_path):
    g = Geometry((2, 6, 6), (1.0, 1.0, 2.0))
    path = _structure_set(tmp_path / "w.dcm", {
        "clipped": [_contour(_square(-3.5, 2.5, -0.5, 2.5, 0.0))],
        "nowhere": [_contour(_square(0.5, 2.5, 0.5, 2.5, 30.0))],
        "tilted": [_contour([(0, 0, 0), (3, 0, 0), (3, 3, 2.0), (0, 3, 2.0)])],
        "points": [_contour([(1, 1, 0)])]})
    path_ds = pydicom.dcmread(path)
    path_ds.ROIContourSequence[3].ContourSequence[0].ContourGeometricType = "POINT"
    path_ds.save_as(path)
    with pytest.warns(TheradoseWarning) as rec:
        masks = read_rtstruct(path, g)
    text = " | ".join(str(w.message) for w in rec)
    assert "'clipped': contours 1 reaching beyond the grid (clipped)" in text
    assert "'nowhere': contours 1 on no slice of the grid" in text
    assert "'tilted': contours 1 not parallel to the slices" in text
    assert "'points': 1 contour(s) not CLOSED_PLANAR ignored" in text
    assert str(path) in text
    assert masks["clipped"].sum() == 3 * 3  # x in [0, 2], y in [0, 2] on slice 0
    assert not masks["nowhere"].any() and not masks["tilted"].any()


def test_rtstruct_written_attributes(tmp_path):
    g = _geometry(np.eye(3))
    dss = ct_datasets(g)
    masks = _masks(g.shape)
    out = write_rtstruct(masks, tmp_path / "rs.dcm", reference=dss,
                         colors={"ring": (1, 2, 3)}, structure_set_label="cycle1")
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    assert ds.Modality == "RTSTRUCT" and ds.StructureSetLabel == "cycle1"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ImplicitVRLittleEndian
    assert (ds.PatientID, ds.StudyInstanceUID) == ("RT-001", dss[0].StudyInstanceUID)
    fr = ds.ReferencedFrameOfReferenceSequence[0]
    assert fr.FrameOfReferenceUID == dss[0].FrameOfReferenceUID
    series = fr.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == dss[0].SeriesInstanceUID
    assert [c.ReferencedSOPInstanceUID for c in series.ContourImageSequence] == \
        [d.SOPInstanceUID for d in dss]
    assert [r.ROIName for r in ds.StructureSetROISequence] == list(masks)
    assert [int(o.ReferencedROINumber) for o in ds.RTROIObservationsSequence] == [1, 2, 3, 4, 5]
    ring = ds.ROIContourSequence[0]
    assert list(ring.ROIDisplayColor) == [1, 2, 3]
    assert "ContourSequence" not in ds.ROIContourSequence[4]  # the empty ROI
    # each contour references the CT slice it lies on, and lies in that slice's plane
    for c in ring.ContourSequence:
        pts = np.asarray(c.ContourData, float).reshape(-1, 3)
        k = round(g.physical_to_index(pts)[0, 2])
        np.testing.assert_allclose(g.physical_to_index(pts)[:, 2], k, atol=1e-6)
        assert c.ContourImageSequence[0].ReferencedSOPInstanceUID == dss[k].SOPInstanceUID
        assert c.ContourGeometricType == "CLOSED_PLANAR"
        assert int(c.NumberOfContourPoints) * 3 == len(c.ContourData)


def test_labelmap_round_trip_and_overlap(tmp_path):
    g = _geometry(np.eye(3))
    dss = ct_datasets(g)
    lab = np.zeros(g.shape, np.uint8)
    lab[1:3, 2:8, 3:9] = 4
    lab[3, 5:9, 5:15] = 9
    lm = LabelMap(lab, g, names={4: "liver", 9: "kidney_left"})
    out = write_rtstruct(lm, tmp_path / "rs.dcm", reference=dss)
    back = rtstruct_to_labelmap(out, dss)
    assert back.names == {1: "liver", 2: "kidney_left"}
    np.testing.assert_array_equal(back.mask("liver"), lm.mask("liver"))
    np.testing.assert_array_equal(back.mask("kidney_left"), lm.mask("kidney_left"))
    assert back.meta["frame_of_reference_uid"] == dss[0].FrameOfReferenceUID
    masks = _masks(g.shape)
    out2 = write_rtstruct(masks, tmp_path / "ov.dcm", reference=dss)
    with pytest.raises(InputError, match=r"ROIs 'ring' and 'noise' overlap in \d+ voxels") as e:
        rtstruct_to_labelmap(out2, dss)
    check_message(e.value, file=out2, field="names")
    sel = rtstruct_to_labelmap(out2, dss, names=["ring", "empty"])
    np.testing.assert_array_equal(sel.mask("ring"), masks["ring"])


def test_inputs_are_not_modified_by_reading(tmp_path):
    g = _geometry(np.eye(3))
    files = write_ct(tmp_path / "ct", g)
    out = write_rtstruct(_masks(g.shape), tmp_path / "rs.dcm", reference=tmp_path / "ct")
    before = [sha256(f) for f in [out, *files]]
    read_rtstruct(out, tmp_path / "ct")
    rtstruct_to_labelmap(out, tmp_path / "ct", names=["ring"])
    assert [sha256(f) for f in [out, *files]] == before


# ------------------------------------------------------------------ bad inputs
@pytest.fixture
def written(tmp_path):
    g = _geometry(np.eye(3))
    dss = ct_datasets(g)
    out = write_rtstruct({"a": _masks(g.shape)["ring"]}, tmp_path / "rs.dcm", reference=dss)
    return out, g, dss


def test_not_an_rtstruct(tmp_path, written):
    _, g, _ = written
    ct_file = write_ct(tmp_path / "ct2", g)[0]
    with pytest.raises(DicomTagError, match="not an RT Structure Set") as e:
        read_rtstruct(ct_file, g)
    check_message(e.value, file=ct_file, field="Modality")


def test_frame_of_reference_mismatch(tmp_path, written):
    out, g, _ = written
    other = ct_volume(ct_datasets(g), g)  # new FrameOfReferenceUID
    with pytest.raises(GeometryMismatchError, match="frame of reference") as e:
        read_rtstruct(out, other)
    check_message(e.value, file=out, field="ReferencedFrameOfReferenceUID")


def test_unknown_referenced_roi_number(tmp_path, written):
    out, g, _ = written
    ds = pydicom.dcmread(out)
    ds.ROIContourSequence[0].ReferencedROINumber = 7
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(DicomTagError, match="7 is not an ROINumber") as e:
        read_rtstruct(bad, g)
    check_message(e.value, file=bad, field="ReferencedROINumber")


def test_contour_data_length_mismatch(tmp_path, written):
    out, g, _ = written
    ds = pydicom.dcmread(out)
    c = ds.ROIContourSequence[0].ContourSequence[0]
    c.NumberOfContourPoints = int(c.NumberOfContourPoints) + 1
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(DicomTagError, match="expected 3 × NumberOfContourPoints") as e:
        read_rtstruct(bad, g)
    check_message(e.value, file=bad, field="ContourData")


def test_missing_roi_contour_sequence(tmp_path, written):
    out, g, _ = written
    ds = pydicom.dcmread(out)
    del ds.ROIContourSequence
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(DicomTagError, match="missing or empty") as e:
        read_rtstruct(bad, g)
    check_message(e.value, file=bad, field="ROIContourSequence")


def test_unknown_names(written):
    out, g, _ = written
    with pytest.raises(InputError, match=r"unknown ROI names \['liver'\]") as e:
        read_rtstruct(out, g, names=["liver"])
    check_message(e.value, file=out, field="names")


def test_write_needs_reference_uids(tmp_path):
    g = _geometry(np.eye(3))
    with pytest.raises(InputError, match="needs the reference series' UIDs") as e:
        write_rtstruct({"a": np.ones(g.shape, bool)}, tmp_path / "rs.dcm", reference=g)
    check_message(e.value, field="reference")


def test_write_refuses_masks_on_another_grid(tmp_path):
    g = _geometry(np.eye(3))
    dss = ct_datasets(g)
    with pytest.raises(GeometryMismatchError, match=r"mask 'a' has shape \(2, 2, 2\)") as e:
        write_rtstruct({"a": np.ones((2, 2, 2), bool)}, tmp_path / "rs.dcm", reference=dss)
    check_message(e.value, field="masks['a']")
    other = Geometry(g.shape, (1.0, 1.0, 1.0))
    with pytest.raises(GeometryMismatchError, match="label map and reference") as e:
        write_rtstruct(LabelMap(np.zeros(g.shape, np.uint8), other, names={1: "x"}),
                       tmp_path / "rs.dcm", reference=dss)
    check_message(e.value, field="spacing_mm")


@pytest.mark.parametrize(("kwargs", "masks", "field", "match"), [
    ({"colors": {"a": (0, 0, 256)}}, None, "colors", "0-255"),
    ({"colors": {"zz": (0, 0, 0)}}, None, "colors", "known ROI"),
    ({"structure_set_label": "x" * 17}, None, "structure_set_label", "16 characters"),
    ({}, {"a": np.full((5, 15, 18), 2)}, "masks['a']", "boolean or 0/1"),
    ({}, {"": np.ones((5, 15, 18), bool)}, "masks", "1-64 characters"),
    ({}, {}, "masks", "no masks"),
])
def test_bad_write_arguments(tmp_path, kwargs, masks, field, match):
    g = _geometry(np.eye(3))
    dss = ct_datasets(g)
    masks = {"a": np.ones(g.shape, bool)} if masks is None else masks
    with pytest.raises(InputError, match=match) as e:
        write_rtstruct(masks, tmp_path / "rs.dcm", reference=dss, **kwargs)
    check_message(e.value, field=field)
    assert not (tmp_path / "rs.dcm").exists()


def test_existing_output_is_not_overwritten(tmp_path, written):
    out, g, dss = written
    before = sha256(out)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_rtstruct({"b": np.ones(g.shape, bool)}, out, reference=dss)
    assert sha256(out) == before
    write_rtstruct({"b": np.ones(g.shape, bool)}, out, reference=dss, overwrite=True)
    assert list(read_rtstruct(out, g)) == ["b"]


def test_reference_folder_with_two_series(tmp_path):
    g = _geometry(np.eye(3))
    write_ct(tmp_path / "ct" / "a", g)
    write_ct(tmp_path / "ct" / "b", g)
    with pytest.raises(InputError, match="2 image series") as e:
        write_rtstruct({"a": np.ones(g.shape, bool)}, tmp_path / "rs.dcm",
                       reference=tmp_path / "ct")
    check_message(e.value, field="reference")


def test_real_ct_round_trip(tmp_path, ts_example):
    # real anonymised CT (512 x 512 x 20, TotalSegmentator test data): its Study/Series UIDs are
    # blank, so writing needs them; with UIDs added, thresholded masks come back exactly
    from pydicom.uid import generate_uid

    from theradose.io import read_ct

    with pytest.warns(TheradoseWarning):
        ct = read_ct(ts_example / "ct_dicom")
    masks = {"bone": ct.array > 250, "dense": ct.array > 700}
    for m in masks.values():  # four slices keep the test fast; the others stay empty
        m[:8] = False
        m[12:] = False
    with pytest.raises(InputError, match="missing: study_instance_uid, series_instance_uid"):
        write_rtstruct(masks, tmp_path / "rs.dcm", reference=ts_example / "ct_dicom")
    ref = ct.replace(meta={**ct.meta, "study_instance_uid": generate_uid(),
                           "series_instance_uid": generate_uid()})
    out = write_rtstruct(masks, tmp_path / "rs.dcm", reference=ref)
    back = read_rtstruct(out, ref)
    for k, m in masks.items():
        np.testing.assert_array_equal(back[k], m, err_msg=k)
    # the real CT's FrameOfReferenceUID is kept, so the folder itself places the contours
    back = read_rtstruct(out, ts_example / "ct_dicom", names=["bone"])
    np.testing.assert_array_equal(back["bone"], masks["bone"])
