"""Tabletop drills: scenarios, scripted responders, injected faults, expectations, scoring.

A scenario (``kind: Scenario``, :mod:`flows.drills.models`) is loaded and checked by
:mod:`flows.drills.load`, run on a simulated clock by :func:`flows.drills.run.run_scenario`,
scored by :mod:`flows.drills.expect` and reported by :mod:`flows.drills.report`.
"""
