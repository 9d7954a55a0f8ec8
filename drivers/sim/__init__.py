"""Simulated devices: one scene (`SimWorld`) seen by cameras, felt by a sensor, moved by an arm."""
