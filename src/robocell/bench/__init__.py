"""Benchmarks as library code: the scripts in ``benchmarks/`` call these and print tables."""
