"""Decisions from runs: the regression gate, model ranking, capacity planning, calibration, history, JUnit."""
