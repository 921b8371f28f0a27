"""Image features of VOIs for prediction and outcome models.

First part (issue 18): SUV metrics of PET VOIs (:func:`suv_metrics`). Radiomics, dosiomics and
DVH features follow.
"""

from theradose.features._suv_metrics import PEAK_RADIUS_MM, suv_metrics

__all__ = ["PEAK_RADIUS_MM", "suv_metrics"]
