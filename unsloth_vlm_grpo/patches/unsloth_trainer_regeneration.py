"""Re-apply the library's patches to the trainer class Unsloth generates.

Target: ``unsloth.models.rl._patch_trl_rl_trainers`` (unsloth 2026.10.9).
Why: Unsloth rewrites ``trl.GRPOTrainer``'s source, execs it as a new module (not through the import
system, so no import hook sees it) and rebinds ``trl.GRPOTrainer`` to the result, which is not a subclass
of TRL's class. Wrappers put on TRL's class before that stay on the orphaned original. Wrapping the
function that does the rebinding lets ``patch()`` come before or after ``import unsloth``.
Remove when: Unsloth stops generating trainer classes, or offers a hook that runs after it does.
"""

from __future__ import annotations

from .._engine import FunctionTarget, Patch, refresh


def _refresh_after_regeneration(wrapped, _instance, args, kwargs):
    result = wrapped(*args, **kwargs)
    refresh()
    return result


PATCH = Patch(
    name="unsloth_trainer_regeneration",
    targets=(FunctionTarget("unsloth.models.rl", "_patch_trl_rl_trainers"),),
    wrapper=_refresh_after_regeneration,
    verified={"unsloth": "2026.10.9"},
    fingerprints={"unsloth.models.rl._patch_trl_rl_trainers": "37641ac968d223ff"},
    reason="Unsloth replaces trl.GRPOTrainer with a generated class that our earlier wrappers do not reach.",
    remove_when="Unsloth patches TRL by subclassing, or calls a documented hook after generating a trainer.",
)
