"""Benchmarks: each prints JSON, compares against a baseline measured in the same run."""
