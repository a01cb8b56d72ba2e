"""Probe: the source fingerprint of every patch target on the installed stack, TRL's and Unsloth's.

Prints ``RESULT {"label": "fingerprint", ...}``. Unsloth's trainer is generated for real on CPU
(UNSLOTH_ALLOW_CPU=1, then ``_patch_trl_rl_trainers``)."""

import json
import os

os.environ["UNSLOTH_ALLOW_CPU"] = "1"

import transformers.models.mllama.modeling_mllama  # noqa: E402,F401
import transformers.models.mllama.processing_mllama  # noqa: E402,F401
import trl.kernels.chunked_logprob  # noqa: E402,F401
import trl.trainer.grpo_trainer  # noqa: E402,F401

from unsloth_vlm_grpo._engine import FOLLOW_UNSLOTH_TRAINER, fingerprint  # noqa: E402
from unsloth_vlm_grpo.patches import ALL_PATCHES  # noqa: E402

found = {}


def collect():
    for patch in (FOLLOW_UNSLOTH_TRAINER, *ALL_PATCHES):
        for site in patch.sites() + patch.watched_sites():
            found[site.label] = {"patch": patch.name, "fingerprint": fingerprint(site.fingerprint_source)}


collect()
import unsloth  # noqa: E402,F401
import unsloth.models.rl as rl  # noqa: E402

rl._patch_trl_rl_trainers("grpo_trainer")
collect()
print("RESULT " + json.dumps(found))
