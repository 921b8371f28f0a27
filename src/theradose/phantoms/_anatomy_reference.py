"""Calibrated scale factors of the reference phantoms (output of ``calibrate_reference``).

Regenerate with ``python benchmarks/phantom_anatomy.py --calibrate`` after changing the template;
the numbers below were fitted at 3 mm voxels with 3×3×3 sub-sampling (fixed-point iteration on
the ICRP-89 masses). ``k``: organ scale factors about the organ centre (1 = ORNL size after the
body scaling); ``s_t``: transverse body scale; ``t_cortical_cm``: cortical shell thickness of the
template bones; ``bladder_wall_cm``: bladder wall thickness; ``heart_inner``: blood-pool / heart
axis ratio.
"""

__all__ = ["REFERENCE_PARAMS"]

REFERENCE_PARAMS: dict[str, dict] = {
    "male": {
        "s_t": 0.97135, "t_cortical_cm": 0.19215,
        "bladder_wall_cm": 0.26759, "heart_inner": 0.84553,
        "k": {
            "brain": 0.99354,
            "heart": 1.05154,
            "kidneys": 1.03552,
            "lacrimal_glands": 1.02435,
            "liver": 1.00307,
            "lungs": 1.11848,
            "pancreas": 1.03400,
            "parotid_glands": 1.04301,
            "prostate": 1.05182,
            "small_bowel": 0.87391,
            "spleen": 0.95542,
            "stomach": 1.02477,
            "submandibular_glands": 1.07008,
            "testes": 1.03040,
            "thyroid_gland": 1.02905,
            "urinary_bladder": 1.02278,
        },
    },
    "female": {
        "s_t": 0.90900, "t_cortical_cm": 0.21142,
        "bladder_wall_cm": 0.21656, "heart_inner": 0.84073,
        "k": {
            "brain": 0.99551,
            "heart": 1.02154,
            "kidneys": 1.07076,
            "lacrimal_glands": 1.06084,
            "liver": 0.99259,
            "lungs": 1.11025,
            "ovaries": 1.11801,
            "pancreas": 1.05384,
            "parotid_glands": 1.00647,
            "small_bowel": 0.90396,
            "spleen": 0.97920,
            "stomach": 1.07586,
            "submandibular_glands": 1.03250,
            "thyroid_gland": 1.01376,
            "urinary_bladder": 1.09956,
            "uterus": 1.09395,
        },
    },
}
