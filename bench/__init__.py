"""Benchmarks: our code against a reference doing the same work in the same run (see README.md)."""
