"""Notes ↔ Graph itemBody (R01): text goes out, Outlook's HTML comes back as the same text."""

from __future__ import annotations

from domain_builders import outlook_html
from hypothesis import given
from hypothesis import strategies as st

from sync_core.domain.notes import body_text, html_to_text, normalise, text_body


def test_outlook_html_body_reads_as_its_text_R01() -> None:
    html = (
        "<html><head><meta charset='utf-8'><style>p {margin:0}</style><title>x</title></head>"
        "<body><div>Bring the <b>samples</b>&nbsp;&amp; prices</div><div>Second line</div></body></html>"
    )
    assert html_to_text(html) == "Bring the samples & prices\nSecond line"


def test_line_breaks_and_paragraphs_become_new_lines_R01() -> None:
    assert html_to_text("<p>one</p><p>two<br>three</p>") == "one\ntwo\nthree"
    assert html_to_text("<div>a</div><div><br></div><div>b</div>") == "a\n\nb"


def test_entities_are_decoded_once_R01() -> None:
    # A literal "&amp;" in the ERP text comes back as "&amp;amp;" and must read "&amp;" again.
    assert html_to_text("<div>a &amp;amp; b &lt;tag&gt;</div>") == "a &amp; b <tag>"


def test_body_text_reads_text_and_html_R01() -> None:
    assert body_text({"contentType": "text", "content": "  hello\r\nworld  "}) == "hello\nworld"
    assert body_text({"contentType": "HTML", "content": "<div>hello</div>"}) == "hello"
    assert body_text({"contentType": "html", "content": "<html><body></body></html>"}) is None
    assert body_text(None) is None
    assert body_text({}) is None


def test_text_body_is_plain_text_R01() -> None:
    assert text_body("x") == {"contentType": "text", "content": "x"}
    assert text_body(None) == {"contentType": "text", "content": ""}


def test_normalise_ignores_whitespace_shape_R22() -> None:
    assert normalise("a\n\n  b\u00a0c ") == normalise("a b c") == "a b c"
    assert normalise(None) == normalise("") == normalise("  \n") == ""


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200))
def test_text_through_outlook_html_keeps_its_words_R01(text: str) -> None:
    assert normalise(html_to_text(outlook_html(text))) == normalise(text)
