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
