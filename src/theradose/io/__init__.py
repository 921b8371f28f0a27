"""Reading and writing images, masks and studies.

DICOM (CT, NM SPECT, PT, RT Dose, RTSTRUCT, SEG), NIfTI + JSON sidecar, and the ``Study`` loader
that orders time points by acquisition time. Inputs are never modified; writers refuse to
overwrite existing files unless told to.
"""

from theradose.io._administration import Administration
from theradose.io._decay import undo_decay_correction
from theradose.io._dicom_read import list_series, read_ct, read_dicom_series, read_nm, read_pt
from theradose.io._dicom_write import DicomStudyInfo, write_ct_series, write_nm, write_pt_series
from theradose.io._nifti import (
    read_labelmap,
    read_nifti,
    read_sidecar,
    sidecar_path,
    write_labelmap,
    write_nifti,
)
from theradose.io._outputs import atomic_path, prepare_output
from theradose.io._radiopharmaceutical import parse_nuclide_name
from theradose.io._rtdose import read_rtdose, write_rtdose
from theradose.io._rtstruct import read_rtstruct, rtstruct_to_labelmap, write_rtstruct
from theradose.io._seg import read_seg, read_seg_masks, write_seg
from theradose.io._study import Study, TimePoint, load_study
from theradose.io._suv import suv_bw_factor, to_suv
from theradose.io._uids import reproducible_dicom
from theradose.io._walk import study_files

__all__ = [
    "Administration",
    "DicomStudyInfo",
    "Study",
    "TimePoint",
    "atomic_path",
    "list_series",
    "load_study",
    "parse_nuclide_name",
    "prepare_output",
    "read_ct",
    "read_dicom_series",
    "read_labelmap",
    "read_nifti",
    "read_nm",
    "read_pt",
    "read_rtdose",
    "read_rtstruct",
    "read_seg",
    "read_seg_masks",
    "read_sidecar",
    "reproducible_dicom",
    "rtstruct_to_labelmap",
    "sidecar_path",
    "study_files",
    "suv_bw_factor",
    "to_suv",
    "undo_decay_correction",
    "write_ct_series",
    "write_labelmap",
    "write_nifti",
    "write_nm",
    "write_pt_series",
    "write_rtdose",
    "write_rtstruct",
    "write_seg",
]
