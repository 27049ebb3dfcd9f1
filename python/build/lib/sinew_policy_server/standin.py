"""A scripted stand-in for a learned policy (numpy only): for tests and for trying the protocol without a GPU.

Each answer is a chunk of `steps` actions, `step_s` apart, that moves every joint of the observed state along a
slow sine about where the state was when the first observation came, continuing from where the previous chunk
was. Options make it misbehave on purpose: a NaN in every n-th chunk, a delay, a wrong shape.
"""

import math
import time

import numpy as np


class StandInPolicy:
    def __init__(self, state_key="observation.state", action_key="actions", steps=50, step_s=1 / 30,
                 amplitude=0.15, period_s=4.0, nan_every=0, delay_s=0.0, columns=None):
        self.state_key = state_key
        self.action_key = action_key
        self.steps = steps
        self.step_s = step_s
        self.amplitude = amplitude
        self.period_s = period_s
        self.nan_every = nan_every
        self.delay_s = delay_s
        self.columns = columns
        self.metadata = {"policy": "stand-in", "steps": steps, "step_s": step_s}
        self.reset()

    def reset(self):
        self.origin = None
        self.started = None
        self.count = 0

    def infer(self, observation):
        state = np.asarray(observation[self.state_key], dtype=np.float64).reshape(-1)
        now = time.monotonic()
        if self.origin is None:
            self.origin = state.copy()
            self.started = now
        self.count += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        t0 = now - self.started
        times = t0 + self.step_s * np.arange(self.steps)
        wave = self.amplitude * np.sin(2 * math.pi * times / self.period_s)
        chunk = self.origin[None, :] + wave[:, None] * np.ones_like(self.origin)[None, :]
        if self.columns is not None:
            chunk = chunk[:, : self.columns]
        if self.nan_every and self.count % self.nan_every == 0:
            chunk = chunk.copy()
            chunk[self.steps // 2, 0] = np.nan
        return {self.action_key: chunk.astype(np.float32)}
