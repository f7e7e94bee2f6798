"""Views and projections: pure folds over the log, their runner, rebuild and
verify."""

from .base import Projection
from .registry import builtin
from .views import InlineViews, fold, rows

__all__ = ["InlineViews", "Projection", "builtin", "fold", "rows"]
