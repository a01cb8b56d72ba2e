"""Probe: the placeholder stress run on TRL's class WITHOUT the library (control), on CPU.

Run with TRITON_INTERPRET=1 so TRL's own fused-head kernel works on CPU; the only thing missing is
the library's placeholder handling. Prints ``RESULT {"outcome": ..., "error": ...}``."""

import json
import sys
import tempfile

sys.path.insert(0, sys.argv[2])
from trl import GRPOTrainer  # noqa: E402

from unsloth_vlm_grpo.tiny import build_tiny_vlm, favour_token  # noqa: E402

from grpo_helpers import colour_dataset, distinct_characters_reward, grpo_config  # noqa: E402

tiny = build_tiny_vlm(sys.argv[1])
favour_token(tiny.model, tiny.processor, tiny.model.config.image_token_id)
trainer = GRPOTrainer(
    model=tiny.model,
    processing_class=tiny.processor,
    reward_funcs=distinct_characters_reward,
    args=grpo_config(tempfile.mkdtemp(), max_steps=3),
    train_dataset=colour_dataset(),
)
try:
    trainer.train()
    result = {"outcome": "trained"}
except Exception as error:  # noqa: BLE001 - the control is expected to fail
    result = {"outcome": "crashed", "error": f"{type(error).__name__}: {error}"[:300]}
print("RESULT " + json.dumps(result))
