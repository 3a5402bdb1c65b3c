"""ZoomIn: locate suspicious regions, zoom into them, examine, and give a grounded real/fake verdict."""

__version__ = "0.1.0"
