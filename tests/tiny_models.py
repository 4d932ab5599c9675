"""Tiny random models of several architectures, built and saved locally for tests."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from pipelines.models.embedded import EMBEDDED, ensure_local_folder, source_path

SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


def smol_tokenizer(cache_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(ensure_local_folder(EMBEDDED["smollm2-135m-instruct"], cache_dir))


def bert_tokenizer():
    return transformers.AutoTokenizer.from_pretrained(source_path(EMBEDDED["minilm-l6"]))


def build(kind: str, folder: Path, cache_dir: Path) -> Path:
    """Save a tiny random model of ``kind`` (llama, gpt2, bert, bert-cls, t5, bart, bert-ner) with a real tokenizer."""
    torch.manual_seed(0)
    tok = smol_tokenizer(cache_dir) if kind in ("llama", "gpt2", "t5") else bert_tokenizer()
    vocab = len(tok)
    if kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=vocab, num_key_value_heads=2, max_position_embeddings=256, **SMALL)
        model = transformers.LlamaForCausalLM(cfg)
    elif kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256)
        model = transformers.GPT2LMHeadModel(cfg)
    elif kind == "bert":
        cfg = transformers.BertConfig(vocab_size=vocab, max_position_embeddings=256, **SMALL)
        model = transformers.BertModel(cfg)
    elif kind == "bert-cls":
        cfg = transformers.BertConfig(
            vocab_size=vocab, max_position_embeddings=256, num_labels=2,
            id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}, **SMALL,
        )
        model = transformers.BertForSequenceClassification(cfg)
    elif kind == "t5":
        cfg = transformers.T5Config(
            vocab_size=vocab, d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8,
            decoder_start_token_id=tok.pad_token_id or 0, pad_token_id=tok.pad_token_id or 0,
        )
        model = transformers.T5ForConditionalGeneration(cfg)
    elif kind == "bart":
        cfg = transformers.BartConfig(
            vocab_size=vocab, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=256,
            pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
            decoder_start_token_id=tok.sep_token_id, forced_eos_token_id=tok.sep_token_id,
        )
        model = transformers.BartForConditionalGeneration(cfg)
    elif kind == "bert-ner":
        labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
        cfg = transformers.BertConfig(
            vocab_size=vocab, max_position_embeddings=256, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}, **SMALL,
        )
        model = transformers.BertForTokenClassification(cfg)
    else:
        raise ValueError(kind)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder
