"""Model folders with random weights, built from a config and saved in the Hugging Face
layout a user's folder has (config.json, model.safetensors, preprocessor_config.json,
tokenizer files): the same compute as real weights, for speed measurements
(``benchmarks/clip_speed.py``: CLIP ViT-B/32) and tests (a tiny CLIP, Chinese-CLIP and SigLIP:
hidden size 32, 2 layers, 32-pixel images). Seeded: the same folder every time. Their vectors mean
nothing; no quality can be measured with them.

The tokenizers are written by hand (a byte-level BPE vocabulary of single bytes and a few
merges for CLIP, a short word-piece list for Chinese-CLIP) or trained on a few words (a
SentencePiece ``spiece.model`` for SigLIP, as its real folders hold): real ones are
downloads, and a tokenizer's size changes nothing of the model's compute.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

EMBED_DIM = 16
#: What real CLIP folders hold: a shorter-side resize (40 here), then a center crop (32).
PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True, "size": {"shortest_edge": 40},
    "do_center_crop": True, "crop_size": {"height": 32, "width": 32},
    "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3, "do_convert_rgb": True,
}
TOWER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64}
VISION = {**TOWER, "image_size": 32, "patch_size": 8}
#: Chinese characters and English words the Chinese-CLIP vocabulary knows.
WORDS = list("海军舰艇编队进行实弹演习足球比赛城市森林鸟雨天气新闻") + [
    "the", "ship", "sea", "forest", "bird", "city", "football", "match", "rain",
]


def _bytes_to_unicode() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes (as GPT-2 and CLIP)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def write_clip_tokenizer(folder: Path) -> int:
    """vocab.json + merges.txt of a byte-level BPE (every byte, alone and word-final, and a
    few merges); returns the vocabulary size."""
    symbols = _bytes_to_unicode()
    vocab = symbols + [s + "</w>" for s in symbols]
    merges = ["t h", "th e</w>", "s e", "se a</w>", "s h", "sh i", "shi p</w>"]
    vocab += ["th", "the</w>", "se", "sea</w>", "sh", "shi", "ship</w>"]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)


def write_bert_vocab(folder: Path) -> int:
    """vocab.txt of a BERT word-piece tokenizer (as Chinese-CLIP's); returns its size."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return len(vocab)


def build_clip_folder(folder: Path, seed: int = 0, tiny: bool = True) -> Path:
    """A CLIP model folder with random weights (seeded): tiny, or ViT-B/32 (``tiny`` False:
    transformers' default CLIPConfig, 224-pixel images, 77 tokens)."""
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_clip_tokenizer(folder)
    ids = {"bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1,
           "pad_token_id": vocab_size - 1}
    if tiny:
        text = {**TOWER, "vocab_size": vocab_size, "max_position_embeddings": 24, **ids}
        config = CLIPConfig(text_config=text, vision_config=VISION, projection_dim=EMBED_DIM)
        processor = PREPROCESSOR
    else:
        config = CLIPConfig(text_config=ids)
        processor = {**PREPROCESSOR, "size": {"shortest_edge": 224},
                     "crop_size": {"height": 224, "width": 224}}
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def build_chinese_clip_folder(folder: Path, seed: int = 0) -> Path:
    """A Chinese-CLIP model folder with random weights (seeded)."""
    from transformers import ChineseCLIPConfig, ChineseCLIPModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_bert_vocab(folder)
    text = {**TOWER, "vocab_size": vocab_size, "max_position_embeddings": 24}
    config = ChineseCLIPConfig(text_config=text, vision_config=VISION, projection_dim=EMBED_DIM)
    torch.manual_seed(seed)
    ChineseCLIPModel(config).save_pretrained(folder)
    processor = {**PREPROCESSOR, "image_processor_type": "ChineseCLIPImageProcessor",
                 "size": {"height": 32, "width": 32}, "do_center_crop": False}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def write_sentencepiece(folder: Path, max_length: int) -> int:
    """spiece.model, a SentencePiece unigram model trained on the words above (seeded by its
    input alone), and a tokenizer_config.json naming SigLIP's tokenizer; returns its
    vocabulary size."""
    import io

    import sentencepiece

    lines = [" ".join(WORDS[(i * j) % len(WORDS)] for j in range(1, 8)) for i in range(1, 200)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=64, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, num_threads=1,
        minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    settings = {"tokenizer_class": "SiglipTokenizer", "pad_token": "<pad>", "eos_token": "</s>",
                "unk_token": "<unk>", "model_max_length": max_length}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    processor = sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())
    return processor.get_piece_size()


def build_siglip_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny SigLIP model folder with random weights (seeded), its tokenizer a SentencePiece
    model, as real SigLIP folders have."""
    from transformers import SiglipConfig, SiglipModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_sentencepiece(folder, max_length=16)
    text = {**TOWER, "vocab_size": vocab_size, "max_position_embeddings": 16,
            "pad_token_id": 0, "eos_token_id": 1}
    config = SiglipConfig(text_config=text, vision_config=VISION)
    torch.manual_seed(seed)
    SiglipModel(config).save_pretrained(folder)
    processor = {**PREPROCESSOR, "image_processor_type": "SiglipImageProcessor",
                 "size": {"height": 32, "width": 32}, "do_center_crop": False,
                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder
