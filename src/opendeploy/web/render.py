"""The Jinja2 environment of the dashboard: templates shipped in the package, autoescaped.

The templates live in ``opendeploy/web/templates`` (package data), so an installed wheel serves
the dashboard with no build step. The helpers of :mod:`opendeploy.web.present` are the filters.
"""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import quote

import jinja2

from opendeploy.web import present


def _json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@functools.cache
def environment() -> jinja2.Environment:
    """One environment per process (templates are compiled once and cached)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("opendeploy.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        mark=present.status_mark,
        status_class=present.status_class,
        creator=present.creator_text,
        revision=present.revision_text,
        when=present.time_text,
        iso=present.iso,
        ago=present.ago_text,
        pretty=_json_pretty,
        q=lambda text: quote(str(text), safe=""),
    )
    env.globals["duration"] = present.duration_text
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
