"""Reporting: the plots and the text summary of a saved output (reads outputs, never makes them)."""
