"""Importers: public grounded datasets -> MagniFake folders that ``zoomin data validate`` accepts as written.

One module per dataset holds its format (as its repository, loaders and card describe it) and its
conversion rules; :mod:`zoomin.importers.folder` writes the folder, places the images (copied or
hard-linked) and keeps the import report; :mod:`zoomin.importers.regions` turns polygons and
rectangles into clipped boxes. Each importer returns its :class:`~zoomin.importers.folder.ImportReport`.
"""

from zoomin.importers.fakeclue import import_fakeclue
from zoomin.importers.folder import ImportReport
from zoomin.importers.loki import import_loki
from zoomin.importers.swift import import_swift
from zoomin.importers.synthscars import import_synthscars
from zoomin.importers.xaigd import import_xaigd

IMPORTERS = {
    "synthscars": import_synthscars,
    "loki": import_loki,
    "xaigd": import_xaigd,
    "fakeclue": import_fakeclue,
    "swift": import_swift,
}

__all__ = ["IMPORTERS", "ImportReport", "import_fakeclue", "import_loki", "import_swift", "import_synthscars",
           "import_xaigd"]
