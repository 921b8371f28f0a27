"""SEG: exact round trips, frame placement by position, segment coding, bad inputs."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from _rt_fixtures import check_message, ct_datasets, ct_volume, rotation_z, sha256, write_ct
from pydicom.sr.codedict import codes

from theradose.errors import (
    DicomTagError,
    GeometryMismatchError,
    InputError,
    OutputExistsError,
    TheradoseWarning,
)
from theradose.io import read_seg, read_seg_masks, write_rtdose, write_seg
from theradose.volume import Geometry, LabelMap, Volume

DIRECTIONS = {
    "identity": np.eye(3),
    "flipped_yz": np.diag([1.0, -1.0, -1.0]),
    "rotated_90": rotation_z(90),
}


def _geometry(direction=None):
    return Geometry((6, 14, 17), (0.9, 1.3, 2.5), (-30.2, 11.7, -40.0),
                    np.eye(3) if direction is None else direction)


def _labelmap(g, seed=3):
    rng = np.random.default_rng(seed)
    lab = np.zeros(g.shape, np.uint8)
    lab[rng.random(g.shape) < 0.3] = 3  # scattered voxels on every slice
    lab[2:4, 3:10, 4:9] = 7
    lab[2, 5:8, 5:8] = 0  # a hole
    return LabelMap(lab, g, names={3: "liver", 7: "kidney_left"})


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_labelmap_round_trip_is_exact(tmp_path, name):
    g = _geometry(DIRECTIONS[name])
    dss = ct_datasets(g)
    lm = _labelmap(g)
    out = write_seg(lm, tmp_path / "seg.dcm", reference=ct_volume(dss, g))
    for ref in (ct_volume(dss, g), g, None):
        back = read_seg(out, ref)
        assert back.geometry.same_as(g)  # without reference: the frames span every slice
        # label values become segment numbers 1, 2 (in label order); masks are identical
        assert back.names == {1: "liver", 2: "kidney_left"}
        for n in ("liver", "kidney_left"):
            np.testing.assert_array_equal(back.mask(n), lm.mask(n), err_msg=n)
    assert back.modality == "SEG"
    assert back.meta["frame_of_reference_uid"] == dss[0].FrameOfReferenceUID


def test_overlapping_masks_round_trip_and_labelmap_refusal(tmp_path):
    g = _geometry()
    dss = ct_datasets(g)
    lm = _labelmap(g)
    masks = {"liver": lm.mask("liver"), "body": lm.array > 0, "empty": np.zeros(g.shape, bool)}
    out = write_seg(masks, tmp_path / "seg.dcm", reference=dss)
    back = read_seg_masks(out, dss)
    assert list(back) == list(masks)
    for k, m in masks.items():
        np.testing.assert_array_equal(back[k], m, err_msg=k)
    with pytest.raises(InputError, match="segments 'liver' and 'body' overlap") as e:
        read_seg(out, dss)
    check_message(e.value, file=out, field="SegmentSequence")


def test_reference_as_folder_and_sparse_frames(tmp_path):
    g = _geometry()
    write_ct(tmp_path / "ct", g)
    m = np.zeros(g.shape, bool)
    m[1, 2:5, 2:6] = m[4, 2:5, 2:6] = True  # two separated slices: empty frames are omitted
    out = write_seg({"spleen": m}, tmp_path / "seg.dcm", reference=tmp_path / "ct")
    assert pydicom.dcmread(out).NumberOfFrames == 2
    np.testing.assert_array_equal(read_seg_masks(out, tmp_path / "ct")["spleen"], m)
    # without reference: the grid spanned by the frames (slices 1..4, SpacingBetweenSlices)
    native = read_seg(out)
    assert native.shape == (4, 14, 17)
    np.testing.assert_allclose(native.geometry.origin_mm, g.index_to_physical([0, 0, 1]))
    np.testing.assert_array_equal(native.mask("spleen"), m[1:5])


def test_frames_are_placed_by_position_on_a_larger_reference(tmp_path):
    # reference grid = the SEG's grid extended by 2 slices below, 3 rows and 1 column before:
    # every voxel must land at index + (2, 3, 1)
    g = _geometry()
    dss = ct_datasets(g)
    lm = _labelmap(g)
    out = write_seg(lm, tmp_path / "seg.dcm", reference=dss)
    big = Geometry((10, 20, 20), g.spacing_mm, tuple(g.index_to_physical([-1, -3, -2])))
    back = read_seg(out, big)
    expected = np.zeros(big.shape, np.uint8)
    expected[2:8, 3:17, 1:18] = np.where(lm.array == 3, 1, np.where(lm.array == 7, 2, 0))
    np.testing.assert_array_equal(back.array, expected)


def test_non_aligned_reference_is_resampled_with_a_warning(tmp_path):
    # reference with half the in-plane spacing, same corner: each voxel becomes a 2 x 2 block
    g = Geometry((2, 3, 4), (2.0, 2.0, 3.0))
    dss = ct_datasets(g)
    m = np.zeros(g.shape, bool)
    m[0, 1, 2] = m[1, 0, 0] = True
    out = write_seg({"lesion_1": m}, tmp_path / "seg.dcm", reference=dss)
    fine = Geometry((2, 6, 8), (1.0, 1.0, 3.0), (-0.5, -0.5, 0.0))
    with pytest.warns(TheradoseWarning, match="resampled with nearest neighbour"):
        back = read_seg_masks(out, fine)["lesion_1"]
    expected = np.repeat(np.repeat(m, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(back, expected)


def test_segment_codes(tmp_path):
    # SNOMED CT identifiers (published concepts): Liver 10200004, Kidney 64033007, Left 7771000,
    # Anatomical structure 91723000, Morphologically abnormal structure 49755003,
    # Lesion 52988006, Tissue 85756007
    g = _geometry()
    dss = ct_datasets(g)
    names = ["liver", "kidney_left", "lesion_2", "roi_x"]
    masks = {n: np.zeros(g.shape, bool) for n in names}
    for i, n in enumerate(names):
        masks[n][i, 0, 0] = True
    out = write_seg(masks, tmp_path / "seg.dcm", reference=dss, algorithm_name="thresh",
                    algorithm_family="HistogramAnalysis")
    ds = pydicom.dcmread(out)
    got = {s.SegmentLabel: (s.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
                            s.SegmentedPropertyTypeCodeSequence[0].CodeValue)
           for s in ds.SegmentSequence}
    assert got == {"liver": ("91723000", "10200004"), "kidney_left": ("91723000", "64033007"),
                   "lesion_2": ("49755003", "52988006"), "roi_x": ("85756007", "85756007")}
    kidney = ds.SegmentSequence[1]
    assert kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "7771000"
    assert kidney.SegmentAlgorithmType == "AUTOMATIC"
    alg = kidney.SegmentationAlgorithmIdentificationSequence[0]
    assert alg.AlgorithmName == "thresh"
    assert alg.AlgorithmFamilyCodeSequence[0].CodeValue == codes.cid7162.HistogramAnalysis.value
    assert ds.SegmentationType == "BINARY" and ds.Modality == "SEG"
    assert ds.FrameOfReferenceUID == dss[0].FrameOfReferenceUID
    assert ds.PatientID == "RT-001" and ds.StudyInstanceUID == dss[0].StudyInstanceUID
    refs = {i.ReferencedSOPInstanceUID
            for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert refs <= {d.SOPInstanceUID for d in dss}


def test_manual_segmentation_has_no_algorithm(tmp_path):
    g = _geometry()
    out = write_seg({"liver": np.ones(g.shape, bool)}, tmp_path / "s.dcm",
                    reference=ct_datasets(g), algorithm_type="manual")
    seg = pydicom.dcmread(out).SegmentSequence[0]
    assert seg.SegmentAlgorithmType == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in seg


def test_reads_a_fractional_segmentation_by_thresholding_at_half(tmp_path):
    # written independently with highdicom: probabilities 0.8 and 0.3 -> only 0.8 is inside
    g = Geometry((3, 4, 5), (1.0, 1.0, 2.0))
    dss = ct_datasets(g)
    prob = np.zeros(g.shape, np.float32)
    prob[1, 1, 1:3] = 0.8
    prob[1, 2, 1:3] = 0.3
    alg = hd.AlgorithmIdentificationSequence("x", codes.cid7162.ArtificialIntelligence, "1")
    desc = hd.seg.SegmentDescription(1, "liver", codes.SCT.Organ, codes.SCT.Liver,
                                     "AUTOMATIC", alg)
    seg = hd.seg.Segmentation(dss, prob, "FRACTIONAL", [desc], hd.UID(), 5, hd.UID(), 1, "m",
                              "m", "1", "1", max_fractional_value=255)
    seg.save_as(tmp_path / "f.dcm")
    back = read_seg_masks(tmp_path / "f.dcm", dss)["liver"]
    np.testing.assert_array_equal(back, prob >= 0.5)


def test_reads_a_labelmap_segmentation(tmp_path):
    # DICOM 2024 Label Map Segmentation written independently with highdicom: pixel values are
    # segment numbers, segment 0 is the background
    g = Geometry((3, 4, 5), (1.0, 1.0, 2.0))
    dss = ct_datasets(g)
    lab = np.zeros(g.shape, np.uint8)
    lab[0, 1, 1] = 1
    lab[2, 2, 2:4] = 2
    alg = hd.AlgorithmIdentificationSequence("x", codes.cid7162.ArtificialIntelligence, "1")
    descs = [hd.seg.SegmentDescription(1, "liver", codes.SCT.Organ, codes.SCT.Liver,
                                       "AUTOMATIC", alg),
             hd.seg.SegmentDescription(2, "spleen", codes.SCT.Organ, codes.SCT.Spleen,
                                       "AUTOMATIC", alg)]
    seg = hd.seg.Segmentation(dss, lab, "LABELMAP", descs, hd.UID(), 5, hd.UID(), 1, "m", "m",
                              "1", "1")
    seg.save_as(tmp_path / "lm.dcm")
    back = read_seg(tmp_path / "lm.dcm", dss)
    assert back.names == {1: "liver", 2: "spleen"}
    np.testing.assert_array_equal(back.array, lab)
    masks = read_seg_masks(tmp_path / "lm.dcm", dss)
    np.testing.assert_array_equal(masks["spleen"], lab == 2)


def test_inputs_are_not_modified_by_reading(tmp_path):
    g = _geometry()
    files = write_ct(tmp_path / "ct", g)
    out = write_seg(_labelmap(g), tmp_path / "seg.dcm", reference=tmp_path / "ct")
    before = [sha256(f) for f in [out, *files]]
    read_seg(out, tmp_path / "ct")
    read_seg_masks(out)
    assert [sha256(f) for f in [out, *files]] == before


# ------------------------------------------------------------------ bad inputs
def test_not_a_seg(tmp_path):
    g = _geometry()
    dose = write_rtdose(Volume(np.ones(g.shape), g, unit="Gy"), tmp_path / "d.dcm",
                        reference=ct_volume(ct_datasets(g), g))
    with pytest.raises(DicomTagError, match="not a Segmentation") as e:
        read_seg(dose)
    check_message(e.value, file=dose, field="Modality")


def test_frame_of_reference_mismatch(tmp_path):
    g = _geometry()
    out = write_seg(_labelmap(g), tmp_path / "seg.dcm", reference=ct_datasets(g))
    other = ct_volume(ct_datasets(g), g)  # a new FrameOfReferenceUID
    with pytest.raises(GeometryMismatchError, match="frame of reference") as e:
        read_seg(out, other)
    check_message(e.value, file=out, field="FrameOfReferenceUID")


def test_frame_without_position(tmp_path):
    g = _geometry()
    out = write_seg(_labelmap(g), tmp_path / "seg.dcm", reference=ct_datasets(g))
    ds = pydicom.dcmread(out)
    del ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(DicomTagError, match="frame 1 has no ImagePositionPatient") as e:
        read_seg(bad)
    check_message(e.value, file=bad, field="PlanePositionSequence")


def test_frame_refers_to_unknown_segment(tmp_path):
    g = _geometry()
    out = write_seg(_labelmap(g), tmp_path / "seg.dcm", reference=ct_datasets(g))
    ds = pydicom.dcmread(out)
    ds.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0]\
        .ReferencedSegmentNumber = 9
    bad = tmp_path / "bad.dcm"
    ds.save_as(bad)
    with pytest.raises(DicomTagError, match=r"segments \[9\]") as e:
        read_seg(bad)
    check_message(e.value, file=bad, field="ReferencedSegmentNumber")


@pytest.mark.parametrize(("kwargs", "field", "match"), [
    ({"algorithm_type": "GUESS"}, "algorithm_type", "accepted: AUTOMATIC"),
    ({"algorithm_family": "Magic"}, "algorithm_family", "CID 7162"),
])
def test_bad_write_arguments(tmp_path, kwargs, field, match):
    g = _geometry()
    with pytest.raises(InputError, match=match) as e:
        write_seg(_labelmap(g), tmp_path / "s.dcm", reference=ct_datasets(g), **kwargs)
    check_message(e.value, field=field)
    assert not (tmp_path / "s.dcm").exists()


def test_write_needs_reference_uids(tmp_path):
    g = _geometry()
    vol = Volume(np.zeros(g.shape), g, unit="HU", modality="CT")  # no UIDs in meta
    with pytest.raises(InputError, match="missing: study_instance_uid") as e:
        write_seg(_labelmap(g), tmp_path / "s.dcm", reference=vol)
    check_message(e.value, field="reference")


def test_labelmap_with_unnamed_labels(tmp_path):
    g = _geometry()
    lab = _labelmap(g)
    unnamed = LabelMap(lab.array, g, names={3: "liver"})  # 7 has no name
    with pytest.raises(InputError, match=r"label values \[7\] have no name") as e:
        write_seg(unnamed, tmp_path / "s.dcm", reference=ct_datasets(g))
    check_message(e.value, field="masks.names")


def test_existing_output_is_not_overwritten(tmp_path):
    g = _geometry()
    dss = ct_datasets(g)
    out = write_seg(_labelmap(g), tmp_path / "s.dcm", reference=dss)
    before = sha256(out)
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_seg({"x": np.ones(g.shape, bool)}, out, reference=dss)
    assert sha256(out) == before
    write_seg({"x": np.ones(g.shape, bool)}, out, reference=dss, overwrite=True)
    assert read_seg(out).names == {1: "x"}


def test_real_ct_round_trip(tmp_path, ts_example):
    # real anonymised CT (TotalSegmentator test data) with UIDs added to the blanked ones
    from pydicom.uid import generate_uid

    from theradose.io import read_ct

    with pytest.warns(TheradoseWarning):
        ct = read_ct(ts_example / "ct_dicom")
    ref = ct.replace(meta={**ct.meta, "study_instance_uid": generate_uid(),
                           "series_instance_uid": generate_uid()})
    masks = {"bone": ct.array > 250, "dense": ct.array > 700}  # overlapping
    for m in masks.values():  # four slices keep the test fast; the others stay empty
        m[:8] = False
        m[12:] = False
    out = write_seg(masks, tmp_path / "seg.dcm", reference=ref)
    for reference in (ref, ts_example / "ct_dicom"):
        back = read_seg_masks(out, reference)
        for k, m in masks.items():
            np.testing.assert_array_equal(back[k], m, err_msg=k)
