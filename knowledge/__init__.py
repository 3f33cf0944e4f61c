"""The anatomy knowledge tree and free-text resolution (`prosector.knowledge`).

    from prosector.knowledge import load_tree, resolve
    tree = load_tree(); tree.get("adrenal_gland_left").name; tree.leaves("kidney")
    resolve("L adrenal").to_dict()
"""
from .codes import snomed_code
from .resolution import Match, Resolution, Unresolved
from .resolver import SCOPES, resolve
from .tree import Concept, Tree, TreeDataError, load_tree

__all__ = ["Concept", "Match", "Resolution", "SCOPES", "Tree", "TreeDataError", "Unresolved", "load_tree", "resolve", "snomed_code"]
