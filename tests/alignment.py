"""Is every row of a GRPO batch scored as if it were alone? Shared by the CPU tests and the GPU probe."""

from __future__ import annotations

import torch

PER_TOKEN_FIELDS = ("token_type_ids", "mm_token_type_ids")


def alone_logps(trainer, row, completion_ids) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of ``completion_ids`` after ``row``'s prompt, in a forward of that row alone, and the
    prompt's ids."""
    from trl.data_utils import apply_chat_template

    processor, model = trainer.processing_class, trainer.model
    text = apply_chat_template({"prompt": row["prompt"]}, processor)["prompt"]
    encoded = processor(images=[row["image"]], text=[text], return_tensors="pt").to(completion_ids.device)
    fields = {key: value for key, value in encoded.items() if key not in ("input_ids", "attention_mask")}
    fields = {key: value.to(model.dtype) if value.is_floating_point() else value for key, value in fields.items()}
    completion = completion_ids.unsqueeze(0)
    for key in PER_TOKEN_FIELDS:
        if key in fields:
            fields[key] = torch.cat([fields[key], fields[key].new_zeros(completion.shape)], dim=1)
    if "cross_attention_mask" in fields:  # mllama: completion tokens see the images the prompt's last token sees
        last = fields["cross_attention_mask"][:, -1:]
        fields["cross_attention_mask"] = torch.cat(
            [fields["cross_attention_mask"], last.expand(-1, completion.size(1), *last.shape[2:])], dim=1
        )
    input_ids = torch.cat([encoded["input_ids"], completion], dim=1)
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **fields).logits
    logps = logits[0, -completion.size(1) - 1 : -1].float().log_softmax(-1)
    return logps.gather(-1, completion[0].unsqueeze(-1)).squeeze(-1), encoded["input_ids"][0]


def check_rows_score_as_if_alone(trainer, dataset, tolerance: float = 1e-4) -> None:
    """Generate and score two completions for each row of ``dataset`` as one batch; each row's old
    log-probs (TRL's scoring forward, with the inputs the loss uses) must equal a forward of it alone."""
    rows = [dataset[index] for index in range(len(dataset)) for _ in range(2)]
    trainer.model.train()
    output = trainer._generate_and_score_completions(rows)
    prompt_ids, prompt_mask = output["prompt_ids"], output["prompt_mask"].bool()
    completion_ids, completion_mask = output["completion_ids"], output["completion_mask"].bool()
    assert len({int(length) for length in prompt_mask.sum(1)}) > 1, "the batch must mix prompt lengths"
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    config = trainer.model.config
    image_token_id = getattr(config, "image_token_id", None) or getattr(config, "image_token_index", None)
    for key in PER_TOKEN_FIELDS:
        if key in output and image_token_id is not None:
            assert torch.equal(output[key] == 1, ids == image_token_id), f"{key} misaligned with the image tokens"
    for position, row in enumerate(rows):
        completion = completion_ids[position][completion_mask[position]]
        alone, alone_prompt = alone_logps(trainer, row, completion)
        assert torch.equal(prompt_ids[position][prompt_mask[position]], alone_prompt), f"row {position}: prompt ids"
        batched = output["old_per_token_logps"][position][: completion.numel()]
        torch.testing.assert_close(
            batched, alone, atol=tolerance, rtol=tolerance, msg=lambda m, p=position: f"row {p}: {m}"
        )
