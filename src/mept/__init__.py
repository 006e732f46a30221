"""mept: Mixture-of-Expert Prompt Tuning on frozen transformers."""
__version__ = "0.1.0"
