"""Tiny vision-language models built offline from configs, for tests, the demo and benchmarks.

Nothing is downloaded: the tokenizer is trained with the ``tokenizers`` library on a small built-in
corpus, the processor uses the family's real processor class and a chat template in the family's
format, and the model has random weights. ``build_tiny_vlm`` checks that the image path is live
(logits change when the image changes) and raises if it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

# Every linear layer of the tiny models' language and vision towers, as a PEFT ``target_modules`` regex
# (linear_fc1/linear_fc2: Qwen3-VL's vision MLPs and patch mergers, the deepstack mergers included).
VISION_AND_LANGUAGE_LORA_TARGETS = (
    r".*\.(q_proj|k_proj|v_proj|o_proj|qkv|proj|fc1|fc2|linear_fc1|linear_fc2|out_proj|gate_proj|up_proj|down_proj)"
)

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "gemma3", "qwen3_vl", "idefics3", "llava_next", "mllama")

_CORPUS = (
    "What colour is the square? Answer with one word. red green blue yellow black white purple orange "
    "The answer is a colour. user assistant system You are a helpful assistant. shape circle square "
    "triangle picture image describe the colour of this image please yes no one two three four"
)

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_GEMMA_SPECIALS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]

_GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<start_of_image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _train_tokenizer(special_tokens: list[str], vocab_size: int, **named_tokens: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Answer words on lines of their own, so each becomes one token when it starts a completion.
    answers = "\n".join(_CORPUS.split()[9:17])
    tokenizer.train_from_iterator([_CORPUS] * 4 + [answers] * 40, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **named_tokens)


@dataclass
class TinyVLM:
    family: str
    model: torch.nn.Module
    processor: object


def _qwen_tokenizer():
    return _train_tokenizer(_QWEN_SPECIALS, 320, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)


def qwen_processor(family: str, image_size: int):
    """A Qwen2-VL / Qwen2.5-VL processor with a tiny trained tokenizer."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    tokenizer = _qwen_tokenizer()
    # Up to four times the pixels of an ``image_size`` square: larger images get more image tokens, as with the
    # released checkpoints (min 56x56, max about 3584x3584).
    image_processor = Qwen2VLImageProcessor(min_pixels=image_size * image_size, max_pixels=4 * image_size * image_size)
    processor_class = Qwen2VLProcessor if family == "qwen2_vl" else Qwen2_5_VLProcessor
    return processor_class(image_processor, tokenizer, Qwen2VLVideoProcessor(), chat_template=_QWEN_CHAT_TEMPLATE)


def _qwen(family: str, image_size: int):
    processor = qwen_processor(family, image_size)
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _QWEN_SPECIALS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    token_ids = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    if family == "qwen2_vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(
            depth=2,
            embed_dim=64,
            hidden_size=64,
            num_heads=4,
            mlp_ratio=2,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            in_channels=3,
        )
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **token_ids)
        model = Qwen2VLForConditionalGeneration(config)
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = dict(
            depth=2,
            hidden_size=64,
            intermediate_size=128,
            num_heads=4,
            out_hidden_size=64,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[1],
            in_channels=3,
        )
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **token_ids)
        model = Qwen2_5_VLForConditionalGeneration(config)
    return model, processor


