"""Make the figures of docs/phantoms.md from a freshly simulated virtual patient.

Run: ``python docs/scripts/phantom_figures.py [--seed 1] [--out docs/figures]``. The patient is
written to a temporary folder, read back with the same I/O a user has, and drawn: coronal
mid-slices of the CT, the pre-therapy PET and every SPECT time point, and the kidney, salivary
and lesion time-activity curves (truth and the SPECT-measured totals in the true masks).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from theradose.io import load_study, read_labelmap, read_pt
from theradose.phantoms import PatientKinetics, simulate_patient
from theradose.volume import resample


def _coronal(vol, y_mm: float) -> np.ndarray:
    j = round(float(vol.geometry.physical_to_index([0.0, y_mm, 0.0])[1]))
    j = min(max(j, 0), vol.shape[1] - 1)
    return vol.array[:, j, :]


def _extent(vol) -> list[float]:
    g = vol.geometry
    lo = g.index_to_physical([-0.5, 0, -0.5])
    hi = g.index_to_physical([g.size_xyz[0] - 0.5, 0, g.size_xyz[2] - 0.5])
    return [lo[0], hi[0], lo[2], hi[2]]


def main() -> None:
    """Simulate, read back and draw."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "figures"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        vp = simulate_patient(Path(tmp) / "vp", seed=args.seed)
        truth = vp.truth
        cal = truth["acquisitions"][1]["calibration_cps_per_mbq"]
        study = load_study(vp.dicom, calibration_cps_per_mbq=cal)
        pet = read_pt(vp.dicom / "pet" / "pt")
        labels = read_labelmap(vp.truth_dir / "labels.nii.gz")
        y_mm = float(labels.geometry.index_to_physical(
            np.argwhere(labels.mask("liver")).mean(axis=0)[::-1])[1])
        panels = [("CT (time point 1)", study.time_points[0].ct, "gray", (-400, 600))]
        panels.append(("68Ga PET (Bq/mL)", pet, "hot", None))
        panels += [(f"177Lu SPECT {tp.time_h:g} h (Bq/mL)", tp.emission, "hot", None)
                   for tp in study.time_points]
        fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 5.2))
        for ax, (title, vol, cmap, clim) in zip(axes, panels, strict=True):
            img = _coronal(vol, y_mm)
            if clim is None:
                clim = (0, np.percentile(img, 99.7))
            ax.imshow(img, cmap=cmap, origin="lower", extent=_extent(vol), vmin=clim[0],
                      vmax=clim[1], aspect="equal")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("x (mm, LPS)")
        axes[0].set_ylabel("z (mm, LPS)")
        fig.suptitle(f"Virtual patient seed {args.seed}: coronal slices (images as a user reads "
                     "them; the patient moves between acquisitions)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "phantom_slices.png", dpi=90)
        plt.close(fig)

        kin = PatientKinetics.from_dict(truth["kinetics"])
        a0 = truth["therapy"]["injected_activity_mbq"]
        t = np.linspace(0, 200, 400)
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        vois = {n: truth["organs"][n]["regions"] for n in
                ("kidney_left", "kidney_right", "salivary_glands", "liver", "spleen")
                if n in truth["organs"]}
        for n in sorted(r for r in truth["regions"] if r.startswith("lesion_"))[:2]:
            vois[n] = [n]
        for name, regions in vois.items():
            curve = sum(kin.fraction(r, t, agent="therapeutic") for r in regions) * a0
            line, = ax.plot(t, curve, label=name)
            ref = study.time_points[0].emission
            mask_img = labels.replace(array=np.isin(labels.array, [labels.labels[r] for r in
                                                                  regions]).astype(np.uint8))
            measured = []
            for tp in study.time_points:
                m = resample(mask_img, tp.emission, method="nearest").array > 0
                measured.append(tp.emission.array[m].sum() * ref.geometry.voxel_volume_ml / 1e6)
            ax.plot(study.times_h, measured, "o", color=line.get_color(), ms=4)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5)
        ax.set_xlabel("time after 177Lu injection (h)")
        ax.set_ylabel("activity (MBq)")
        ax.set_title("True time-activity curves (lines) and SPECT totals in the true masks "
                     "(dots,\nno registration, no partial-volume correction)", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "phantom_tacs.png", dpi=90)
        plt.close(fig)
    print(f"wrote {out / 'phantom_slices.png'} and {out / 'phantom_tacs.png'}")


if __name__ == "__main__":
    main()
