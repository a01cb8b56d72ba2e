"""Command line: ``python -m unsloth_vlm_grpo demo`` and ``python -m unsloth_vlm_grpo doctor``."""

from __future__ import annotations

import argparse
import logging
import sys

from ._doctor import run_doctor

# unsloth_vlm_grpo.tiny.FAMILIES, spelled out so that parsing arguments does not import torch.
DEMO_FAMILIES = ["gemma3", "qwen2_5_vl", "qwen2_vl", "qwen3_vl", "idefics3", "llava_next", "mllama"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unsloth-vlm-grpo", description="GRPO for VLMs with Unsloth and TRL.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="show installed vs verified versions and which patches would apply")
    demo = commands.add_parser("demo", help="train a tiny VLM (built offline) on a task only the image can answer")
    demo.add_argument("--steps", type=int, default=300, help="GRPO steps (default 300)")
    demo.add_argument("--output-dir", default="demo_output", help="where reward_curve.png and summary.json go")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--family", default="gemma3", choices=DEMO_FAMILIES, help="tiny model family (default gemma3)")
    demo.add_argument(
        "--no-control",
        dest="control",
        action="store_false",
        help="skip the blank-image control run (it doubles the time)",
    )
    demo.add_argument("--model", help="a local checkpoint directory to train instead (needs a GPU and Unsloth)")
    demo.add_argument("--load-in-4bit", action="store_true", help="with --model: QLoRA through bitsandbytes")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    if options.command == "doctor":
        return run_doctor(sys.stdout)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from . import demo

    if options.model:
        problem = demo.explain_model_requirements(options.model)
        if problem:
            logging.getLogger("unsloth_vlm_grpo.demo").error("%s", problem)
            return 2
        demo.run_model_demo(options.model, options.output_dir, options.steps, options.seed, options.load_in_4bit)
        return 0
    summary = demo.run_demo(options.output_dir, options.steps, options.seed, options.family, options.control)
    return 0 if summary["verdict"] == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