def gemma3_processor(image_size: int, mm_tokens_per_image: int):
    """A Gemma 3 processor with a tiny trained tokenizer; images become ``image_size`` squared."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    tokenizer = _train_tokenizer(
        _GEMMA_SPECIALS,
        320,
        bos_token="<bos>",
        eos_token="<end_of_turn>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
    )
    image_processor = Gemma3ImageProcessor(size={"height": image_size, "width": image_size})
    return Gemma3Processor(
        image_processor, tokenizer, chat_template=_GEMMA_CHAT_TEMPLATE, image_seq_length=mm_tokens_per_image
    )


def _gemma3(image_size: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    patch = 14
    tokens_per_side = image_size // patch
    mm_tokens_per_image = (tokens_per_side // 2) ** 2
    processor = gemma3_processor(image_size, mm_tokens_per_image)
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _GEMMA_SPECIALS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        sliding_window=64,
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<end_of_turn>"], ids["<eos>"]],
        pad_token_id=ids["<pad>"],
    )
    vision = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=mm_tokens_per_image,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        tie_word_embeddings=True,
    )
    model = Gemma3ForConditionalGeneration(config)
    # Gemma 3 zero-initialises this projection, which would cut the image path.
    with torch.no_grad():
        projection = model.model.multi_modal_projector.mm_input_projection_weight
        projection.normal_(0.0, 0.02)
    return model, processor


_MLLAMA_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|finetune_right_pad_id|>",
    "<|python_tag|>",
    "<|image|>",
]

# Llama 3.2 Vision's chat format, without its system-prompt and tool boilerplate.
_MLLAMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|image|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def _mllama(image_size: int, max_image_tiles: int = 2):
    """Llama 3.2 Vision: a cross-attention VLM. ``<|image|>`` is one token per image, inside the vocabulary
    (real checkpoints put it just past the LM head, where it cannot be sampled) so the stress tests can
    push the policy to emit it."""
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaImageProcessor, MllamaProcessor

    tokenizer = _train_tokenizer(
        _MLLAMA_SPECIALS,
        320,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        unk_token=None,
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _MLLAMA_SPECIALS}
    image_processor = MllamaImageProcessor(
        size={"height": image_size, "width": image_size}, max_image_tiles=max_image_tiles
    )
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        cross_attention_layers=[1],
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=ids["<|eot_id|>"],
        pad_token_id=ids["<|finetune_right_pad_id|>"],
    )
    aspect_ratios = [
        [h, w] for w in range(1, max_image_tiles + 1) for h in range(1, max_image_tiles + 1) if h * w <= max_image_tiles
    ]
    vision = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_global_layers=1,
        attention_heads=4,
        image_size=image_size,
        patch_size=14,
        max_num_tiles=max_image_tiles,
        intermediate_layers_indices=[0],
        vision_output_dim=128,
        supported_aspect_ratios=aspect_ratios,
    )
    config = MllamaConfig(text_config=text, vision_config=vision, image_token_index=ids["<|image|>"])
    model = MllamaForConditionalGeneration(config)
    # Mllama's tanh gates start at zero: the cross-attention layers would ignore the image, and the vision tower
    # its tile and position embeddings. Open them (the Gemma 3 projector problem).
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("gate", "_gate")) and not parameter.any():
                parameter.fill_(1.0)
    processor = MllamaProcessor(image_processor, tokenizer, chat_template=_MLLAMA_CHAT_TEMPLATE)
    return model, processor


def _qwen3_vl(image_size: int):
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tokenizer = _qwen_tokenizer()
    # Qwen3-VL's patches are 16 px and merge 2x2: sides round to multiples of 32, so a 56 px image becomes
    # 64x64, i.e. 4 image tokens; larger images (up to four times the pixels) get more.
    side = max(32, round(image_size / 32) * 32)
    image_processor = Qwen2VLImageProcessor(
        patch_size=16, merge_size=2, size={"shortest_edge": side * side, "longest_edge": 4 * side * side}
    )
    video_processor = Qwen3VLVideoProcessor()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _QWEN_SPECIALS}
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
            "mrope_interleaved": True,
        },
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    # deepstack_visual_indexes: the vision layer whose features are added to the first text layers' hidden
    # states (Qwen3-VL's deepstack), within the tiny depth.
    vision = dict(
        depth=2,
        hidden_size=64,
        intermediate_size=128,
        num_heads=4,
        out_hidden_size=64,
        patch_size=16,
        spatial_merge_size=2,
        temporal_patch_size=2,
        num_position_embeddings=64,
        deepstack_visual_indexes=[0],
        in_channels=3,
    )
    config = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = Qwen3VLForConditionalGeneration(config)
    processor = Qwen3VLProcessor(image_processor, tokenizer, video_processor, chat_template=_QWEN_CHAT_TEMPLATE)
    return model, processor


_SMOLVLM_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
]

_SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{{ ':' if message['content'][0]['type'] == 'image' else ': ' }}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _idefics3(image_size: int):
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tokenizer = _train_tokenizer(
        _SMOLVLM_SPECIALS, 320, eos_token="<end_of_utterance>", pad_token="<|endoftext|>", unk_token=None
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _SMOLVLM_SPECIALS}
    patch, scale_factor = 14, 2
    image_seq_len = (image_size // patch) ** 2 // scale_factor**2
    # No image splitting: one global image of image_size px, image_seq_len <image> tokens (4 for 56 px).
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}, do_image_splitting=False
    )
    text = dict(
        model_type="llama",
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=None,
        eos_token_id=ids["<end_of_utterance>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    vision = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
    )
    config = Idefics3Config(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<image>"],
        scale_factor=scale_factor,
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    model = Idefics3ForConditionalGeneration(config)
    processor = Idefics3Processor(
        image_processor, tokenizer, image_seq_len=image_seq_len, chat_template=_SMOLVLM_CHAT_TEMPLATE
    )
    return model, processor


_LLAVA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "<image>"]

_LLAVA_NEXT_CHAT_TEMPLATE = (  # llava-v1.6-mistral's format
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST] {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} [/INST]{% else %}</s>{% endif %}{% endfor %}"
)


def _llava_next(image_size: int):
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tokenizer = _train_tokenizer(
        _LLAVA_SPECIALS, 320, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _LLAVA_SPECIALS}
    # A 28 px CLIP tile (2x2 patches of 14 px) and small anyres pinpoints: a square image is one base tile
    # plus one high-resolution tile, 4 + 4 features plus 2 row-newline tokens = 10 image tokens.
    tile, patch = 28, 14
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": tile},
        crop_size={"height": tile, "width": tile},
        image_grid_pinpoints=[[tile, tile], [tile, 2 * tile], [2 * tile, tile]],
    )
    text = dict(
        model_type="llama",
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        tie_word_embeddings=False,
    )
    vision = dict(
        model_type="clip_vision_model",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=tile,
        patch_size=patch,
        projection_dim=64,
    )
    # vision_feature_layer=-1 (real checkpoints use -2): with a 2-layer tower, -2 would leave the last layer
    # outside the image path, so it could never get a gradient.
    config = LlavaNextConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=ids["<image>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=image_processor.image_grid_pinpoints,
        image_seq_length=(tile // patch) ** 2,
        tie_word_embeddings=False,
    )
    model = LlavaNextForConditionalGeneration(config)
    processor = LlavaNextProcessor(
        image_processor,
        tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=_LLAVA_NEXT_CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    return model, processor


def solid_image(rgb: tuple[int, int, int], size: int = 56) -> Image.Image:
    return Image.new("RGB", (size, size), rgb)


def single_image_inputs(processor, rgb: tuple[int, int, int], question: str = "What colour?", size: int = 56):
    """Processor inputs for one user turn: a solid ``rgb`` image and ``question``, ready for generation."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    return processor(images=[solid_image(rgb, size)], text=[text], return_tensors="pt")


