"""Benchmarks, all behind ``derender bench NAME``: each compares within one run, so a
loaded machine affects both sides of a ratio alike."""
