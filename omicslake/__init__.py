"""Omicslake: public omics data into a zero-copy DuckLake."""

__version__ = "0.1.0"
