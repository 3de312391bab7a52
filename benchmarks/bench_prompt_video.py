"""How long does a long HD video take to become a prompt? (load + prepare + encode with a checkpoint)

    python benchmarks/bench_prompt_video.py                          # makes a 621-frame 1280x720 30 fps video
    python benchmarks/bench_prompt_video.py --video demo.mp4 --checkpoint runs/s2/policy.safetensors
    python benchmarks/bench_prompt_video.py --baseline               # also the old way: decode every frame

Without ``--video`` it writes a test video (ffmpeg's ``testsrc2`` pattern, H.264) of ``--frames`` frames at
``--size`` and ``--fps`` into a temporary directory. Each repeat times the stages the prompt encoder runs
(``humanprompt_ros.control.prompt.PromptValidator.validate``):

* ``load``: probe and validate (``data.load_prompt``: frame count, rate, size; nothing decoded);
* ``prepare``: decode only the clip's frames, each resized right after decoding (``Episode.prompt_clip``,
  resampled to the checkpoint's training rate, then to its clip length), and the frame autoencoder's latents;
* ``encode``: the prompt encoder → tokens;
* ``distance``: the prompt's distance from the checkpoint's PDCP skill prototypes;
* ``validate``: all of it end to end through ``PromptValidator.validate``.

``--baseline`` also times what the encoder did before: decode every frame at full size
(``read_video``), then resample. Prints one line per repeat, the best of each, and the peak memory (RSS,
which includes the baseline's when it ran). Not a CI test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_video(path: Path, frames: int, size: str, fps: float) -> Path:
    """A ``frames``-frame H.264 test video of ``size`` (WxH) at ``fps`` (ffmpeg's testsrc2 pattern)."""
    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={fps}",
    ]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]
    subprocess.run([*cmd, str(path)], check=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=None, help="a prompt video (default: make one)")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "models" / "policy.safetensors")
    ap.add_argument("--frames", type=int, default=621)
    ap.add_argument("--size", default="1280x720", help="WxH of the made video")
    ap.add_argument("--fps", type=float, default=30.0, help="frame rate of the made video")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the prompt encoder node uses 1)")
    ap.add_argument("--baseline", action="store_true", help="also time decoding every frame at full size")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the best times")
    args = ap.parse_args()

    import torch

    from humanprompt_ros.config.nodes import PromptEncoderConfig
    from humanprompt_ros.control.prompt import PromptValidator
    from humanprompt_ros.data import load_prompt
    from humanprompt_ros.models.video_model import prepare_prompt
    from humanprompt_ros.policies.prompt_fit import prototype_distance
    from humanprompt_ros.video import read_video

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-prompt-") as tmp:
        video = args.video
        if video is None:
            t0 = time.perf_counter()
            video = make_video(Path(tmp) / "prompt.mp4", args.frames, args.size, args.fps)
            print(
                f"made {video} ({args.frames} frames, {args.size}, {args.fps:g} fps) in {time.perf_counter() - t0:.1f} s"
            )
        validator = PromptValidator(
            PromptEncoderConfig(prompt_dirs=[], policy="checkpoint", checkpoint=str(args.checkpoint))
        )
        policy, limits = validator.backend, validator.limits()
        model = policy.model
        best: dict[str, float] = {}
        for rep in range(args.repeat):
            t = {}
            t0 = time.perf_counter()
            ep = load_prompt(video, limits=limits)
            t["load"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            clip, plan = policy.prompt_clip(ep)
            latents = model.prompt_latents(clip)
            t["prepare"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with torch.no_grad():
                tokens = model.video_model.encode_prompt(latents)
            t["encode"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            distance = prototype_distance(model, tokens, clip[0])[0] if validator.has_distance else None
            t["distance"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            info = validator.validate(str(video))
            t["validate"] = time.perf_counter() - t0
            if args.baseline:
                t0 = time.perf_counter()
                frames = read_video(video)
                with torch.no_grad():
                    model.video_model.encode_prompt(prepare_prompt(model.video_model, frames))
                t["baseline_decode_all"] = time.perf_counter() - t0
                del frames
            best = {k: min(v, best.get(k, v)) for k, v in t.items()}
            print(f"repeat {rep}: " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()))
        print(
            f"video: {info['frames']} frames, {info['size'][0]}x{info['size'][1]}, {info['fps']} fps, "
            f"{info['duration_s']} s → {plan.frames_used} frames at {plan.fps} Hz ({info['prompt_fps_source']}) → "
            f"clip of source frames {list(plan.indices)}; distance {distance}"
        )
        print("best: " + ", ".join(f"{k} {v:.3f} s" for k, v in best.items()))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory (RSS): {peak:.0f} MB")
        if args.json:
            print(json.dumps({**{k: round(v, 4) for k, v in best.items()}, "peak_rss_mb": round(peak)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
