"""Calibrated scale factors of the reference phantoms (output of ``calibrate_reference``).

Regenerate with ``python benchmarks/phantom_anatomy.py --calibrate`` after changing the template;
the numbers below were fitted at 3 mm voxels with 3×3×3 sub-sampling (fixed-point iteration on
the ICRP-89 masses), with the body split into adipose tissue and muscle (``_anatomy_adipose``).
``k``: organ scale factors about the organ centre (1 = ORNL size after the
body scaling); ``s_t``: transverse body scale; ``t_cortical_cm``: cortical shell thickness of the
template bones; ``bladder_wall_cm``: bladder wall thickness; ``heart_inner``: blood-pool / heart
axis ratio.
"""

__all__ = ["REFERENCE_PARAMS"]

REFERENCE_PARAMS: dict[str, dict] = {
    "male": {
        "s_t": 0.97883, "t_cortical_cm": 0.19507,
        "bladder_wall_cm": 0.26790, "heart_inner": 0.84562,
        "k": {
            "brain": 0.99356,
            "heart": 1.04689,
            "kidneys": 1.03162,
            "lacrimal_glands": 1.02329,
            "liver": 0.99677,
            "lungs": 1.11276,
            "pancreas": 1.02801,
            "parotid_glands": 1.04326,
            "prostate": 1.04726,
            "small_bowel": 0.86910,
            "spleen": 0.95108,
            "stomach": 1.01986,
            "submandibular_glands": 1.06997,
            "testes": 1.02405,
            "thyroid_gland": 1.02849,
            "urinary_bladder": 1.01826,
        },
    },
    "female": {
        "s_t": 0.92376, "t_cortical_cm": 0.21271,
        "bladder_wall_cm": 0.21657, "heart_inner": 0.84068,
        "k": {
            "brain": 0.99552,
            "heart": 1.02156,
            "kidneys": 1.07104,
            "lacrimal_glands": 1.06183,
            "liver": 0.99164,
            "lungs": 1.11021,
            "ovaries": 1.12036,
            "pancreas": 1.05382,
            "parotid_glands": 1.00648,
            "small_bowel": 0.90361,
            "spleen": 0.97908,
            "stomach": 1.07581,
            "submandibular_glands": 1.03271,
            "thyroid_gland": 1.01192,
            "urinary_bladder": 1.09956,
            "uterus": 1.09381,
        },
    },
}
