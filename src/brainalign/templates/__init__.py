"""The Jinja2 templates of brainalign's HTML pages (the report and the leaderboard), shipped as package data.

``environment()`` loads them autoescaped (text is escaped unless it is ``markupsafe.Markup``), with undefined
names an error, and a ``b64`` filter for inline images; the pages stay self-contained files.
"""

from __future__ import annotations

import base64
import functools


@functools.cache
def environment():
    """The shared Jinja2 environment over this package's ``*.j2`` files."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("brainalign", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env
