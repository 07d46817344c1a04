"""Benchmarks; `make bench` runs them all and prints JSON figures."""
