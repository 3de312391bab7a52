"""``config/stage2.yaml``: the stage-2 run (the prompt-conditioned diffusion policy and how it trains).

Ablations are switches here, so one code path trains every row of the results table:
``condition: prompt | none | skill_oracle``, ``pdcp.enabled``, ``stage1_pretrained``. ``condition: state``
is the simulator-only research variant that sees the true scene state instead of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from humanprompt_ros.config.loader import load_config
from humanprompt_ros.config.train import TrainConfig
from humanprompt_ros.models.diffusion_head import PolicyModelConfig
from humanprompt_ros.models.frame_encoder import FrameEncoderConfig
from humanprompt_ros.models.pdcp import PDCPConfig
from humanprompt_ros.models.state_encoder import StateEncoderConfig
from humanprompt_ros.models.video_former import VideoFormerConfig

CONDITIONS = ("prompt", "none", "skill_oracle", "state")
PROMPT_EMBODIMENTS = ("human", "same", "any")


@dataclass
class PDCPSwitch(PDCPConfig):
    enabled: bool = True
    # true: z also pools the frame encoder's image points, so PDCP pulls them together across
    # embodiments as well (by default they stay out: where things are is not what the task is)
    image_points: bool = False
    # which tokens z pools: scene (the Video Former tokens of prompt + current frame, and the projected
    # prompt tokens) or prompt (the projected prompt tokens only). With scene, every robot frame in
    # training belongs to a robot skill, so the prototypes can name the skill from the robot hand in view
    # instead of from the prompt (experiments/2026-11-30-twin-pairs.md); prompt leaves z only the prompt to read.
    pool: str = "prompt"
    # with align_weight > 0: pairs per step for the paired cross-embodiment term (the same task, scene
    # seed and moment by a human and by the robot; only data that has such twins, like HumanPrompt-Sim)
    align_pairs: int = 16

    def validate(self) -> None:
        super().validate()
        if self.pool not in ("scene", "prompt"):
            raise ValueError(f"pool: must be 'scene' or 'prompt', got {self.pool!r}")
        if self.align_pairs < 2:
            raise ValueError(f"align_pairs: at least 2 (the other pairs are the negatives), got {self.align_pairs}")


@dataclass
class Stage2Train(TrainConfig):
    steps: int = 40000
    weight_decay: float = 1e-4
    checkpoint_every: int = 1000
    # With a frozen (pretrained) stage 1, its representation of every training frame is computed once
    # for this many prompts per episode and kept on disk next to the stage-1 checkpoint; 0 computes
    # it every step with a fresh random prompt (slow on a CPU: the stage-1 pass dominates a step).
    cached_prompts: int = 2
    # which training episode a sample comes from: episode (each episode alike) or skill (a skill drawn
    # uniformly, then one of its episodes, so a skill with few episodes is seen as often as the others)
    balance: str = "episode"
    # at most this many steps of an episode's final hold (the trailing run of one repeated action after the
    # expert is done) are sampled as the current step; -1 samples the whole episode
    hold_steps: int = -1
    # > 0: the checkpoint holds an exponential moving average of the weights with this decay (the raw weights
    # go on training and are what a resume continues); 0: the weights as trained
    ema_decay: float = 0.0

    def validate(self) -> None:
        if self.balance not in ("episode", "skill"):
            raise ValueError(f"balance: must be 'episode' or 'skill', got {self.balance!r}")
        if self.hold_steps < -1:
            raise ValueError(f"hold_steps: -1 (keep the whole hold) or >= 0, got {self.hold_steps}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay: must be within [0, 1), got {self.ema_decay}")


@dataclass
class Stage2Config:
    # dataset directory, a glob of them, or a list of either, read as one (humanprompt_ros.data.dataset_roots):
    # e.g. [data/humanprompt-sim/train80, data/real/*]. One frame rate; robot episodes of ``hand`` only
    data: str | list[str]
    stage1: str  # stage-1 checkpoint (its prompt encoder and video model stay frozen)
    # optional dataset of extra human demonstrations used only as prompts (never as action targets):
    # human videos are cheap, and a policy prompted by a few dozen demos per task learns those demos,
    # not the task (experiments/2026-11-30-twin-pairs.md)
    prompt_data: str | list[str] = ""  # as ``data``; "" or []: none
    # optional policy checkpoint whose weights (stage 1 and normalisers included) start this run instead of
    # ``stage1`` + random ones: fine-tuning, e.g. with stage1_trainable or other losses. Same hand, tasks and
    # architecture; the optimiser starts fresh. A resumed run continues from its own last checkpoint.
    init: str = ""
    hand: str = "allegro_right"  # the robot hand this policy is for (checked when loaded)
    out: str = "runs/stage2"
    # prompt | none (behaviour cloning) | skill_oracle (true skill id) | state (true skill id + the simulator's
    # privileged scene state instead of any image: can the head and the data do the tasks at all?)
    condition: str = "prompt"
    # which demonstrations prompt a training sample of task k: human (a human demo of k whenever there is
    # one, as at test time), same (one by the sample's own embodiment: robot frames learn from robot
    # prompts only, so a human prompt on the robot is the cross-embodiment case PDCP's NT-Xent is for) or
    # any (either embodiment)
    prompt_embodiment: str = "same"
    stage1_pretrained: bool = True  # false: the stage-1 architecture with random weights (the ablation)
    stage1_trainable: bool = False  # true: the stage-1 prompt encoder + denoiser train with the policy loss
    prompt_tokens: bool = True  # the head also attends to the stage-1 prompt tokens, not only the features
    # false: no per-frame stage-1 representation (no Video Former tokens, no stage-1 denoiser pass per frame):
    # the head reads the task from the prompt tokens (or the oracle's skill token) and the scene from the
    # frame encoder alone
    stage1_features: bool = True
    # all: the head sees every proprio dimension; hand: only those of fingers the robot hand has; wrist:
    # only the wrist pose (fingertips differ by embodiment even where both hands have the finger). The
    # training run writes the mask into policy.proprio_mask, so the checkpoint carries it.
    proprio: str = "hand"
    video_former: VideoFormerConfig = field(default_factory=VideoFormerConfig)
    # the policy's own current-frame encoder (image points for the head, see models/frame_encoder.py)
    frame_encoder: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)
    policy: PolicyModelConfig = field(default_factory=PolicyModelConfig)
    state_encoder: StateEncoderConfig = field(default_factory=StateEncoderConfig)  # condition: state only
    pdcp: PDCPSwitch = field(default_factory=PDCPSwitch)
    train: Stage2Train = field(default_factory=Stage2Train)
    skills: list[str] = field(default_factory=list)  # filled from the data at training time
    tasks: list[str] = field(default_factory=list)

    @property
    def reads_prompt_video(self) -> bool:
        """Whether stage-1 prompt tokens reach the head (through the features or as tokens)."""
        return self.sees_images and (self.stage1_features or self.prompt_tokens)

    @property
    def sees_images(self) -> bool:
        """False for ``condition: state``: no frame, stage-1 feature or prompt video reaches the head."""
        return self.condition != "state"

    def validate(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition: must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")
        if self.prompt_embodiment not in PROMPT_EMBODIMENTS:
            raise ValueError(
                f"prompt_embodiment: must be one of {', '.join(PROMPT_EMBODIMENTS)}, got {self.prompt_embodiment!r}"
            )
        if self.proprio not in ("all", "hand", "wrist"):
            raise ValueError(f"proprio: must be 'all', 'hand' or 'wrist', got {self.proprio!r}")
        if self.sees_images and not self.stage1_features and not self.frame_encoder.enabled:
            raise ValueError(
                "stage1_features: false leaves the frame encoder as the policy's only view of the scene: "
                "set frame_encoder.enabled: true"
            )
        if self.frame_encoder.state_weight > 0 and not (self.sees_images and self.frame_encoder.enabled):
            raise ValueError("frame_encoder.state_weight: an auxiliary loss of the frame encoder, which is off")
        if self.pdcp.pool == "prompt" and not self.prompt_tokens:
            raise ValueError("pdcp.pool: 'prompt' pools the projected prompt tokens; set prompt_tokens: true")


def load_stage2_config(path: str | Path, overrides: list[str] | None = None) -> Stage2Config:
    return load_config(Stage2Config, path, overrides)
