"""Tests of the modeling layer."""
