"""Optional dependencies: import them where a feature needs them, with the install line in the error."""

from __future__ import annotations

import importlib


class MissingDependency(ImportError):
    """A feature's optional dependency is not installed; the message says which extra brings it."""


def optional_import(name: str, extra: str, purpose: str):
    """Import module ``name`` or raise :class:`MissingDependency` naming ``pip install 'fastwarp[extra]'``.

    Parameters
    ----------
    name : str
        The module to import, e.g. ``"matplotlib.pyplot"``.
    extra : str
        The fastwarp extra that installs it, e.g. ``"plot"``.
    purpose : str
        What needs it, for the message (``"fastwarp demo's figure"``).
    """
    try:
        return importlib.import_module(name)
    except ImportError as e:
        top = name.split(".")[0]
        raise MissingDependency(f"{purpose} needs {top}, which is not installed: "
                                f"pip install 'fastwarp[{extra}]'") from e
