"""Operator signals shared by every layer: the Prometheus metric objects (:mod:`observability.metrics`).

A package of its own, below every app, so ``channels_app``, ``escalation`` and ``callsphere`` can all record
into the same metrics without importing each other. It imports no Django code.
"""
