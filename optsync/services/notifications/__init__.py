"""Notifications of failed runs and stuck pushes: settings, channels, dispatch."""
