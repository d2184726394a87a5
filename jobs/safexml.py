"""The lxml parser for XML that comes from outside (DataFlux flows, HTTP and SOAP responses).

Entities are never expanded, nothing is fetched from the network, no DTD is loaded and no
tree may grow past lxml's limits; comments and processing instructions are dropped. A new
parser per document: an lxml parser is not to be shared between threads.
"""

from __future__ import annotations

from lxml import etree


def safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
