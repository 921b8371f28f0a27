"""import_masks (SEG, RTSTRUCT, NIfTI), lesions on a virtual patient's PET, TotalSegmentator."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from theradose.errors import (
    InputError,
    OptionalDependencyError,
    UnreadableFileError,
)
from theradose.io import (
    read_ct,
    read_labelmap,
    read_pt,
    to_suv,
    write_labelmap,
    write_rtstruct,
)
from theradose.phantoms import SimulationConfig, simulate_patient
from theradose.segmentation import import_masks, segment_lesions, totalsegmentator
from theradose.volume import Geometry, LabelMap, Volume


@pytest.fixture(scope="module")
def vp(tmp_path_factory):
    out = tmp_path_factory.mktemp("vp") / "vp"
    return simulate_patient(out, seed=3, config=SimulationConfig(
        voxel_mm=8.0, n_lesions=3, motion=False, times_h=(24.0,)))


@pytest.fixture(scope="module")
def ct(vp):
    return read_ct(vp.dicom / "tp1_24h" / "ct")


def _dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def test_seg_rtstruct_nifti_agree(vp, ct):
    seg = import_masks(vp.dicom / "tp1_24h" / "seg.dcm", ct, overlap="smaller")
    rts = import_masks(vp.dicom / "tp1_24h" / "rtstruct.dcm", ct, overlap="smaller")
    assert seg.geometry.same_as(ct.geometry) and rts.geometry.same_as(ct.geometry)
    assert "liver" in seg.labels and set(seg.labels) == set(rts.labels)
    # Independent encodings of the same VOIs (SEG frames vs RTSTRUCT contours): Dice ≥ 0.95.
    for name in ("liver", "kidney_left", "spleen"):
        assert _dice(seg.mask(name), rts.mask(name)) > 0.95
    # Truth label map (fine regions, same grid family): liver equals the SEG liver on the CT grid
    # (docs/phantoms.md: "the SEG liver equals the truth label map's liver").
    truth = import_masks(vp.truth_dir / "labels.nii.gz", ct)
    assert _dice(truth.mask("liver"), seg.mask("liver")) > 0.99


def test_nifti_resampled_nearest(tmp_path):
    # Hand example: a 2×2×2 block of label 3 on a 4 mm grid imported onto a 2 mm grid covering
    # the same space becomes a 4×4×4 block (64 voxels): nearest neighbour, names kept.
    src = np.zeros((4, 4, 4), np.uint8)
    src[1:3, 1:3, 1:3] = 3
    lm = LabelMap(src, Geometry((4, 4, 4), (4.0, 4.0, 4.0)), names={3: "liver"})
    p = write_labelmap(lm, tmp_path / "lab.nii.gz")
    ref = Geometry((8, 8, 8), (2.0, 2.0, 2.0), (-1.0, -1.0, -1.0))
    out = import_masks(p, ref)
    assert out.names == {3: "liver"} and int(out.mask("liver").sum()) == 64
    assert read_labelmap(p).array.sum() == src.sum()  # input untouched


def test_import_errors(tmp_path, vp, ct):
    geom = ct.geometry
    cases = []
    with pytest.raises(UnreadableFileError, match="does not exist") as e:
        import_masks(tmp_path / "nope.nii.gz", geom)
    cases.append((e, "path"))
    txt = tmp_path / "masks.txt"
    txt.write_text("liver")
    with pytest.raises(UnreadableFileError, match="neither NIfTI") as e:
        import_masks(txt, geom)
    cases.append((e, "path"))
    ct_file = sorted((vp.dicom / "tp1_24h" / "ct").iterdir())[0]
    with pytest.raises(InputError, match="Modality 'CT' holds no VOIs") as e:
        import_masks(ct_file, geom)
    cases.append((e, "Modality"))
    liver = import_masks(vp.dicom / "tp1_24h" / "seg.dcm", ct, overlap="smaller").mask("liver")
    core = np.zeros_like(liver)
    idx = np.argwhere(liver)[:10]
    core[tuple(idx.T)] = True
    rts = write_rtstruct({"liver": liver, "core": core}, tmp_path / "rts.dcm",
                         reference=vp.dicom / "tp1_24h" / "ct")
    with pytest.raises(InputError, match="'liver' and 'core' overlap") as e:
        import_masks(rts, ct)
    cases.append((e, "overlap"))
    both = import_masks(rts, ct, overlap="smaller")  # the smaller VOI keeps shared voxels
    assert int(both.mask("core").sum()) == 10
    assert int(both.mask("liver").sum()) == int(liver.sum()) - 10
    with pytest.raises(InputError, match="accepted: error, smaller") as e:
        import_masks(vp.dicom / "tp1_24h" / "seg.dcm", geom, overlap="first")
    cases.append((e, "overlap"))
    with pytest.raises(InputError, match="must be a Volume or Geometry") as e:
        import_masks(vp.dicom / "tp1_24h" / "seg.dcm", "ct")
    cases.append((e, "reference"))
    unnamed = write_labelmap(LabelMap(np.ones((2, 2, 2), np.uint8), Geometry((2, 2, 2), (1, 1, 1))),
                             tmp_path / "unnamed.nii.gz")
    with pytest.raises(InputError, match="no name table") as e:
        import_masks(unnamed, geom)
    cases.append((e, "names"))
    for exc, field in cases:
        assert "\n" not in str(exc.value) and exc.value.field == field
        assert exc.value.file is not None


def test_truth_lesions_found_on_pet(vp, ct):
    # Reference: the lesion centres in truth.json. Every true lesion (0.5-2 mL, PET FWHM 5 mm,
    # 4 mm voxels) must have a segmented lesion within 8 mm (2 PET voxels) of its centre.
    suv = to_suv(read_pt(vp.dicom / "pet" / "pt"))
    organs = import_masks(vp.dicom / "tp1_24h" / "seg.dcm", ct, overlap="smaller")
    keep = {v: n for v, n in organs.names.items() if not n.startswith("lesion")}
    organs = organs.replace(array=np.where(np.isin(organs.array, list(keep)), organs.array, 0)
                            .astype(organs.array.dtype), names=keep)
    lm = segment_lesions(suv, percent=40, threshold=3.0, exclude=organs)  # resampled to PET grid
    found = np.array([d["centroid_mm"] for d in lm.meta["lesions"]])
    for les in vp.truth["lesions"]:
        d = np.linalg.norm(found - np.asarray(les["centre_mm"]), axis=1).min()
        assert d < 8.0, (les["name"], d)


def test_totalsegmentator_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "totalsegmentator", None)
    ct = Volume(np.zeros((2, 2, 2)), Geometry((2, 2, 2), (1, 1, 1)), unit="HU", modality="CT")
    with pytest.raises(OptionalDependencyError, match="pip install TotalSegmentator") as exc:
        totalsegmentator(ct)
    assert "\n" not in str(exc.value) and exc.value.field == "totalsegmentator"
    with pytest.raises(InputError, match="must be in HU"):
        totalsegmentator(ct.replace(unit="Bq/mL"))


def test_totalsegmentator_adapter_with_fake_backend(monkeypatch, tmp_path):
    # A stand-in for the real package's API (same module names and call): writes a label map
    # with two lung lobes and the liver; the adapter must merge the lobes into lung_left and
    # keep the CT grid.
    import nibabel as nib

    calls = {}

    def fake_run(input, output, ml=False, fast=False, task="total", roi_subset=None,
                 device="gpu", quiet=False):
        calls.update(ml=ml, fast=fast, device=device, task=task)
        img = nib.load(input)
        lab = np.zeros(img.shape, np.uint8)
        lab[0, :, :] = 13
        lab[1, :, :] = 14
        lab[2, 0, 0] = 5
        nib.save(nib.Nifti1Image(lab, img.affine), output)

    api = types.ModuleType("totalsegmentator.python_api")
    api.totalsegmentator = fake_run
    maps = types.ModuleType("totalsegmentator.map_to_binary")
    maps.class_map = {"total": {5: "liver", 13: "lung_upper_lobe_left",
                                14: "lung_lower_lobe_left"}}
    monkeypatch.setitem(sys.modules, "totalsegmentator", types.ModuleType("totalsegmentator"))
    monkeypatch.setitem(sys.modules, "totalsegmentator.python_api", api)
    monkeypatch.setitem(sys.modules, "totalsegmentator.map_to_binary", maps)
    geom = Geometry((4, 5, 3), (1.5, 1.5, 3.0), (10.0, -20.0, 5.0))
    ct = Volume(np.zeros(geom.shape), geom, unit="HU", modality="CT")
    lm = totalsegmentator(ct)
    assert calls == {"ml": True, "fast": True, "device": "cpu", "task": "total"}
    assert lm.geometry.same_as(geom)
    assert sorted(lm.names.values()) == ["liver", "lung_left"]
    # x-index 0 and 1 (nibabel axis 0) are the two lobes: 2 × (4 × 5) voxels of lung_left.
    assert int(lm.mask("lung_left").sum()) == 40 and int(lm.mask("liver").sum()) == 1
