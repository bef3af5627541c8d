"""Sensors: wait until a window holds conversations, or until its conversations are final."""
