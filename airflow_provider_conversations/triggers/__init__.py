"""Deferrable triggers: the waiting half of the conversations sensor, run on the triggerer."""
