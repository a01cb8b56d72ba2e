"""Proof that the policy learns from the images: on a task only the image can answer, mean reward rises
from chance to >= 0.9 through the patched stock GRPOTrainer; with every image blank it stays at chance.

Full fine-tuning of tiny random models (see unsloth_vlm_grpo.colour_task), 300 steps of 32 completions,
about 20-40 s per run on 2 CPU cores. Floating-point results differ between processors and RL amplifies the
differences, so no run is exact on another machine; what is asserted holds for every seed measured
(2-core Intel Xeon, 1 and 2 threads; see colour_task's docstring and CHANGELOG for the spread): last-20 mean
0.96-0.99 with images, within 0.05 of chance with blank images. Each family runs a different seed, so CI
covers several.
"""

import pytest

from unsloth_vlm_grpo.colour_task import COLOURS, ColourTaskRun, completion_text, train_colour_task

CHANCE = 1 / len(COLOURS)
LEARNED = 0.9  # last-20 mean every healthy run reaches (measured 0.96-0.99)
AT_CHANCE = 0.15  # how far from chance a run that cannot use the image may end (measured within 0.05)
STEPS = 300
# Gemma 3 (seed 0) and its blank control run as the demo, in tests/test_demo.py.
SEEDS = {"qwen2_5_vl": 1, "qwen3_vl": 2, "idefics3": 3, "llava_next": 4, "mllama": 5}
# The blank-image control shows the task needs the image; here for Qwen2.5-VL, for Gemma 3 in the demo.
CONTROL_FAMILIES = ["qwen2_5_vl"]


pytestmark = pytest.mark.usefixtures("patched")


def learned_from_chance(run: ColourTaskRun) -> bool:
    """Started at chance (the answer cannot be guessed) and ended well above it."""
    return run.mean(0, 10) < CHANCE + AT_CHANCE and run.mean(-20) >= LEARNED


@pytest.mark.parametrize("family", list(SEEDS))
def test_reward_rises_from_chance_with_images(family, tmp_path):
    run = train_colour_task(str(tmp_path), family=family, steps=STEPS, seed=SEEDS[family])
    assert len(run.rewards) == STEPS
    assert learned_from_chance(run), (run.mean(0, 10), run.mean(-20))


@pytest.mark.parametrize("family", CONTROL_FAMILIES)
def test_reward_stays_at_chance_with_blank_images(family, tmp_path):
    """Control: a model whose images carry nothing fails the learning criterion and stays at chance."""
    run = train_colour_task(str(tmp_path), family=family, steps=STEPS, seed=SEEDS[family], blank=True)
    assert not learned_from_chance(run)
    assert abs(run.mean(-20) - CHANCE) < AT_CHANCE, run.rewards[-20:]


def test_a_reward_that_ignores_the_answer_fails_the_criterion(tmp_path):
    """Control: a reward met without the image (any colour word) starts far above chance, so the criterion
    does not mistake it for learning from images."""

    def any_colour_word(completions, **kwargs):
        first_words = [completion_text(completion).split()[:1] for completion in completions]
        return [float(bool(words) and words[0] in COLOURS) for words in first_words]

    run = train_colour_task(str(tmp_path), family="qwen2_5_vl", steps=30, seed=0, reward=any_colour_word)
    assert not learned_from_chance(run)
    assert run.mean(0, 10) > CHANCE + AT_CHANCE
