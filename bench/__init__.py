"""Benchmarks: scripts that print a table (run each with .venv/bin/python bench/NAME.py)."""
