#!/usr/bin/env python3
"""Speed of the learned models at the shipped configs (weights are random: speed does not depend on them).

    python benchmarks/bench_models.py [--threads 1] [--iters 50] [--device cpu|cuda] [--compile]
    python benchmarks/bench_models.py --checkpoint models/policy.safetensors   # a checkpoint as the policy node runs it

With ``--checkpoint``: ``LearnedPolicy.act`` at batch 1 on a 128² frame, whatever the checkpoint is (an image
policy, or a bundle: state estimator + state policy), and, for a bundle, reading the skill off a prompt clip.

Prints: stage-1 training samples/s (one optimiser step on a batch of cached latents, the training
loop's inner step), the representation pass at batch 1 (ms p50/p95: frame encode + one denoiser pass),
and a whole policy action chunk at batch 1 (representation + Video Former + DDIM, ms p50/p95, chunks/s).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from humanprompt_ros.config.loader import load_config
from humanprompt_ros.config.stage1 import Stage1Config
from humanprompt_ros.config.stage2 import Stage2Config
from humanprompt_ros.models.policy_model import PromptPolicyModel, compile_for_inference
from humanprompt_ros.models.video_model import build_video_model, prepare_frame
from humanprompt_ros.paths import config_path


def percentiles(xs: list[float]) -> str:
    a = np.asarray(xs) * 1e3
    return f"p50 {np.percentile(a, 50):7.2f} ms  p95 {np.percentile(a, 95):7.2f} ms"


def time_checkpoint(path: str, iters: int, threads: int) -> None:
    from humanprompt_ros.policies.learned import LearnedPolicy, blank_clip

    policy = LearnedPolicy(path, threads=threads)
    rng = np.random.default_rng(0)
    cfg = policy.model.cfg
    if cfg.sees_images:
        vm = policy.model.video_model.cfg
        policy.set_encoded(policy.model.encode_prompt(rng.integers(0, 255, (vm.prompt_frames, 64, 64, 3), np.uint8)))
    else:
        policy.set_encoded(None, 0)
    if policy.embedding is not None:
        clip = blank_clip(policy.embedding.video_model.cfg)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            policy.embedding.recognize(clip)
            times.append(time.perf_counter() - t0)
        print(f"prompt → skill (prompt embedding, once per prompt): {percentiles(times[2:])}")
    frame = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    times = []
    for i in range(iters + 3):
        policy.reset()
        t0 = time.perf_counter()
        policy.act(frame, np.zeros(24))
        if i >= 3:
            times.append(time.perf_counter() - t0)
    what = "state estimator + state policy" if policy.estimator is not None else "image policy"
    print(
        f"{path}: act() ({what}, {cfg.policy.inference_steps}-step DDIM, H={cfg.policy.horizon}), batch 1, "
        f"{torch.get_num_threads()} thread(s): {percentiles(times)}  → {1 / np.median(times):.1f} chunks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the inference networks (CUDA graphs on a GPU; see compile_for_inference)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override config/stage2.yaml, e.g. --set policy.global_cond=true "
        "--set policy.global_dropout=0.1 --set policy.guidance=2 (guided: two head passes per step)",
    )
    parser.add_argument("--checkpoint", default=None, help="time this checkpoint's act() instead (see above)")
    args = parser.parse_args()
    if args.checkpoint:
        time_checkpoint(args.checkpoint, args.iters, args.threads)
        return
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    s1 = load_config(Stage1Config, config_path("stage1.yaml"))
    s2 = load_config(Stage2Config, config_path("stage2.yaml"), args.set)
    s2.skills, s2.tasks = ["a", "b"], ["a", "b"]
    m = s1.model
    torch.manual_seed(0)
    video = build_video_model(m).to(dev)
    print(
        f"device {dev}, torch threads {torch.get_num_threads()}, stage-1 {m.backbone} {m.image_size}² "
        f"T={m.clip_frames} width {m.width} depth {m.depth}; params {sum(p.numel() for p in video.parameters()) / 1e6:.2f} M"
    )

    # Stage-1 training step on latents (what the loop does after caching the frames' latents).
    b, ls = s1.train.batch_size, m.latent_size
    prompt = torch.randn(b, m.prompt_frames, m.latent_channels, ls, ls, device=dev)
    first = torch.randn(b, m.latent_channels, ls, ls, device=dev)
    target = torch.randn(b, m.clip_frames, m.latent_channels, ls, ls, device=dev)
    opt = torch.optim.AdamW([p for n, p in video.named_parameters() if not n.startswith("autoencoder.")], lr=1e-4)
    times = []
    for i in range(args.train_steps + 2):
        t0 = time.perf_counter()
        loss = video.loss(prompt, first, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    print(f"stage-1 training: {b / np.mean(times):8.1f} samples/s (batch {b}, {np.mean(times) * 1e3:.0f} ms/step)")

    # Representation pass and whole chunk at batch 1.
    video.eval()
    policy = PromptPolicyModel(s2, s1, video).to(dev).eval()
    pc = s2.policy
    print(f"stage-2 head: width {pc.width} depth {pc.depth}, global_cond {pc.global_cond}, guidance {pc.guidance}")
    warmup = 3
    if args.compile:
        compile_for_inference(policy)
        warmup = 15  # compilation, then CUDA-graph recording, happen in the first calls
    frame = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    tokens = policy.encode_prompt(np.random.default_rng(1).integers(0, 255, (51, 128, 128, 3), dtype=np.uint8))
    proprio = torch.zeros(1, 24, device=dev)
    rep, chunk = [], []
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        for i in range(args.iters + warmup):
            if args.compile:
                torch.compiler.cudagraph_mark_step_begin()  # earlier outputs are no longer used
            t0 = time.perf_counter()
            video.features(tokens, prepare_frame(video, frame).to(dev))
            sync()
            t1 = time.perf_counter()
            cond = policy.condition_on_frame(tokens, frame)
            policy.sample_actions(cond, proprio)
            sync()
            t2 = time.perf_counter()
            if i >= warmup:  # warm-up excluded
                rep.append(t1 - t0)
                chunk.append(t2 - t1)
    print(f"representation pass (frame encode + 1 denoiser pass), batch 1: {percentiles(rep)}")
    print(
        f"action chunk (representation + Video Former + {s2.policy.inference_steps}-step DDIM, H={s2.policy.horizon}), "
        f"batch 1: {percentiles(chunk)}  → {1 / np.median(chunk):.1f} chunks/s"
    )


if __name__ == "__main__":
    main()