def point_output_rows(model, token_ids: list[int], direction: torch.Tensor, margin: float) -> None:
    """Set each token's output-embedding row along ``direction`` so its logit there is ``margin``."""
    with torch.no_grad():
        for token_id in token_ids:
            model.get_output_embeddings().weight[token_id] = direction * (margin / direction.pow(2).sum())


def image_changes_logits(model, processor, size: int = 56) -> bool:
    """True when the model's logits for the same prompt differ between a red and a blue image."""
    logits = []
    for colour in ((255, 0, 0), (0, 0, 255)):
        with torch.no_grad():
            logits.append(model(**single_image_inputs(processor, colour, size=size)).logits[0, -1])
    return not torch.allclose(logits[0], logits[1], atol=1e-5)


def build_tiny_vlm(family: str = "qwen2_5_vl", seed: int = 0, image_size: int = 56) -> TinyVLM:
    """A random tiny VLM of ``family`` (one of ``FAMILIES``) and its processor, with a live image path."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    torch.manual_seed(seed)
    builders = {
        "gemma3": _gemma3,
        "qwen3_vl": _qwen3_vl,
        "idefics3": _idefics3,
        "llava_next": _llava_next,
        "mllama": _mllama,
    }
    model, processor = builders[family](image_size) if family in builders else _qwen(family, image_size)
    model.eval()
    if not image_changes_logits(model, processor, image_size):
        raise RuntimeError(f"tiny {family} model ignores its image input: its vision path is cut")
    return TinyVLM(family, model, processor)


def favour_token(model, processor, token_id: int, margin: float = 20.0, size: int = 56) -> None:
    """Make ``token_id`` the policy's favourite next token: a stress test for placeholder handling.

    The output-embedding row of ``token_id`` is set along the mean final hidden state of a sample
    prompt, so its logit is about ``margin`` at typical positions.
    """
    inputs = single_image_inputs(processor, (255, 0, 0), size=size)
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states[-1][0].mean(0)
    point_output_rows(model, [token_id], hidden, margin)
