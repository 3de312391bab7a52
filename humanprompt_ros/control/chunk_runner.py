"""Running a policy in real time: the active prompt's policy, atomic prompt swaps, and the queue of
actions computed ahead (ROS-free; the policy node is its thin adapter).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from typing import Any

import numpy as np


class PolicyRunner:
    """The ROS-free core: the active prompt's policy, atomic prompt swaps and the chunk queue (thread safe).

    Chunks are computed ahead (``lookahead``): when ``lookahead`` or fewer actions of the current
    chunk are left, the next chunk is requested from a worker thread with the freshest frame and
    proprio, while the control loop keeps executing the current one; it is appended when ready,
    so the hand does not pause for inference as long as inference takes less than ``lookahead``
    control periods. The protocol's ``act`` contract still holds: one call per chunk, each call's
    actions follow the previous call's (the learned policy's temporal ensembling counts steps that
    way). ``lookahead=0``: execute the whole chunk, then compute the next one on the control thread
    (the control loop stalls for the inference time; the observation is the newest possible).
    Only one ``act`` runs at a time; the first chunk of a prompt (nothing queued) is computed on the
    caller's thread.

    A chunk computed ahead comes from an observation taken as the action ``left + 1`` steps before
    the chunk's first step started. A backend whose ``act`` takes ``lag`` (the learned policy does)
    gets ``act(frame, proprio, lag=left + 1)`` and aligns its plan to the observation (plan index 0 =
    the observed step; it returns the actions from index ``lag``); other backends get
    ``act(frame, proprio)``, i.e. their chunk starts ``left + 1`` steps after the state it was planned
    from. Measured before the learned policy aligned, in a deterministic emulation of the graph
    (open_drawer, 10 held-out seeds): blocking 0.8, 2 actions ahead without alignment 0.3.
    """

    def __init__(self, template, warmup: bool = True, warmup_frame: np.ndarray | None = None, lookahead: int = 0):
        self.template = template
        self.warmup = warmup
        self.warmup_frame = warmup_frame if warmup_frame is not None else np.zeros((96, 96, 3), np.uint8)
        self.lookahead = int(lookahead)
        self._lock = threading.Lock()
        self.policy = None
        self.prompt_id = ""
        self.prompt: dict = {}
        self.queue: deque[tuple[np.ndarray, Any, float | None]] = deque()  # (action, stamp, inference s or None)
        self.chunk_stamp = None
        self.generation = 0  # bumps on every prompt change (cancels stale workers)
        self.epoch = 0  # bumps on every prompt change, clear and reset (drops chunks computed before)
        self._pending: threading.Thread | None = None  # the worker computing the next chunk
        self._pending_for: tuple = (None, -1)  # (policy, epoch) it computes for
        self._pending_error: BaseException | None = None
        self.counts = {"chunks_ahead": 0, "chunks_late": 0, "chunks_dropped": 0}

    def prepare(self, prompt: dict, proprio: np.ndarray | None = None, encoded: tuple | None = None):
        """Slow (worker thread): a copy of the backend with ``prompt`` set and warmed up; ``encoded`` =
        (tokens, skill) already computed for it (the learned backend's ``set_encoded``)."""
        policy = copy.copy(self.template)
        if encoded is not None:
            policy.set_encoded(*encoded)
        else:
            policy.set_prompt(prompt["path"])
        if self.warmup:
            policy.act(self.warmup_frame, np.zeros(24) if proprio is None else proprio)
            policy.reset()
        return policy

    def swap(self, prompt: dict, policy, generation: int) -> bool:
        with self._lock:
            if generation != self.generation:
                return False  # superseded by a newer prompt or a clear
            self.policy, self.prompt_id, self.prompt = policy, str(prompt.get("id", "")), prompt
            self._drop_queue()
            return True

    def next_generation(self) -> int:
        with self._lock:
            self.generation += 1
            return self.generation

    def _drop_queue(self) -> None:
        """(holds the lock) forget queued actions and any chunk being computed."""
        self.queue.clear()
        self.chunk_stamp = None
        self.epoch += 1

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self.policy, self.prompt_id, self.prompt = None, "", {}
            self._drop_queue()

    def reset(self) -> bool:
        self.wait_pending()  # never reset a policy while its act() runs on the worker
        with self._lock:
            if self.policy is None:
                return False
            self.policy.reset()
            self._drop_queue()
            return True

    @property
    def active(self) -> bool:
        return self.policy is not None

    @property
    def computing(self) -> bool:
        th = self._pending
        return th is not None and th.is_alive()

    def needs_chunk(self) -> bool:
        with self._lock:
            return self.policy is not None and not self.queue

    def wait_pending(self, timeout: float | None = None) -> None:
        th = self._pending
        if th is not None:
            th.join(timeout)

    @staticmethod
    def takes_lag(policy) -> bool:
        """Whether ``policy.act`` accepts ``lag`` (see :meth:`step`)."""
        import inspect

        try:
            return "lag" in inspect.signature(policy.act).parameters
        except (TypeError, ValueError):
            return False

    def _act(self, policy, frame, proprio, lag: int = 0) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        if lag and self.takes_lag(policy):
            chunk = np.asarray(policy.act(frame, proprio, lag=lag), np.float64)
        else:
            chunk = np.asarray(policy.act(frame, proprio), np.float64)
        dt = time.perf_counter() - t0
        if chunk.ndim != 2 or chunk.shape[1] != 24 or len(chunk) == 0:
            raise ValueError(f"the policy returned an action chunk of shape {chunk.shape}, expected (H, 24)")
        return chunk, dt

    def _extend(self, policy, epoch: int, chunk: np.ndarray, stamp, dt: float) -> bool:
        """(holds the lock) queue a chunk computed by ``policy`` for ``epoch``; False when it is stale."""
        if policy is not self.policy or epoch != self.epoch:
            self.counts["chunks_dropped"] += 1
            return False
        self.queue.extend((a, stamp, dt if i == 0 else None) for i, a in enumerate(chunk))
        return True

    def _worker(self, policy, epoch: int, frame, stamp, proprio, lag: int) -> None:
        try:
            chunk, dt = self._act(policy, frame, proprio, lag)
        except BaseException as exc:  # noqa: BLE001 - raised again on the control thread by step()
            with self._lock:
                if policy is self.policy and epoch == self.epoch:
                    self._pending_error = exc
            return
        with self._lock:
            self._extend(policy, epoch, chunk, stamp, dt)

    def step(self, frame_fn, proprio_fn) -> tuple[np.ndarray | None, Any, float | None]:
        """One control step: (action or None, stamp of the frame its chunk came from, inference seconds
        of its chunk when this is the chunk's first action, else None).

        ``frame_fn()`` returns (frame, stamp) of the latest observation and ``proprio_fn()`` the current
        proprio; both are called only when a chunk is requested.
        """
        th = self._pending
        with self._lock:
            if self._pending_error is not None:
                exc, self._pending_error = self._pending_error, None
                raise exc
            policy, epoch = self.policy, self.epoch
            if policy is None:
                return None, None, None
            queued = bool(self.queue)
        if not queued and th is not None and th.is_alive() and self._pending_for == (policy, epoch):
            th.join()  # the next chunk is late (inference slower than the lookahead): wait for it
            with self._lock:
                self.counts["chunks_late"] += 1
            return self.step(frame_fn, proprio_fn)
        if not queued:
            frame, stamp = frame_fn()
            chunk, dt = self._act(policy, frame, proprio_fn())
            with self._lock:
                if not self._extend(policy, epoch, chunk, stamp, dt):
                    return None, None, dt  # swapped or reset during inference: drop the old chunk
        with self._lock:
            if policy is not self.policy or epoch != self.epoch or not self.queue:
                return None, None, None
            action, stamp, dt = self.queue.popleft()
            self.chunk_stamp = stamp
            left = len(self.queue)
            request = 0 < left <= self.lookahead and not self.computing
        if request:
            frame, fstamp = frame_fn()
            # the frame shows the state as the action just popped starts: plan step 0 is that action, and
            # the new chunk begins after the ``left`` still queued, so its first step is plan step left + 1
            worker = threading.Thread(
                target=self._worker,
                args=(policy, epoch, frame, fstamp, proprio_fn(), left + 1),
                name="policy-next-chunk",
                daemon=True,
            )
            with self._lock:
                if policy is not self.policy or epoch != self.epoch:
                    return action, stamp, dt
                self._pending, self._pending_for = worker, (policy, epoch)
                self.counts["chunks_ahead"] += 1
            worker.start()
        return action, stamp, dt
