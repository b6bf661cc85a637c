"""Faust agents: loops that read, call plain functions from ``pipeline``, send and record."""
