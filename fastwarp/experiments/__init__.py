"""Benchmarks and experiments, outside the core import path (``import fastwarp``
loads none of them): the ``fastwarp bench`` runner (``benchmark``, with
``baselines``, ``breadth``, ``patterns``, ``report``), the STN training loop
(``stn``) and the GTSRB loader (``gtsrb``)."""
