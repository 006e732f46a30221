"""File helpers every layer may use: atomic writes, size limits on what we read, user paths, safe
file names, and the ownership marks that say which outputs mept wrote. Imports only
:mod:`mept.errors`.
"""
