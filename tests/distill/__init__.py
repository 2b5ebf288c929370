"""Tests of the distill layer."""
