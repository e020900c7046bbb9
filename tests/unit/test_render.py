from jobs.notify.render import render_message

FACTS = {
    "item_title": "Trail <b>runner</b>",
    "category": "shoes",
    "price": "59.00",
    "reason": "because you viewed Road runner",
    "discount_text": None,
}


def test_email_html_is_escaped_and_text_is_not_html():
    message = render_message("email", "en", FACTS)
    assert "&lt;b&gt;runner&lt;/b&gt;" in message["html"]
    assert "<b>runner</b>" not in message["html"]
    assert message["title"] == "Picked for you: Trail <b>runner</b>"


def test_chinese_locale_and_campaign_wording():
    message = render_message("push", "zh-CN", {**FACTS, "discount_text": "五折"})
    assert "五折" in message["title"]
    assert "shoes" in message["title"]
    assert "现价 59.00" in message["body"]


def test_unknown_locale_falls_back_to_english_and_sms_is_truncated():
    long = {**FACTS, "item_title": "x" * 300}
    message = render_message("sms", "fr", long)
    assert len(message["body"]) == 160
    assert message["body"].endswith("…")


def test_every_trigger_kind_renders_in_both_locales():
    for locale in ("en", "zh-CN"):
        for kind in ("cart_abandonment", "price_drop", "back_in_stock", "browse_intent", "campaign"):
            message = render_message("email", locale, {**FACTS, "kind": kind, "old_price": "79.00"})
            assert "Trail" in message["body"] + message["html"]
            assert message["title"]
    drop = render_message("push", "en", {**FACTS, "kind": "price_drop", "old_price": "79.00"})
    assert drop == {"title": "Price drop: Trail <b>runner</b>", "body": "Trail <b>runner</b> is now 59.00 (was 79.00)."}


def test_control_characters_cannot_break_plain_text():
    message = render_message("sms", "en", {**FACTS, "item_title": "Shoe\r\nBcc: x@evil\x00"})
    assert "\n" not in message["body"]
    assert "\r" not in message["title"]
    assert "\x00" not in message["body"]
