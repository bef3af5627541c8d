"""What the operators, the sensor and the trigger share: their arguments (checked once), the window a run
covers, progress lines for the task log, and the one condition a sensor waits for."""
