"""Pipeline: one call (or ``theradose run``) from a study folder to doses, report and exports.

Public names
------------
PipelineConfig, DEFAULTS
    The typed, validated configuration (TOML sections ``[study]``, ``[registration]``,
    ``[vois]``, ``[segmentation]``, ``[kinetics]``, ``[dose]``, ``[radiobiology]``,
    ``[outputs]``); every key and default in ``docs/pipeline.md``.
run_pipeline, SCHEMA
    Load → register → VOIs → TACs/fits/TIA map → dose engines → DVH/BED → ``results.json``
    (schema ``theradose.results/1``, ``docs/results-json.md``), NIfTI maps, RT Dose, SEG and
    report; resumable (``OUT/.cache``).
run_demo, truth_block, truth_table
    The demo: a virtual patient, the pipeline run on its DICOM as a user would, and the
    estimate compared with the ground truth.
SVALUE_ORGAN
    VOI names → organs of the S-value tables.
"""

from theradose.pipeline._config import DEFAULTS, PipelineConfig
from theradose.pipeline._demo import run_demo, truth_block, truth_table
from theradose.pipeline._dose import SVALUE_ORGAN
from theradose.pipeline._run import SCHEMA, run_pipeline, write_results

__all__ = [
    "DEFAULTS",
    "SCHEMA",
    "SVALUE_ORGAN",
    "PipelineConfig",
    "run_demo",
    "run_pipeline",
    "truth_block",
    "truth_table",
    "write_results",
]
