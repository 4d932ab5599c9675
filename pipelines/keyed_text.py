"""A note or progress line that is plain English text for old consumers and a keyed :class:`Msg` for the UI.

``KeyedText(Msg.of("tables.note.read_as", encoding="GB18030"))`` behaves as the English ``str`` (so code that
joins, formats or compares notes keeps working) and carries ``.msg`` so :func:`components.i18n.say` renders it in
the request's language.
"""

from __future__ import annotations

from pipelines.messages import Msg


class KeyedText(str):
    """English text of ``msg``, with ``msg`` kept for translation."""

    msg: Msg

    def __new__(cls, msg: Msg) -> KeyedText:
        obj = super().__new__(cls, msg.render("en"))
        obj.msg = msg
        return obj

    def render(self, lang: str = "en") -> str:
        return self.msg.render(lang)

    def __reduce__(self) -> tuple:
        return (KeyedText, (self.msg,))
