"""Replay recorded episodes: to the robot, to video, back through the pipeline, to plots."""
