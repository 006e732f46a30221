"""The names of what a run folder holds, declared once.

:class:`mept.harness.run_folder.RunFolder` owns the folder and hands these out as paths; they
live here, in the lowest layer, because readers below the harness need them too: ``analysis``
recognises the ``analysis`` folder of a run by its :data:`RUN_CONFIG`, ``core.prompt_init``
reads the adapter of a run's :data:`BEST`.
"""

RUN_CONFIG = "run_config.json"  # the settings
METRICS = "metrics.json"  # the scores, written when the run ends
LABELS = "labels.json"  # the output form, task specs and head classes
IDENTITY = "identity.json"  # the label map's and backbone's fingerprints (mept.harness.identity)
INCOMPLETE = ".incomplete"  # present while a run is unfinished
BEST = "best"  # the adapter of the best validation score
CHECKPOINT = "checkpoint"  # the last resumable state (mept.harness.checkpoint)
EVAL_PREFIX = "eval_"  # `mept eval` writes eval_SPLIT_TASKS.json and eval_file_STEM.json (mept.harness.eval_run)
ANALYSIS_DIR = "analysis"  # where `mept analyze RUN` writes its report by default (mept.analysis.report)
# Folders of a run's parts: one per seed of a multi-seed run (seed-N), per point of an lr grid (lr-X) or of the
# paper's search (search-mM-nrN-lrX)
SEED_PREFIX = "seed-"
LR_PREFIX = "lr-"
SEARCH_PREFIX = "search-"
