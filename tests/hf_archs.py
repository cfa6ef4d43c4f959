"""Tiny random-init Hugging Face checkpoints of architectures edgekit has no recipe for, as data.

``ARCHS[name] = TinyArch(config class, config kwargs, model class, modality)``; ``save_checkpoint`` writes one to a
directory the way ``save_pretrained`` does (config.json with ``architectures``, model.safetensors, and for
vision a preprocessor_config.json), which is what ``edgekit export DIR`` reads. Shared by the HF intake tests,
the all-targets architecture sweep and the benchmark script: keep every model seconds to export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE = 32  # pixels per side of the vision checkpoints (their image processors resize to it)
VOCAB = 512
_TEXT = {"vocab_size": VOCAB, "max_position_embeddings": 128}
_BERTISH = {
    **_TEXT,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
_DECODER = {
    **_TEXT,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


@dataclass(frozen=True)
class TinyArch:
    config_class: str
    config: dict[str, Any]
    model_class: str
    modality: str  # "vision" | "text"
    image_size: int = IMAGE
    extra: dict[str, Any] = field(default_factory=dict)


def _vision(config_class: str, model_class: str, size: int = IMAGE, **config: Any) -> TinyArch:
    """``size``: what the saved image processor resizes to (the config's own ``image_size`` goes in ``config``)."""
    return TinyArch(config_class, {"num_labels": 5, **config}, model_class, "vision", size)


def _text(config_class: str, model_class: str, **config: Any) -> TinyArch:
    return TinyArch(config_class, config, model_class, "text")


ARCHS: dict[str, TinyArch] = {
    # vision
    "resnet": _vision(
        "ResNetConfig",
        "ResNetForImageClassification",
        embedding_size=16,
        hidden_sizes=[16, 32],
        depths=[1, 1],
        layer_type="basic",
    ),
    "mobilenet_v2": _vision(
        "MobileNetV2Config", "MobileNetV2ForImageClassification", depth_multiplier=0.35, image_size=IMAGE
    ),
    "efficientnet": _vision(
        "EfficientNetConfig",
        "EfficientNetForImageClassification",
        image_size=IMAGE,
        width_coefficient=0.25,
        depth_coefficient=0.2,
        hidden_dim=320,  # = round_filters(1280 * width_coefficient), what the top batch norm expects
    ),
    "bit": _vision(
        "BitConfig",
        "BitForImageClassification",
        embedding_size=16,
        hidden_sizes=[16, 32],
        depths=[1, 1],
        num_groups=4,
    ),
    "focalnet": _vision(
        "FocalNetConfig",
        "FocalNetForImageClassification",
        image_size=IMAGE,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        focal_levels=[2, 2],
        focal_windows=[3, 3],
    ),
    "mobilevitv2": _vision(
        "MobileViTV2Config", "MobileViTV2ForImageClassification", size=64, image_size=64, width_multiplier=0.25
    ),
    "pvt": _vision(
        "PvtConfig",
        "PvtForImageClassification",
        image_size=IMAGE,
        num_encoder_blocks=2,
        depths=[1, 1],
        sequence_reduction_ratios=[2, 1],
        hidden_sizes=[16, 32],
        patch_sizes=[4, 2],
        strides=[4, 2],
        num_attention_heads=[1, 2],
        mlp_ratios=[2, 2],
    ),
    "swiftformer": _vision(
        "SwiftFormerConfig",
        "SwiftFormerForImageClassification",
        image_size=IMAGE,
        depths=[1, 1, 1, 1],
        embed_dims=[16, 16, 32, 32],
    ),
    "hiera": _vision(
        "HieraConfig",
        "HieraForImageClassification",
        size=64,
        image_size=[64, 64],
        patch_size=[7, 7],
        patch_stride=[4, 4],
        patch_padding=[3, 3],
        embed_dim=16,
        num_heads=[1, 2],
        depths=[1, 1],
        query_stride=[2, 2],
        masked_unit_size=[4, 4],
        masked_unit_attention=[True, False],
        num_query_pool=1,
    ),
    "ijepa": _vision(
        "IJepaConfig",
        "IJepaForImageClassification",
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    ),
    "clip_vision": _vision(
        "CLIPVisionConfig",
        "CLIPVisionModel",
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        projection_dim=16,
    ),
    "siglip_vision": _vision(
        "SiglipVisionConfig",
        "SiglipVisionModel",
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    ),
    "vit_msn": _vision(
        "ViTMSNConfig",
        "ViTMSNForImageClassification",
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    ),
    # text encoders
    "xlm-roberta": _text("XLMRobertaConfig", "XLMRobertaForSequenceClassification", **_BERTISH, num_labels=3),
    "deberta-v2": _text(
        "DebertaV2Config",
        "DebertaV2ForSequenceClassification",
        **_BERTISH,
        num_labels=3,
        relative_attention=True,
        position_buckets=32,
        pos_att_type=["p2c", "c2p"],
    ),
    "squeezebert": _text(
        "SqueezeBertConfig",
        "SqueezeBertForSequenceClassification",
        **_BERTISH,
        embedding_size=32,
        q_groups=2,
        k_groups=2,
        v_groups=2,
        post_attention_groups=2,
        intermediate_groups=2,
        output_groups=2,
    ),
    "mobilebert": _text(
        "MobileBertConfig",
        "MobileBertModel",
        **{**_BERTISH, "hidden_size": 64},
        embedding_size=32,
        intra_bottleneck_size=32,
        true_hidden_size=32,
        num_feedforward_networks=1,
    ),
    "funnel": _text(
        "FunnelConfig",
        "FunnelForSequenceClassification",
        vocab_size=VOCAB,
        block_sizes=[1, 1],
        d_model=32,
        n_head=2,
        d_head=16,
        d_inner=64,
        num_decoder_layers=1,
        num_labels=3,
    ),
    "roformer": _text("RoFormerConfig", "RoFormerModel", **_BERTISH, embedding_size=32),
    # decoders
    "llama": _text("LlamaConfig", "LlamaForCausalLM", **_DECODER),
    "qwen2": _text("Qwen2Config", "Qwen2ForCausalLM", **_DECODER),
    "phi3": _text("Phi3Config", "Phi3ForCausalLM", **_DECODER),
    "gemma3_text": _text(
        "Gemma3TextConfig", "Gemma3ForCausalLM", **_DECODER, head_dim=8, sliding_window=16, query_pre_attn_scalar=8
    ),
    "gpt_neo": _text(
        "GPTNeoConfig",
        "GPTNeoForCausalLM",
        vocab_size=VOCAB,
        max_position_embeddings=128,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        attention_types=[[["global", "local"], 1]],
        window_size=16,
        intermediate_size=64,
        bos_token_id=1,
        eos_token_id=2,
    ),
    "bloom": _text("BloomConfig", "BloomForCausalLM", vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2),
}


def save_checkpoint(name: str, directory: Path, *, architectures: bool = True) -> Path:
    """Save ``ARCHS[name]`` (seeded random init) to ``directory``; ``architectures=False`` drops that key from
    config.json (a checkpoint whose task must come from ``--task``)."""
    import json

    import torch
    import transformers as tf

    arch = ARCHS[name]
    torch.manual_seed(0)
    config = getattr(tf, arch.config_class)(**arch.config)
    model = getattr(tf, arch.model_class)(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if not architectures:
        cfg_file = directory / "config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg.pop("architectures", None)
        cfg_file.write_text(json.dumps(cfg))
    if arch.modality == "vision":
        tf.ViTImageProcessor(size={"height": arch.image_size, "width": arch.image_size}).save_pretrained(directory)
    return directory


def export_all_targets(name: str, root: str, *, samples: int = 8, bench: bool = False) -> dict[str, Any]:
    """Save ``name``'s checkpoint under ``root`` and run ``edgekit export DIR --target all --precision fp32,int8``
    on it in this process, as a user would (random calibration/validation data of ``samples`` rows). Returns the
    exit code, the report's rows, what the CLI printed on stderr, and the seconds the export took."""
    import contextlib
    import io
    import json
    import time

    from edgekit.cli import main

    ckpt = save_checkpoint(name, Path(root) / "ckpt" / name)
    out = Path(root) / "runs" / name
    args = ["-q", "export", str(ckpt), "--target", "all", "--precision", "fp32,int8", "--out", str(out)]
    args += ["--calib", "random", "--calib-samples", str(samples), "--val", "random", "--val-samples", str(samples)]
    args += ["--iterations", "50", "--warmup", "10"] if bench else ["--no-bench"]
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    seconds = time.perf_counter() - start
    report = out / "report.json"
    rows = json.loads(report.read_text())["rows"] if report.is_file() else []
    return {"code": code, "rows": rows, "stderr": err.getvalue(), "seconds": seconds}


def sweep_document(results: dict[str, dict[str, Any]], workers: int, wall: float, command: str) -> dict[str, Any]:
    """The JSON of a sweep (benchmarks/results/hf_sweep.json): the machine, versions, and per architecture its
    exit code, seconds and rows (status, one-line notes, accuracy, size, latency)."""
    import os
    import platform

    from edgekit.artifacts import package_versions

    keep = ("target", "precision", "status", "notes", "accuracy", "size_mb", "latency")
    return {
        "command": command,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "versions": package_versions(),
        "workers": workers,
        "wall_seconds": round(wall, 1),
        "architectures": {
            name: {
                "exit_code": r["code"],
                "seconds": round(r["seconds"], 1),
                "rows": [{k: row.get(k) for k in keep} for row in r["rows"]],
            }
            for name, r in results.items()
        },
    }
