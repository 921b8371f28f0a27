"""``theradose convert``: DICOM image series → NIfTI + JSON sidecar (for the NIfTI study layout)."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import click

from theradose._logging import progress
from theradose.cli._main import CONTEXT, cli
from theradose.errors import InputError

_EXT = ".nii.gz"


def _name(vol, index: int) -> str:
    t = vol.acquisition_time.strftime("%Y%m%dT%H%M%S") if vol.acquisition_time else f"{index:03d}"
    desc = re.sub(r"[^A-Za-z0-9]+", "-", str(vol.meta.get("series_description") or "")).strip("-")
    return "_".join(p for p in (vol.modality.lower(), t, desc[:40]) if p) + _EXT


def unique_names(volumes: list) -> list[str]:
    """Output file names, one per volume, never the same twice.

    Series that would share a name (same modality, acquisition time and description, e.g. two
    reconstructions of one acquisition) all get a suffix from their SeriesInstanceUID (the
    first 8 hex digits of its SHA-1), so that the names do not depend on the reading order;
    the volume's index is added if that is not enough (blank or equal UIDs).
    """
    names = [_name(v, i) for i, v in enumerate(volumes)]
    counts = Counter(names)
    out: list[str] = []
    for i, (n, v) in enumerate(zip(names, volumes, strict=True)):
        if counts[n] > 1:
            uid = str(v.meta.get("series_instance_uid") or "")
            tag = hashlib.sha1(uid.encode()).hexdigest()[:8] if uid else f"{i:03d}"
            n = f"{n.removesuffix(_EXT)}_{tag}{_EXT}"
        out.append(n)
    taken = Counter(out)
    return [f"{n.removesuffix(_EXT)}_{i:03d}{_EXT}" if taken[n] > 1 else n
            for i, n in enumerate(out)]


def convert_dicom_folder(source: str | Path, out: str | Path, *,
                         calibration_cps_per_mbq: float | None = None,
                         overwrite: bool = False) -> list[Path]:
    """Write every CT, NM and PT series below ``source`` as NIfTI + sidecar into ``out``.

    Other objects (RT Dose, RTSTRUCT, SEG, ...) are skipped. ``out`` must not lie inside
    ``source`` (inputs are never written into). Two series never share an output file,
    ``overwrite`` or not (see :func:`unique_names`).

    Returns
    -------
    list of Path
        The NIfTI files written, in acquisition-time order.
    """
    from theradose.io import list_series, read_dicom_series, write_nifti
    from theradose.io._dicom_common import read_dataset

    src, dst = Path(source).resolve(), Path(out).resolve()
    if dst == src or src in dst.parents:
        raise InputError("output folder lies inside the input folder; inputs are never "
                         "written into, choose another --out", file=out, field="out")
    series = list_series(src)
    volumes = []
    for uid, files in progress(series.items(), desc="reading series", total=len(series)):
        modality = str(getattr(read_dataset(files[0], stop_before_pixels=True), "Modality", ""))
        if modality not in ("CT", "NM", "PT"):
            continue
        cal = calibration_cps_per_mbq if modality == "NM" else None
        volumes.append(read_dicom_series(files, series_uid=uid or None,
                                         calibration_cps_per_mbq=cal))
    if not volumes:
        raise InputError("no CT, NM or PT image series found", file=source, field="Modality")
    volumes.sort(key=lambda v: (v.acquisition_time is None, v.acquisition_time, v.modality))
    written = []
    for vol, name in zip(volumes, unique_names(volumes), strict=True):
        written.append(write_nifti(vol, dst / name, overwrite=overwrite))
    return written


@cli.command("convert", context_settings=CONTEXT)
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Folder for the NIfTI files and sidecars (created; not inside SOURCE).")
@click.option("--calibration-cps-per-mbq", "calibration", type=float, default=None,
              help="SPECT sensitivity (cps/MBq): write counts images as Bq/mL.")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def convert(source: str, out: str, calibration: float | None, overwrite: bool) -> None:
    """Convert the DICOM CT, NM and PT series in SOURCE to NIfTI + JSON sidecars in OUT."""
    from theradose.pipeline._config import check_calibration

    if calibration is not None:
        check_calibration(calibration, field="--calibration-cps-per-mbq")
    for p in convert_dicom_folder(source, out, calibration_cps_per_mbq=calibration,
                                  overwrite=overwrite):
        click.echo(str(p))
