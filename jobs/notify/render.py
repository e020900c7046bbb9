"""Render messages per channel and locale from Jinja2 templates.

HTML is autoescaped; plain-text parts lose control characters (a hostile item name cannot
inject line breaks into an SMS or a header); push and SMS bodies are cut to their limits.
The ``kind`` fact (recommendation, campaign, cart_abandonment, price_drop, back_in_stock,
browse_intent) picks the wording.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).parent / "templates"
SUPPORTED_LOCALES = ("en", "zh-CN")
# Channel length limits (characters) for the body.
BODY_LIMITS = {"push": 178, "sms": 160}


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _plain(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def render_message(channel: str, locale: str, context: dict) -> dict[str, str]:
    """Title and body (and HTML for email) for one message; falls back to English."""
    locale = locale if locale in SUPPORTED_LOCALES else "en"
    env = _environment()
    title = _plain(env.get_template(f"{locale}/title.txt").render(**context))
    body = _plain(env.get_template(f"{locale}/body.txt").render(**context))
    limit = BODY_LIMITS.get(channel)
    if limit and len(body) > limit:
        body = body[: limit - 1] + "…"
    message = {"title": title, "body": body}
    if channel == "email":
        message["html"] = env.get_template(f"{locale}/body.html").render(**context).strip()
    return message
