"""Episodes into the layouts training code already reads: robomimic, LeRobot v3.0, ALOHA/ACT.

One module per format; what every format shares lives beside them: which episodes are taken
(`episodes.py`: outcome, quality masks, validation), the checked arrays they are built from
(`arrays.py`), and the folder or file written under a temporary name (`staging.py`).
"""
