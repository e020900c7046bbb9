"""Render messages per channel and locale from Jinja2 templates.

HTML is autoescaped; plain-text parts lose control characters (a hostile item name cannot
inject line breaks into an SMS or a header); push and SMS bodies are cut to their limits.
The ``kind`` fact (recommendation, campaign, cart_abandonment, price_drop, back_in_stock,
browse_intent) picks the wording. A campaign variant's ``template`` fact (A/B/n message tests)
picks another wording from ``<locale>/variants/<template>/``; a part the variant does not
have is the locale's usual one.
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
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,40}$")


def template_exists(template: str) -> bool:
    """True when a variant template of that name exists (in English at least)."""
    return bool(_TEMPLATE_NAME.match(template)) and (TEMPLATES_DIR / "en" / "variants" / template).is_dir()


def _part(locale: str, template: str | None, part: str) -> str:
    """The template file of one part: the variant's in the locale, else in English, else the usual one."""
    if not template:
        return f"{locale}/{part}"
    if not template_exists(template):
        raise ValueError(f"no message template {template!r} under {TEMPLATES_DIR}/en/variants")
    for candidate in (locale, "en"):
        if (TEMPLATES_DIR / candidate / "variants" / template).is_dir():
            path = f"{candidate}/variants/{template}/{part}"
            return path if (TEMPLATES_DIR / path).is_file() else f"{candidate}/{part}"
    raise AssertionError("unreachable: template_exists checked the English folder")


def _plain(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()


def render_message(channel: str, locale: str, context: dict) -> dict[str, str]:
    """Title and body (and HTML for email) for one message; falls back to English."""
    locale = locale if locale in SUPPORTED_LOCALES else "en"
    env = _environment()
    template = context.get("template")
    title = _plain(env.get_template(_part(locale, template, "title.txt")).render(**context))
    body = _plain(env.get_template(_part(locale, template, "body.txt")).render(**context))
    limit = BODY_LIMITS.get(channel)
    if limit and len(body) > limit:
        body = body[: limit - 1] + "…"
    message = {"title": title, "body": body}
    if channel == "email":
        message["html"] = env.get_template(_part(locale, template, "body.html")).render(**context).strip()
    return message
