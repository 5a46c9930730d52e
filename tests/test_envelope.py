"""bridge.panes.envelope: what the receiving agent sees, and finding our ids again in a submitted prompt."""

from __future__ import annotations

from bridge.book import Entry
from bridge.panes.envelope import PASTE_LIMIT, header, ids_in, needs_attachment, render, reply_hint
from bridge.rundir.message import Message


def entry(msg_id: str, seq: int, body: str = "hello", sender: str = "worker", kind: str = "message",
          to: tuple[str, ...] = ("reviewer",)) -> Entry:
    return Entry(Message(msg_id, sender, to, body, kind, 1.0), seq, "digest")


def test_reply_hints() -> None:
    assert reply_hint("worker") == 'reply: pairloop send "<text>"'
    assert reply_hint("reviewer") == 'reply: pairloop send "<text>"'
    assert reply_hint("human") == 'reply: pairloop send --to human "<text>"'


def test_header_for_each_kind() -> None:
    assert header(entry("18f-ab12", 7)) == (
        '[pairloop] #7 message from worker · id 18f-ab12 · reply: pairloop send "<text>"')
    assert header(entry("x", 1, kind="approve", sender="reviewer")) == (
        '[pairloop] #1 approval from reviewer · id x · reply: pairloop send "<text>"')
    assert header(entry("x", 2, kind="done")) == (
        '[pairloop] #2 done from worker · id x · reply: pairloop send "<text>"')
    assert header(entry("t", 3, kind="task", sender="human", to=("worker", "reviewer"))) == (
        '[pairloop] #3 task from human · id t · reply: pairloop send --to human "<text>"')


def test_render_one() -> None:
    assert render([entry("a-1", 4, body="Please review\nthe diff.")], {}) == (
        '[pairloop] #4 message from worker · id a-1 · reply: pairloop send "<text>"\n'
        "Please review\nthe diff.")


def test_render_sanitizes_the_body() -> None:
    out = render([entry("a", 1, body="one\r\ntwo\x1b[201~\x03 three\x1b]0;t\x07\rfour")], {})
    assert out == '[pairloop] #1 message from worker · id a · reply: pairloop send "<text>"\none\ntwo three\nfour'


def test_render_keeps_inert_text_unchanged() -> None:
    body = "-rf; 'q' \"q\" $(x) `y` \\n ünï 🎉\n\ttab;"
    assert render([entry("a", 1, body=body)], {}).split("\n", 1)[1] == body


def test_render_a_batch_in_order_with_blank_lines_between() -> None:
    batch = [entry("a", 1, body="first"), entry("b", 2, body="second", sender="human", kind="task"),
             entry("c", 3, body="third\n")]
    assert render(batch, {}) == (
        '[pairloop] #1 message from worker · id a · reply: pairloop send "<text>"\nfirst\n\n'
        '[pairloop] #2 task from human · id b · reply: pairloop send --to human "<text>"\nsecond\n\n'
        '[pairloop] #3 message from worker · id c · reply: pairloop send "<text>"\nthird\n')


def test_render_nothing() -> None:
    assert render([], {}) == ""


def test_needs_attachment_counts_utf8_bytes() -> None:
    assert not needs_attachment(entry("a", 1, body="x" * PASTE_LIMIT))
    assert needs_attachment(entry("a", 1, body="x" * (PASTE_LIMIT + 1)))
    assert not needs_attachment(entry("a", 1, body="é" * (PASTE_LIMIT // 2)))
    assert needs_attachment(entry("a", 1, body="é" * (PASTE_LIMIT // 2) + "x"))
    assert PASTE_LIMIT == 16 * 1024


def test_render_names_the_attachment_instead_of_pasting_a_large_body() -> None:
    big = entry("big", 2, body="é" * PASTE_LIMIT)
    small = entry("small", 3, body="short")
    out = render([big, small], {"big": "/run/attachments/big.txt"})
    assert out == (
        '[pairloop] #2 message from worker · id big · reply: pairloop send "<text>"\n'
        f"(the body is {2 * PASTE_LIMIT} bytes, saved as a file: read /run/attachments/big.txt)\n\n"
        '[pairloop] #3 message from worker · id small · reply: pairloop send "<text>"\nshort')
    assert "é" not in out


def test_ids_in_finds_exactly_the_rendered_ids() -> None:
    batch = [entry("18f3c2a9b01-ab12", 1), entry("b.2_x-y", 2, sender="human"), entry("c", 3, kind="approve")]
    assert ids_in(render(batch, {})) == {"18f3c2a9b01-ab12", "b.2_x-y", "c"}
    assert ids_in(render(batch[:1], {})) == {"18f3c2a9b01-ab12"}


def test_ids_in_survives_the_sim_and_tmux_echo() -> None:
    prompt = render([entry("a1", 1, body="one\ntwo"), entry("a2", 2)], {}).replace("\n", "\r\n")
    assert ids_in(prompt) == {"a1", "a2"}


def test_ids_in_ignores_ordinary_text() -> None:
    for text in ("", "please fix id 42", "id abc-1", "the id a1 is wrong · ok", "·id x·", "· id  ·",
                 "[pairloop] #1 message from worker", "· id .hidden ·", "· ID abc ·"):
        assert ids_in(text) == set(), text


def test_ids_in_a_prompt_with_a_human_note_after_the_paste() -> None:
    prompt = render([entry("m-9", 9)], {}) + "\n\nalso: look at the id 77 thing"
    assert ids_in(prompt) == {"m-9"}
