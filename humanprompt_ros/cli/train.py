"""``humanprompt-train``: train and inspect the learned models.

    humanprompt-train stage1 --config config/stage1.yaml [--set train.steps=100 ...] [--fresh]
    humanprompt-train stage2 --config config/stage2.yaml [--set condition=none ...]
    humanprompt-train eval-stage1 --checkpoint runs/stage1/stage1.safetensors --train DIR --heldout DIR [--json]
    humanprompt-train eval-stage2 --checkpoint runs/stage2/policy.safetensors --heldout DIR [--json]
    humanprompt-train sample --checkpoint CK --prompt HUMAN_EPISODE_OR_VIDEO --first-frame ROBOT_EPISODE_OR_IMAGE --out pred.mp4
    humanprompt-train prompt-embedding --data data/v2/human --heldout data/v2/human_heldout --out runs/prompt.safetensors
    humanprompt-train estimator --data data/v2/robot,data/v2/human --twin-views --first-frame --out runs/est.safetensors
    humanprompt-train export --checkpoint runs/stage2/policy.safetensors --out models/policy.safetensors  # float16
    humanprompt-train export --checkpoint STATE_POLICY --estimator EST --prompt-embedding EMB --out models/policy.safetensors
    humanprompt-train export --stage1 --checkpoint models/policy.safetensors --out runs/stage1/stage1.safetensors

Multi-GPU / multi-node: ``torchrun --nproc_per_node N -m humanprompt_ros.cli.train stage1 --config ...``
(no code change: each rank draws its own batches, gradients are averaged by DistributedDataParallel).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from humanprompt_ros.cli.estimator import add_estimator_args, cmd_estimator
from humanprompt_ros.cli.export import add_export_args, cmd_export


def _by_root(episodes) -> str:
    """Where training episodes came from: per dataset root, how many of each embodiment."""
    roots: dict[str, list] = {}
    for e in episodes:
        roots.setdefault(e.root, []).append(e)
    return "; ".join(
        f"{root}: {sum(e.embodiment == 'human' for e in eps)} human, {sum(e.embodiment == 'robot' for e in eps)} robot"
        for root, eps in roots.items()
    )


def cmd_stage1(args: argparse.Namespace) -> int:
    from humanprompt_ros.config.stage1 import load_stage1_config
    from humanprompt_ros.train.stage1 import load_clip_episodes, train_stage1

    cfg = load_stage1_config(args.config, args.set)
    episodes = load_clip_episodes(cfg.data, cfg.model.image_size)
    print(f"[stage1] {len(episodes)} episodes ({_by_root(episodes)})")
    train_stage1(cfg, episodes, resume=not args.fresh)
    return 0


def cmd_stage2(args: argparse.Namespace) -> int:
    from humanprompt_ros.config.stage2 import load_stage2_config
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.stage2 import train_stage2
    from humanprompt_ros.train.stage2_data import load_policy_episodes

    cfg = load_stage2_config(args.config, args.set)
    _, s1cfg, _ = load_stage1(cfg.stage1)
    # a state-conditioned policy reads no frames: no video is decoded for it
    size = cfg.frame_encoder.image_size or s1cfg.model.image_size
    wants_state = not cfg.sees_images or cfg.frame_encoder.state_weight > 0
    episodes = load_policy_episodes(cfg.data, size, frames=cfg.sees_images, state=wants_state, hand=cfg.hand)
    print(
        f"[stage2] {len(episodes)} episodes ({_by_root(episodes)}); condition={cfg.condition}, "
        f"pdcp={'on' if cfg.pdcp.enabled else 'off'}, stage-1 {'pretrained' if cfg.stage1_pretrained else 'random'}"
    )
    # prompts only: their frame rate does not matter (a prompt is resampled over its whole length)
    prompts = load_policy_episodes(cfg.prompt_data, size, same_rate=False) if cfg.prompt_data else []
    if prompts:
        print(f"[stage2] + human demos as prompts only ({_by_root(e for e in prompts if e.embodiment == 'human')})")
    train_stage2(cfg, episodes, resume=not args.fresh, prompt_episodes=prompts)
    return 0


def cmd_prompt_embedding(args: argparse.Namespace) -> int:
    from humanprompt_ros.data import iter_episodes
    from humanprompt_ros.models.prompt_embedding import PromptEmbeddingConfig, save_prompt_embedding
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.prompt_embedding import PromptEmbeddingTraining, recognition, train_prompt_embedding

    def demos(spec: str) -> list:
        found = list(iter_episodes(spec.split(","), embodiment="human", success=True))
        if not found:
            raise ValueError(
                f"{spec}: no successful human demonstrations (humanprompt-sim generate --embodiment human)"
            )
        return found

    video_model, s1cfg, _ = load_stage1(args.stage1)  # a ValueError here: main prints it (exit code 2)
    episodes = demos(args.data)
    heldout = demos(args.heldout) if args.heldout else []
    print(f"[prompt-embedding] {len(episodes)} human demonstrations ({_by_root(episodes)})")
    run = PromptEmbeddingTraining(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    cfg = PromptEmbeddingConfig(stage1_tokens=not args.no_stage1)
    if args.no_pdcp:  # the nearest-prototype cross-entropy stays: it is what names the skill
        cfg.pdcp = dataclasses.replace(cfg.pdcp, nt_xent_weight=0.0, siamese_weight=0.0)
    model = train_prompt_embedding(episodes, video_model, s1cfg, cfg, run)
    out = save_prompt_embedding(args.out, model, data=args.data, steps=args.steps)
    print(f"wrote {out} (skills: {', '.join(model.cfg.skills)})")
    if heldout:
        table = recognition(model, heldout)
        right = sum(c.get(s, 0) for s, c in table.items())
        print(f"held-out prompts recognised: {right}/{len(heldout)}")
        for skill, counts in table.items():
            wrong = {k: v for k, v in counts.items() if k != skill}
            print(f"  {skill:<14} {counts.get(skill, 0)}/{sum(counts.values())}  {wrong or ''}")
        if args.json:
            print(json.dumps({"recognised": right, "prompts": len(heldout), "skills": table}))
    return 0


def cmd_eval_stage1(args: argparse.Namespace) -> int:
    from humanprompt_ros.eval.stage1 import evaluate_stage1
    from humanprompt_ros.models.video_model import load_stage1
    from humanprompt_ros.train.stage1 import load_clip_episodes

    model, cfg, _ = load_stage1(args.checkpoint, device=args.device)
    train = load_clip_episodes(args.train, cfg.model.image_size)
    heldout = load_clip_episodes(args.heldout, cfg.model.image_size)
    from humanprompt_ros.sim.tasks import twin_tasks

    result = evaluate_stage1(
        model,
        cfg,
        train,
        heldout,
        max_targets=args.max_targets,
        seed=args.seed,
        methods=args.methods.split(","),
        twins=twin_tasks(),
        guidance=[float(g) for g in args.guidance.split(",")],
    )
    print(
        "prediction on held-out robot episodes (robot first frame + human prompt; mean = one denoiser pass "
        "at the noisiest step, the expected future; sample = DDIM; other-task = the twin task when there is one):"
    )
    print(f"  {'condition':<40} {'PSNR dB':>8} {'SSIM':>6}  per-frame PSNR")
    for name, row in result["prediction"].items():
        print(f"  {name:<40} {row['psnr']:8.2f} {row['ssim']:6.3f}  {row['psnr_per_frame']}")
    print("same-task minus other-task prompt, per clip (does the prompt's content help?):")
    for name, d in result["same_minus_other"].items():
        print(
            f"  {name:<28} PSNR {d['psnr']:+.3f} dB (95% CI {d['psnr_ci95'][0]:+.3f} … {d['psnr_ci95'][1]:+.3f}), "
            f"SSIM {d['ssim']:+.4f}, same better on {100 * d['a_better']:.0f}% of {d['clips']} clips"
        )
    print("task identification from held-out human prompts (pooled representation):")
    for name, row in result["probe"].items():
        print(
            f"  {name:<10} prototype {row['prototype']:.3f}  linear {row['linear']:.3f}  (chance {row['chance']:.3f})"
        )
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_eval_stage2(args: argparse.Namespace) -> int:
    from humanprompt_ros.eval.actions import evaluate_actions
    from humanprompt_ros.models.policy_model import load_policy_model
    from humanprompt_ros.sim.benchmark import load_benchmark
    from humanprompt_ros.sim.tasks import twin_tasks
    from humanprompt_ros.train.stage2_data import load_policy_episodes

    model, _ = load_policy_model(args.checkpoint, device=args.device)
    heldout = load_policy_episodes(args.heldout, model.stage1_cfg.model.image_size)
    bench = load_benchmark(args.benchmark)
    result = evaluate_actions(
        model,
        heldout,
        times=args.times,
        seed=args.seed,
        groups={"seen": bench.robot_skills, "unseen": bench.human_only_skills},
        twins=twin_tasks(),
    )
    print(
        "open-loop action error on held-out robot demos (cm, mean over the chunk), prompted by a held-out "
        "human demo of the same task vs of another task (its twin when it has one; same sampling noise):"
    )
    print("  (hold: a hand that keeps its current pose; a policy that has learned where to move is closer)")
    print(
        f"  {'skill':<14} {'wrist same':>10} {'other':>7} {'hold':>6} {'tips same':>10} {'other':>7} {'hold':>6}"
        f"  same better"
    )
    for name, r in [*result["skills"].items(), *((k, result[k]) for k in ("seen", "unseen") if k in result)]:
        print(
            f"  {name:<14} {r['wrist_same']:10.2f} {r['wrist_other']:7.2f} {r['wrist_hold']:6.2f} "
            f"{r['tips_same']:10.2f} {r['tips_other']:7.2f} {r['tips_hold']:6.2f}  "
            f"{100 * r['same_better']:.0f}% of {r['samples']}"
        )
    if args.json:
        print(json.dumps(result))
    return 0


def _first_frame(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An episode/video (its first frame, and the whole video as ground truth) or an image."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))[..., :3], None
    from humanprompt_ros.data import load_prompt

    frames = load_prompt(path, min_frames=1).frames()
    return frames[0], frames


def cmd_sample(args: argparse.Namespace) -> int:
    from humanprompt_ros.data import load_prompt
    from humanprompt_ros.models.video_model import load_stage1, predict_video
    from humanprompt_ros.train.stage1 import clip_indices
    from humanprompt_ros.video import resize_frames, write_video

    model, cfg, _ = load_stage1(args.checkpoint)
    prompt = load_prompt(args.prompt).frames()
    first, truth = _first_frame(args.first_frame)
    pred = predict_video(model, prompt, first, seed=args.seed, method=args.method, guidance=args.guidance)
    size = cfg.model.image_size
    panels = [resize_frames(prompt[np.round(np.linspace(0, len(prompt) - 1, len(pred))).astype(int)], size), pred]
    if truth is not None:
        panels.append(resize_frames(truth[clip_indices(len(truth), 0, len(pred), cfg.clip_stride)], size))
    video = np.concatenate(panels, axis=2)  # prompt | prediction | ground truth, side by side
    write_video(args.out, np.kron(video, np.ones((1, 3, 3, 1), np.uint8)), fps=args.fps)
    print(
        f"wrote {args.out}: prompt | predicted{' | ground truth' if truth is not None else ''} "
        f"({len(pred)} frames, {cfg.clip_stride} sim steps apart)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="humanprompt-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stage1", help="train the cross-prediction video model")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--fresh", action="store_true", help="ignore an existing run's last checkpoint")
    p.set_defaults(func=cmd_stage1)
    p = sub.add_parser("stage2", help="train the prompt-conditioned diffusion policy (PDCP)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--fresh", action="store_true", help="ignore an existing run's last checkpoint")
    p.set_defaults(func=cmd_stage2)
    p = sub.add_parser("prompt-embedding", help="train the prompt embedding that tells a prompt's skill (PDCP)")
    p.add_argument("--data", required=True, help="human demonstrations of every skill (dataset roots, comma-separated)")
    p.add_argument("--heldout", default=None, help="held-out human demonstrations: print how many are recognised")
    p.add_argument("--stage1", default="models/stage1.safetensors", help="the frozen stage-1 model it reads")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print the held-out result as one JSON line")
    p.add_argument(
        "--no-pdcp",
        action="store_true",
        help="ablation: without PDCP's contrastive terms (NT-Xent, Siamese); the prototype cross-entropy stays",
    )
    p.add_argument("--no-stage1", action="store_true", help="ablation: the clip CNN alone, no stage-1 prompt tokens")
    p.set_defaults(func=cmd_prompt_embedding)
    p = sub.add_parser("estimator", help="train the state estimator that reads the scene state off camera frames")
    add_estimator_args(p)
    p.set_defaults(func=cmd_estimator)
    p = sub.add_parser("eval-stage1", help="prediction quality and task probes on held-out episodes")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--train", type=Path, required=True, help="training dataset (probe prototypes / fit)")
    p.add_argument("--heldout", type=Path, required=True, help="held-out dataset")
    p.add_argument("--max-targets", type=int, default=48)
    p.add_argument(
        "--methods",
        default="mean,sample",
        help="prediction methods to report: mean (one pass, the expected future), sample (DDIM)",
    )
    p.add_argument(
        "--guidance",
        default="1",
        help="classifier-free guidance scales to report, comma-separated (> 1 needs prompt_dropout)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    p.set_defaults(func=cmd_eval_stage1)
    p = sub.add_parser("eval-stage2", help="open-loop action error on held-out robot demos, same- vs other-task prompt")
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--heldout", required=True, help="held-out episodes with robot demos (generate --all-robot)")
    p.add_argument("--times", type=int, default=4, help="evaluated steps per episode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--benchmark", default=None, help="splits file for the seen/unseen groups (default config/benchmark.yaml)"
    )
    p.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    p.set_defaults(func=cmd_eval_stage2)
    p = sub.add_parser("sample", help="predict the robot video for a human prompt and a first frame")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--prompt", type=Path, required=True)
    p.add_argument("--first-frame", type=Path, required=True, help="robot episode/video (first frame) or image")
    p.add_argument("--out", type=Path, required=True, help=".mp4 or .gif")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--method",
        choices=["sample", "mean"],
        default="sample",
        help="sample: DDIM (one plausible future); mean: one pass, the expected future",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the checkpoint's guidance_scale)",
    )
    p.add_argument("--fps", type=float, default=4.0)
    p.set_defaults(func=cmd_sample)
    p = sub.add_parser(
        "export",
        help="copy a checkpoint with its weights stored in half precision (for shipping), optionally with a state "
        "estimator and a prompt embedding inside (a bundle)",
    )
    add_export_args(p)
    p.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad config, checkpoint, prompt or dataset: say what, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
