"""Tests of the scripts layer."""
