"""archive-twins: identical images, same-pixel files and transformed copies in image archives."""

__version__ = "0.1.0"
