"""Analytics on a camera's tracks: zone visits, dwell alerts, line crossings, occupancy."""

from analytics.scene import Line, SceneAnalyzer, SceneRules, Zone

__all__ = ["Line", "SceneAnalyzer", "SceneRules", "Zone"]
