"""The station daemon behind `collector run`: state machine, control API, session accounts."""
