"""Model kinds and precisions as string enums (their values are the strings the UI and the API use)."""

from __future__ import annotations

from enum import StrEnum


class ModelKind(StrEnum):
    """Which head a model is loaded with (``spacy`` for spaCy pipelines)."""

    CAUSAL_LM = "causal-lm"
    ENCODER = "encoder"
    SEQ_CLS = "seq-cls"
    TOKEN_CLS = "token-cls"
    QA = "qa"
    SEQ2SEQ = "seq2seq"
    SPACY = "spacy"


class Precision(StrEnum):
    """Every precision in the app, one enum: the dtype weights are loaded in (``auto`` picks one for the device,
    ``n/a`` is for spaCy pipelines), and ``int8-weight`` (weight-only int8) for generation. Each task offers its own
    subset: :data:`USER_PRECISIONS` here, ``GENERATION_PRECISIONS`` and ``CLASSIFY_PRECISIONS`` below."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    INT8 = "int8"
    INT8_WEIGHT = "int8-weight"
    NONE = "n/a"


# The kinds a transformers model can be loaded as (the Models tab's choices after "auto").
TRANSFORMERS_KINDS = tuple(k for k in ModelKind if k is not ModelKind.SPACY)
# The precisions a user can pick (the Models tab's choices and the API's accepted values).
USER_PRECISIONS = (Precision.AUTO, Precision.FLOAT32, Precision.BFLOAT16, Precision.FLOAT16, Precision.INT8)
# What a generation can run in (the Generate tab and /generate's settings.precision).
GENERATION_PRECISIONS = (Precision.AUTO, Precision.FLOAT32, Precision.BFLOAT16, Precision.INT8, Precision.INT8_WEIGHT)
# What a fine-tuned classifier's CSV batch can run in (/classify_csv's precision).
CLASSIFY_PRECISIONS = (Precision.AUTO, Precision.FLOAT32, Precision.BFLOAT16, Precision.INT8)
