"""Kinetics: time-activity curves, fitted models, time-integrated activity (issue 4)."""
