"""Probe (CPU): Llama 3.2 Vision scored by Unsloth's generated GRPOTrainer against plain transformers.

Usage: unsloth_mllama_scoring.py patched|unpatched. Prints ``RESULT <json>``.
First, before anything is patched or Unsloth imported, each row's completion log-probs and the gradient of a
GRPO loss are computed with plain transformers, one row at a time without padding (the processor's own mask,
extended over the completion by its last prompt position, image inputs padded as in the batch). Then Unsloth's trainer class is generated for real
(UNSLOTH_ALLOW_CPU=1) and the same rows, left-padded into one batch of rows with one and two images, go through
its ``_get_per_token_logps_and_entropies`` (old/reference log-probs; chunks of 1, 2 and 4 rows) and its
``compute_loss`` (the loss and its backward through unsloth_zoo's ``grpo_accumulated_loss``). Differences
against the plain results are reported, with the change an image swap makes (the image path is live) and an
error, if one was raised, instead of a figure.
"""

import json
import os
import sys
import tempfile

os.environ["UNSLOTH_ALLOW_CPU"] = "1"
mode = sys.argv[1]

import torch  # noqa: E402

from unsloth_vlm_grpo.colour_task import COLOURS, colour_dataset  # noqa: E402
from unsloth_vlm_grpo.tiny import build_tiny_vlm, solid_image  # noqa: E402

torch.manual_seed(0)
tiny = build_tiny_vlm("mllama")
# float64 throughout, so the differences below are the code's and not float32 rounding (Unsloth's log-softmax
# still rounds through float32: about 1e-6).
model, processor = tiny.model.double(), tiny.processor
names = list(COLOURS)
IMAGES = [[names[0]], [names[1], names[2]], [names[2]], [names[2], names[0]]]
QUESTIONS = ["What colour is the square in this picture, please?", "Which colours?", "What colour?", "Which two?"]
ADVANTAGES = torch.tensor([1.0, -0.5, 0.3, -0.8])
COMPLETION_LENGTH = 4


def prompt_text(row: int) -> str:
    content = [*([{"type": "image"}] * len(IMAGES[row])), {"type": "text", "text": QUESTIONS[row]}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)


def images_of(row: int, swapped: bool = False) -> list:
    colours = IMAGES[row][::-1] if swapped and len(IMAGES[row]) > 1 else IMAGES[row]
    if swapped and len(IMAGES[row]) == 1:
        colours = [names[(names.index(colours[0]) + 1) % len(names)]]
    return [solid_image(COLOURS[name]) for name in colours]


completions = torch.randint(5, len(processor.tokenizer) - 20, (len(IMAGES), COMPLETION_LENGTH))


def in_float64(inputs) -> dict:
    return {
        key: value.double() if torch.is_tensor(value) and value.is_floating_point() else value
        for key, value in inputs.items()
    }


BATCH_IMAGES = in_float64(
    processor.image_processor(images=[images_of(row) for row in range(len(IMAGES))], return_tensors="pt")
)
MOST_IMAGES = max(len(images) for images in IMAGES)


def plain_logps(row: int) -> torch.Tensor:
    """Completion log-probs of one row with plain transformers: its text unpadded, with the processor's own mask
    for it extended over the completion by the last prompt position; its image inputs as the processor pads them
    in the batch (transformers' mllama lets the tokens before the first image token attend to every image slot,
    padding included, so a row's log-probs depend on how many image slots its batch has)."""
    inputs = processor(images=[images_of(row)], text=[prompt_text(row)], return_tensors="pt")
    ids = torch.cat([inputs["input_ids"], completions[row : row + 1]], dim=1)
    mask = inputs["cross_attention_mask"]
    mask = torch.nn.functional.pad(mask, (0, 0, 0, MOST_IMAGES - mask.shape[2]))
    mask = torch.cat([mask, mask[:, -1:].expand(-1, COMPLETION_LENGTH, -1, -1)], dim=1)
    image_inputs = {
        key: BATCH_IMAGES[key][row : row + 1] for key in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")
    }
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), cross_attention_mask=mask, **image_inputs).logits
    logps = logits[:, -COMPLETION_LENGTH - 1 : -1].log_softmax(-1)
    return logps.gather(-1, completions[row : row + 1, :, None]).squeeze(-1)[0]


