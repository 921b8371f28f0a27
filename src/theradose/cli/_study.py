"""``theradose study FOLDER``: what the study loader finds in a folder."""

from __future__ import annotations

import json

import click

from theradose.cli._main import CONTEXT, cli


def _grid(d: dict) -> str:
    shape = "x".join(str(n) for n in d["shape_zyx"])
    spacing = "x".join(f"{s:.3g}" for s in d["spacing_mm"])
    return f"{shape} (z,y,x) @ {spacing} mm"


@cli.command("study", context_settings=CONTEXT)
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@click.option("--nuclide", default=None, help="Therapy nuclide (e.g. Lu-177) if not in the files.")
@click.option("--activity-mbq", "activity_mbq", type=float, default=None,
              help="Injected activity (MBq) if not in the files.")
@click.option("--injection-time", default=None,
              help="Injection start, ISO 8601 local time (2024-05-01T09:30) if not in the files.")
@click.option("--calibration-cps-per-mbq", "calibration", type=float, default=None,
              help="SPECT sensitivity (cps/MBq) to convert counts images to Bq/mL.")
@click.option("--ct-tolerance-h", type=float, default=2.0, show_default=True,
              help="Largest time between an emission image and a CT paired by time (h, at "
                   "most 336: two weeks).")
@click.option("--json", "as_json", is_flag=True, help="Print the study summary as JSON.")
def study(folder: str, nuclide: str | None, activity_mbq: float | None,
          injection_time: str | None, calibration: float | None, ct_tolerance_h: float,
          as_json: bool) -> None:
    """Load the study in FOLDER (NIfTI + sidecars and/or DICOM) and list its time points.

    Also lists what the folder holds that the study does not use, and why (non-image DICOM
    series, non-DICOM files, hidden files, files reached twice through links, unpaired CTs).
    """
    from theradose.io import load_study
    from theradose.pipeline._config import check_calibration, check_ct_tolerance

    if calibration is not None:
        check_calibration(calibration, field="--calibration-cps-per-mbq")
    check_ct_tolerance(ct_tolerance_h, field="--ct-tolerance-h")
    s = load_study(folder, nuclide=nuclide, injected_activity_mbq=activity_mbq,
                   injection_time=injection_time, calibration_cps_per_mbq=calibration,
                   ct_tolerance_h=ct_tolerance_h)
    summary = s.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    a = summary["administration"]
    rp = f" ({a['radiopharmaceutical']})" if a["radiopharmaceutical"] else ""
    click.echo(f"study {summary['source']}")
    click.echo(f"administration: {a['nuclide']}{rp}, {a['injected_activity_mbq']:.6g} MBq "
               f"at {a['injection_time']}")
    click.echo(f"{len(summary['time_points'])} time point(s):")
    for tp in summary["time_points"]:
        ct = f"CT {_grid(tp['ct'])}" if tp["ct"] else "no CT"
        click.echo(f"  {tp['time_h']:9.2f} h  {tp['modality']:<2} {tp['unit']:<7} "
                   f"{_grid(tp)}; {ct}")
    if summary["pet"]:
        p = summary["pet"]
        pa = p["administration"]
        click.echo(f"pre-therapy PET: {pa['nuclide']} {pa['injected_activity_mbq']:.6g} MBq, "
                   f"{p['time_h']:.2f} h p.i., {p['unit']} {_grid(p)}")
    if summary["labels"]:
        names = summary["labels"]["names"]
        click.echo(f"labels: {len(names)} named VOI(s) on {_grid(summary['labels'])}: "
                   f"{', '.join(list(names.values())[:10])}{' ...' if len(names) > 10 else ''}")
    skipped = summary["skipped"]
    click.echo(f"skipped {len(skipped)} file(s) or series" + (":" if skipped else ""))
    for d in skipped:
        click.echo(f"  {d['file']}: {d['reason']}")
