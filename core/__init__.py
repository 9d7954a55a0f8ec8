"""The shared core below drivers/ and collector/: what both need and nothing else.

It imports only the standard library, numpy/cv2 and schemas/, so a driver can use it without
loading the pipeline, storage or Ray (the import-linter contracts in pyproject hold this).
"""
