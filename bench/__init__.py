"""pytest-benchmark suites (run with ``python -m pytest bench/ --benchmark-only``); see README.md.

A package so its module names (``bench.test_forward``) never clash with ``tests/``.
"""
