"""Views and projections: pure folds over the log, and their rebuild."""

from .base import Projection
from .views import InlineViews, fold, rows

__all__ = ["InlineViews", "Projection", "fold", "rows"]
