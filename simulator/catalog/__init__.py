"""Image and key catalogues: the built-in default, JSON files, and a generator for large ones."""

from simulator.catalog.loader import CatalogError, ProjectCatalog, load_catalog

__all__ = ["CatalogError", "ProjectCatalog", "load_catalog"]