def vision_gradient() -> torch.Tensor:
    return torch.cat(
        [p.grad.flatten() for n, p in model.named_parameters() if "vision_model" in n and p.grad is not None]
    )


reference = torch.stack([plain_logps(row) for row in range(len(IMAGES))])
# bnpo with one process, no accumulation, every ratio 1 at the first step: the loss's gradient is that of
# -sum(A * logp) / tokens.
model.zero_grad()
(-(ADVANTAGES[:, None] * reference).sum() / reference.numel()).backward()
reference_gradient = vision_gradient().clone()
reference = reference.detach()
model.zero_grad()

import unsloth_vlm_grpo  # noqa: E402

if mode == "patched":
    unsloth_vlm_grpo.patch(strict=True)
import unsloth  # noqa: E402,F401
import unsloth.models.rl as rl  # noqa: E402

rl._patch_trl_rl_trainers("grpo_trainer")
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

args = GRPOConfig(
    output_dir=tempfile.mkdtemp(),
    max_steps=1,
    per_device_train_batch_size=4,
    num_generations=2,
    max_completion_length=COMPLETION_LENGTH,
    report_to="none",
    optim="adamw_torch",
    bf16=False,
    use_cpu=True,
    loss_type="bnpo",
    beta=0.0,
)
trainer = GRPOTrainer(
    model=model,
    processing_class=processor,
    reward_funcs=lambda completions, **kw: [0.0] * len(completions),
    args=args,
    train_dataset=colour_dataset(rows=8),
)
result = {"trainer_class": f"{type(trainer).__module__}.{type(trainer).__qualname__}"}


def batch(swapped: bool = False) -> dict:
    processor.tokenizer.padding_side = "left"
    rows = range(len(IMAGES))
    return in_float64(
        processor(
            images=[images_of(row, swapped) for row in rows],
            text=[prompt_text(row) for row in rows],
            padding=True,
            return_tensors="pt",
        )
    )


def unsloth_logps(rows_per_chunk: int, swapped: bool = False) -> torch.Tensor:
    inputs = batch(swapped)
    trainer.args.unsloth_grpo_mini_batch = len(IMAGES) // rows_per_chunk  # the number of chunks
    ids = torch.cat([inputs["input_ids"], completions], dim=1)
    mask = torch.cat([inputs["attention_mask"], torch.ones_like(completions)], dim=1)
    fields = {key: value for key, value in inputs.items() if key not in ("input_ids", "attention_mask")}
    num_images = [len(images) for images in IMAGES]
    with torch.no_grad():
        return trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, mask, COMPLETION_LENGTH, batch_size=rows_per_chunk, num_images=num_images, **fields
        )[0]


def report(name, compute):
    try:
        result[name] = compute()
    except Exception as error:  # reported, not raised: the test reads it
        result[name] = f"{type(error).__name__}: {error}"


for rows_per_chunk in (1, 2, 4):
    report(
        f"logps_difference_chunks_of_{rows_per_chunk}",
        lambda rows=rows_per_chunk: (unsloth_logps(rows) - reference).abs().max().item(),
    )
report("logps_change_when_images_swap", lambda: (unsloth_logps(2, swapped=True) - reference).abs().max().item())


def loss_gradient_difference():
    inputs = batch()
    trainer.args.unsloth_grpo_mini_batch = 2
    loss_inputs = {
        "prompt_ids": inputs["input_ids"],
        "prompt_mask": inputs["attention_mask"],
        "completion_ids": completions,
        "completion_mask": torch.ones_like(completions),
        "advantages": ADVANTAGES,
        "num_images": [len(images) for images in IMAGES],
        # As image_batch_normalisation carries them: each image's tiles, one position long.
        "pixel_values": inputs["pixel_values"],
        "aspect_ratio_ids": inputs["aspect_ratio_ids"],
        "aspect_ratio_mask": inputs["aspect_ratio_mask"],
        "cross_attention_mask": inputs["cross_attention_mask"].amax(dim=1, keepdim=True),
    }
    model.zero_grad()
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, loss_inputs)
    loss.backward()
    gradient = vision_gradient()
    result["vision_gradient_norm"] = gradient.norm().item()
    return ((gradient - reference_gradient).norm() / reference_gradient.norm()).item()


report("loss_vision_gradient_relative_difference", loss_gradient_difference)
result["reference_vision_gradient_norm"] = reference_gradient.norm().item()
print("RESULT " + json.dumps(result))
