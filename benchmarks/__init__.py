"""Reproducible benchmarks of libtrace; each prints one JSON object (see README.md)."""
