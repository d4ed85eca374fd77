"""Benchmarks: scripts run by hand (see benchmarks/README.md), never by the test suite."""
