"""bertviz's own visible labels (the layer and filter pickers, the model view's axes) in the page's language.

bertviz writes them in English into its HTML and JS; they are replaced before the document is assembled. A
label bertviz no longer writes is simply left alone (the view still works, in English).
"""

from __future__ import annotations

import html
import json
from types import MappingProxyType

from pipelines.messages import render

SCRIPT_OPEN = '<script type="text/javascript">'
# (English text up to the picker, the picker's tag, key of the label)
PICKERS = (
    ("Layer: ", '<select id="layer">', "attention.bertviz.layer"),
    ("Attention: ", '<select id="filter">', "attention.bertviz.filter"),
)
OPTIONS = (
    ("All", "attention.bertviz.all"),
    ("Sentence A -> Sentence A", "attention.bertviz.a_a"),
    ("Sentence B -> Sentence B", "attention.bertviz.b_b"),
    ("Sentence A -> Sentence B", "attention.bertviz.a_b"),
    ("Sentence B -> Sentence A", "attention.bertviz.b_a"),
)
AXES = (('.text("Heads")', "attention.bertviz.heads"), ('.text("Layers")', "attention.bertviz.layers"))
DETAIL = ".text('Layer ' + config.layers[layerIndex] + \", Head \" + config.heads[headIndex])"
DETAIL_VALUES = MappingProxyType({"layer": "config.layers[layerIndex]", "head": "config.heads[headIndex]"})


def text(key: str, lang: str, **params: object) -> str:
    """The locale text of ``key`` in ``lang``."""
    return render(key, lang, params)


def _detail_js(lang: str) -> str:
    """bertviz's 'Layer 3, Head 2' heading as a JS expression built from the translated template."""
    template = text("attention.bertviz.detail", lang, layer="\x00layer\x00", head="\x00head\x00")
    pieces = [DETAIL_VALUES[part] if index % 2 else json.dumps(part)
              for index, part in enumerate(template.split("\x00")) if part]
    return ".text(" + (" + ".join(pieces) or '""') + ")"


def translate_labels(fragment: str, lang: str) -> str:
    """bertviz's returned HTML fragment with its labels in ``lang`` (unchanged for English)."""
    if lang == "en" or SCRIPT_OPEN not in fragment:
        return fragment
    cut = fragment.index(SCRIPT_OPEN)  # bertviz's markup comes before its code
    markup, script = fragment[:cut], fragment[cut:]
    for english, tag, key in PICKERS:
        markup = markup.replace(english + tag, f"{html.escape(text(key, lang))}: {tag}")
    for english, key in OPTIONS:
        markup = markup.replace(f">{english}</option>", f">{html.escape(text(key, lang))}</option>")
    for english, key in AXES:
        script = script.replace(english, f".text({json.dumps(text(key, lang))})")
    script = script.replace(DETAIL, _detail_js(lang))
    return markup + script
