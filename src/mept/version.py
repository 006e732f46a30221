"""The package version, in a module of its own so that saved files can be stamped without importing ``mept``."""

__version__ = "0.1.0"
