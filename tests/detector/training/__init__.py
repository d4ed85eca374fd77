"""Tests of detector.training."""
