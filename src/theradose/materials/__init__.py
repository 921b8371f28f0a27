"""CT calibration: HU → mass density (Schneider 2000 by default) and → material classes."""

from theradose.materials._ct_calibration import (
    DEFAULT_MATERIAL_CLASSES,
    SCHNEIDER_2000,
    HUCalibration,
    MaterialClasses,
    hu_to_density,
    hu_to_material,
)

__all__ = [
    "DEFAULT_MATERIAL_CLASSES",
    "SCHNEIDER_2000",
    "HUCalibration",
    "MaterialClasses",
    "hu_to_density",
    "hu_to_material",
]
