"""Analytics on a camera's tracks: zone visits, dwell alerts, line crossings, occupancy."""

from analytics.geometry import LEFT_TO_RIGHT, RIGHT_TO_LEFT, Line, Zone, scene_layout
from analytics.scene import SceneAnalyzer, SceneRules

__all__ = [
    "LEFT_TO_RIGHT",
    "RIGHT_TO_LEFT",
    "Line",
    "SceneAnalyzer",
    "SceneRules",
    "Zone",
    "scene_layout",
]
