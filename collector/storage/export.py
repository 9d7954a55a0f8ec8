"""The robomimic export moved to `collector.export.robomimic`; this name still imports it."""

from collector.export.robomimic import Exported, export_robomimic

__all__ = ["Exported", "export_robomimic"]
