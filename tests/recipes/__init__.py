"""Tests of the recipes layer."""
