"""Analytics on a camera's tracks: zone visits, dwell alerts, line crossings, occupancy."""

from analytics.scene import LEFT_TO_RIGHT, RIGHT_TO_LEFT, Line, SceneAnalyzer, SceneRules, Zone

__all__ = ["LEFT_TO_RIGHT", "RIGHT_TO_LEFT", "Line", "SceneAnalyzer", "SceneRules", "Zone"]
