"""Tests of detector.training.formats."""
