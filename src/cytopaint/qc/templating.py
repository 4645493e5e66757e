"""The QC pages' templates (package data under ``templates/``), read once and filled with `string.Template`.

Pages and fragments (``*.html``) hold ``$name`` placeholders; stylesheets and scripts (``*.css``,
``*.js``) go into them as values, verbatim, and are never parsed as templates. Fragments
(``card.html``, ``views.html``) have no final newline: their text goes into the page as it is.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from string import Template


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of ``templates/<name>``."""
    return files("cytopaint.qc").joinpath(f"templates/{name}").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _template(name: str) -> Template:
    return Template(asset(name))


def fill(name: str, **values: object) -> str:
    """``templates/<name>`` with each ``$name`` replaced by its value; a missing value raises KeyError."""
    return _template(name).substitute(values)
