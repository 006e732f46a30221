"""The harness around a model: settings (``train_config``), preparation (``prepare_run``), the
training loop (``train``, ``train_loop``, ``checkpoint``, ``resume_state``), the run folder
(``run_folder``, ``identity``, ``run_report``), evaluation and prediction (``evaluate``,
``eval_run``, ``predictions``), ``mept analyze``'s run (``analyze_run``) and ``mept compare``
(``compare``, ``stats``). Imports the model, data and analysis layers; never the CLI.
"""
