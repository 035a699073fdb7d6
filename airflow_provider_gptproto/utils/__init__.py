"""Pieces the operators, sensors and triggers share: result publishing and the task state record."""
