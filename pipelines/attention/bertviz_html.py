"""bertviz head and model views as self-contained HTML that loads nothing from a CDN.

bertviz's HTML pulls require.js, d3 and jQuery from cdnjs. We vendor those files (``assets/vendor``) and either
inline them (default: works in a sandboxed ``srcdoc`` iframe whatever the page's URL) or point to the copies the
app serves. Attention values are rounded and the views are limited to a budget of numbers, because bertviz
embeds every weight as JSON text.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from pipelines.attention.bertviz_labels import SCRIPT_OPEN, translate_labels
from pipelines.attention.extract import AttentionResult
from pipelines.errors import WorkbenchError
from pipelines.messages import Msg

VENDOR_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "vendor"
VENDOR_FILES = MappingProxyType({"requirejs": "require.min.js", "d3": "d3.min.js", "jquery": "jquery.min.js"})
# With AppConfig.bertviz_js == "served" the iframe loads them from the app (allowed_paths=[assets]) instead.
SERVED_VENDOR = f"gradio_api/file={VENDOR_DIR}"
VIEW_KEYS = MappingProxyType({"head": "attention.view.head", "model": "attention.view.model"})
CDN_REQUIRE = re.compile(r'<script src="https?://[^"]*require(?:\.min)?\.js"></script>')
CDN_PATHS = re.compile(r"require\.config\(\{\s*paths:\s*\{.*?\}\s*\}\);", re.S)
ANY_URL = re.compile(r"https?://", re.I)
JSON_STRING = re.compile(r'("(?:[^"\\]|\\.)*")')
PARAMS_MARK = "const params = "
PARAMS_SEP = "; // HACK: "
PARAMS_TAIL = " is a template marker that is replaced by actual params."
# Stand-ins for the AMD modules when d3 and jQuery are inlined as plain scripts before require.js.
AMD_SHIMS = (
    "define('d3', [], function () { return window.d3; });\n"
    "define('jquery', [], function () { return window.jQuery; });"
)


@dataclass(frozen=True)
class BertvizOptions:
    """How the bertviz views are built."""

    # bertviz draws one SVG line per weight: ~120k lines render in about 2 s in Chromium on a busy 2-core CPU,
    # while 800k lines (12 heads x 256 tokens) took 22 s. So the views keep the first tokens that fit.
    head_lines: int = 120_000  # lines of one layer in the head view (heads x tokens^2)
    head_max_values: int = 400_000  # weights embedded in the head view (layers x heads x tokens^2; ~4 bytes each)
    model_lines: int = 80_000  # lines in the model view (layers x heads x tokens^2, all drawn at once)
    decimals: int = 2  # bertviz draws weights as line opacity; 0.01 steps are invisible anyway
    vendor_base: str | None = None  # None: inline the vendored JS; else the URL prefix the app serves them under
    display_mode: str = "light"

    @classmethod
    def for_mode(cls, js: str) -> BertvizOptions:
        """Options for ``AppConfig.bertviz_js``: ``"inline"`` (scripts in each view) or ``"served"`` (from the app).

        Inline (the default) is robust: the sandboxed iframe has an opaque origin, and it works behind any proxy
        or root path; it costs ~340 KB per view.
        """
        return cls(vendor_base=SERVED_VENDOR if js == "served" else None)


@dataclass
class BertvizView:
    """One rendered view: the full HTML document, what it shows, and the notes about what was left out."""

    kind: str  # head or model
    document: str
    layers: list[int]
    tokens: int
    notes: list[Msg]

    @property
    def size_bytes(self) -> int:
        return len(self.document.encode("utf-8"))


def _vendor_js(name: str) -> str:
    return (VENDOR_DIR / VENDOR_FILES[name]).read_text(encoding="utf-8").replace("</script", "<\\/script")


def _vendor_prelude(options: BertvizOptions) -> tuple[str, str]:
    """(script tags replacing bertviz's CDN require.js tag, the require.config replacing its CDN paths)."""
    if options.vendor_base is None:
        scripts = "".join(f"<script>{_vendor_js(n)}</script>\n" for n in ("d3", "jquery", "requirejs"))
        return scripts + f"<script>{AMD_SHIMS}</script>\n", "require.config({paths: {}});"
    base = options.vendor_base.rstrip("/")
    paths = f"require.config({{paths: {{d3: '{base}/d3.min', jquery: '{base}/jquery.min'}}}});"
    return f'<script src="{base}/{VENDOR_FILES["requirejs"]}"></script>\n', paths


def compact_numbers(json_text: str) -> str:
    """Shrink the embedded weights: ``[0.0, 0.25]`` becomes ``[0,0.25]``; JSON strings (tokens) are kept as is."""
    parts = JSON_STRING.split(json_text)
    for i in range(0, len(parts), 2):  # even parts are outside string literals
        text = parts[i].replace(", ", ",")
        for _ in range(2):  # neighbouring zeros share a comma, so a second pass catches every other one
            text = text.replace(",0.0,", ",0,")
        parts[i] = text.replace("[0.0,", "[0,").replace(",0.0]", ",0]").replace("[0.0]", "[0]")
    return "".join(parts)


def compact_params(script: str) -> str:
    """Compact the one-line JSON that bertviz substituted for ``PYTHON_PARAMS`` in its script.

    bertviz's line is ``const params = PYTHON_PARAMS; // HACK: PYTHON_PARAMS is a template marker...`` and its
    ``str.replace`` fills in both markers, so every weight is embedded twice; the copy in the comment is dropped.
    """
    start = script.index(PARAMS_MARK) + len(PARAMS_MARK)
    end = script.index("\n", start)
    line = script[start:end]
    if line.endswith(PARAMS_TAIL):
        size = (len(line) - len(PARAMS_SEP) - len(PARAMS_TAIL)) // 2
        params = line[:size]
        if line == params + PARAMS_SEP + params + PARAMS_TAIL:
            line = params + ";"
    return script[:start] + compact_numbers(line) + script[end:]


def rewrite(fragment: str, options: BertvizOptions, lang: str = "en") -> str:
    """Turn bertviz's returned HTML fragment into a full document using the vendored JS, its labels in ``lang``."""
    fragment = translate_labels(fragment, lang)
    script_tags, paths = _vendor_prelude(options)
    fragment, replaced = CDN_REQUIRE.subn(lambda _m: script_tags, fragment, count=1)
    if not replaced:
        raise WorkbenchError("attention.err.bertviz_changed", part="require.js")
    fragment, replaced = CDN_PATHS.subn(lambda _m: paths, fragment, count=1)
    if not replaced:
        raise WorkbenchError("attention.err.bertviz_changed", part="require.config")
    start = fragment.index(SCRIPT_OPEN) + len(SCRIPT_OPEN)
    end = fragment.rindex("</script>")
    # Tokens are user text inside a JS literal: "</script>" there must not end the script element.
    body = compact_params(fragment[start:end]).replace("</", "<\\/")
    fragment = fragment[:start] + body + fragment[end:]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<style>body{margin:8px;background:#fff;color:#111}</style></head>"
        f"<body>{fragment}</body></html>"
    )


def _rounded(att: np.ndarray, decimals: int) -> list:
    """Per-layer tensors of shape (1, heads, n, n) in float64, so bertviz's JSON has short numbers."""
    import torch

    values = torch.from_numpy(np.round(att.astype(np.float64), decimals))
    return [layer.unsqueeze(0) for layer in values]


def _display_tokens(result: AttentionResult, count: int) -> list[str]:
    return [tok if tok.strip() else repr(tok) for tok in result.tokens[:count]]


def plan_head_view(result: AttentionResult, layer: int, lines: int, max_values: int) -> tuple[list[int], int]:
    """Tokens whose one-layer drawing fits ``lines``, and the layers (around ``layer``) fitting ``max_values``."""
    heads, n = result.num_heads, result.num_tokens
    tokens = min(n, max(2, math.isqrt(lines // heads)))
    per_layer = heads * tokens * tokens
    fit = max(1, min(result.num_layers, max_values // per_layer))
    start = max(0, min(layer - fit // 2, result.num_layers - fit))
    return list(range(start, start + fit)), tokens


def plan_model_view(result: AttentionResult, max_values: int) -> int:
    """Tokens whose drawing of every layer and head fits ``max_values`` lines in the model view."""
    cells = result.num_layers * result.num_heads
    return min(result.num_tokens, max(2, math.isqrt(max_values // cells)))


def _budget(result: AttentionResult, max_values: int) -> int:
    """A sentence pair makes bertviz embed (and the model view draw) the weights twice: all, plus four A/B blocks."""
    return max_values // 2 if result.sentence_b_start else max_values


def _token_note(result: AttentionResult, tokens: int, kind: str) -> list[Msg]:
    if tokens >= result.num_tokens:
        return []
    return [Msg.of("attention.note.bertviz_tokens", view=Msg.of(VIEW_KEYS[kind]), shown=tokens,
                   total=result.num_tokens)]


def _pair_start(result: AttentionResult, tokens: int) -> int | None:
    start = result.sentence_b_start
    return start if start is not None and 0 < start < tokens else None


def head_view_html(
    result: AttentionResult, layer: int = 0, options: BertvizOptions | None = None, lang: str = "en",
) -> BertvizView:
    """bertviz's head view of ``result`` as a complete HTML document."""
    from bertviz import head_view

    options = options or BertvizOptions()
    layers, tokens = plan_head_view(result, layer, options.head_lines, _budget(result, options.head_max_values))
    att = result.attentions[:, :, :tokens, :tokens]
    shown = _rounded(att, options.decimals)
    returned = head_view(
        shown, _display_tokens(result, tokens), sentence_b_start=_pair_start(result, tokens),
        layer=min(max(layer, layers[0]), layers[-1]), include_layers=layers, html_action="return",
    )
    notes = _token_note(result, tokens, "head")
    if len(layers) < result.num_layers:
        notes.append(Msg.of("attention.note.bertviz_layers", view=Msg.of(VIEW_KEYS["head"]), first=layers[0],
                            last=layers[-1], top=result.num_layers - 1))
    return BertvizView("head", rewrite(returned.data, options, lang), layers, tokens, notes)


def model_view_html(result: AttentionResult, options: BertvizOptions | None = None, lang: str = "en") -> BertvizView:
    """bertviz's model view (every layer x head) of ``result`` as a complete HTML document."""
    from bertviz import model_view

    options = options or BertvizOptions()
    tokens = plan_model_view(result, _budget(result, options.model_lines))
    shown = _rounded(result.attentions[:, :, :tokens, :tokens], options.decimals)
    returned = model_view(
        shown, _display_tokens(result, tokens), sentence_b_start=_pair_start(result, tokens),
        display_mode=options.display_mode, html_action="return",
    )
    layers = list(range(result.num_layers))
    document = rewrite(returned.data, options, lang)
    return BertvizView("model", document, layers, tokens, _token_note(result, tokens, "model"))


def iframe(view: BertvizView, height: int | None = None) -> str:
    """The view in a sandboxed iframe (scripts run, but with an opaque origin: no access to the page)."""
    if height is None:  # bertviz draws one 22.5 px row per token in the head view
        height = min(900, max(260, int(view.tokens * 22.5) + 110)) if view.kind == "head" else 900
    return (
        f'<iframe class="bertviz-frame" title="bertviz {view.kind} view" sandbox="allow-scripts" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd;border-radius:6px;background:#fff" '
        f'srcdoc="{html.escape(view.document, quote=True)}"></iframe>'
    )


def script_urls(document: str) -> list[str]:
    """Every ``http(s)://`` URL in a script's ``src`` or in require.config paths (should be none)."""
    srcs = re.findall(r"<script[^>]*\bsrc=[\"']([^\"']+)", document, re.I)
    paths = re.findall(r"require\.config\(\{.*?\}\);", document, re.S)
    found = [s for s in srcs if ANY_URL.match(s)]
    found += [u for block in paths for u in re.findall(r"https?://[^'\"\s]+", block)]
    return found
