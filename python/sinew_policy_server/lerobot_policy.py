"""A LeRobot `PreTrainedPolicy` behind the protocol: loaded from a local directory (never downloaded here),
observations mapped into LeRobot's feature names, `predict_action_chunk` (or `select_action`) called, and the
chunk returned as an H x D float32 array. Needs `lerobot` and `torch` installed (`pip install lerobot`).

Since LeRobot 0.5 a checkpoint keeps its normalisation outside the model, in processor pipelines saved beside it
(`policy_preprocessor.json`, `policy_postprocessor.json` and their statistics): the observation goes through the
pre-processor and the chunk through the post-processor, or the policy would see unnormalised inputs and answer in
normalised units. A checkpoint without them (older LeRobot) normalises inside the model."""

import os

import numpy as np


class LeRobotPolicy:
    def __init__(self, path: str, device: str = "cpu", task: str | None = None):
        import torch  # noqa: F401 (fails early with a clear message when torch is missing)
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class

        config = PreTrainedConfig.from_pretrained(path)
        policy_class = get_policy_class(config.type)
        self.policy = policy_class.from_pretrained(path)
        self.policy.to(device)
        self.policy.eval()
        self.device = device
        self.task = task
        self.metadata = {"policy": config.type, "path": path}
        self.preprocessor = self.postprocessor = None
        if os.path.exists(os.path.join(path, "policy_preprocessor.json")):
            from lerobot.policies.factory import make_pre_post_processors

            self.preprocessor, self.postprocessor = make_pre_post_processors(
                config, pretrained_path=path, preprocessor_overrides={"device_processor": {"device": device}})
            self.metadata["processors"] = "policy_preprocessor.json, policy_postprocessor.json"

    @classmethod
    def from_policy(cls, policy, device="cpu", task=None, dataset_stats=None):
        """Wraps an already built policy (a freshly initialised one, for checks without a checkpoint); with
        `dataset_stats` ({feature: {"mean", "std", "min", "max": tensors}}) its processors are made from them, as
        LeRobot's training makes them from a dataset's."""
        self = cls.__new__(cls)
        self.policy = policy.to(device)
        self.policy.eval()
        self.device = device
        self.task = task
        self.metadata = {"policy": getattr(policy.config, "type", type(policy).__name__)}
        self.preprocessor = self.postprocessor = None
        if dataset_stats is not None:
            from lerobot.policies.factory import make_pre_post_processors

            self.preprocessor, self.postprocessor = make_pre_post_processors(
                policy.config, dataset_stats=dataset_stats)
        return self

    def reset(self):
        self.policy.reset()

    def infer(self, observation):
        import torch

        batch = {}
        for key, value in observation.items():
            if isinstance(value, np.ndarray):
                tensor = torch.from_numpy(np.array(value))
                if tensor.dtype == torch.uint8 and tensor.ndim == 3:  # H x W x C image -> C x H x W in [0, 1]
                    tensor = tensor.permute(2, 0, 1).float() / 255
                batch[key] = tensor.float().unsqueeze(0).to(self.device)
            elif isinstance(value, str):
                batch[key] = [value]
        if "task" not in batch:
            batch["task"] = [observation.get("prompt", self.task or "")]
        with torch.inference_mode():
            if self.preprocessor is not None:
                # The pipeline's batch also carries the transition's other fields (an empty action among them):
                # the policy is given the observation and the task only.
                batch = {k: v for k, v in self.preprocessor(batch).items()
                         if k.startswith("observation.") or k == "task"}
            if hasattr(self.policy, "predict_action_chunk"):
                self._remember(batch)
                chunk = self.policy.predict_action_chunk(batch)
            else:
                chunk = self.policy.select_action(batch).unsqueeze(1)
            if self.postprocessor is not None:
                chunk = self.postprocessor(chunk)
        return {"actions": chunk[0].detach().cpu().numpy().astype(np.float32)}

    def _remember(self, batch):
        """Policies that look at several past observations (diffusion: `n_obs_steps`) keep them in queues that
        `select_action` fills; `predict_action_chunk` then reads them. Fill them the same way here (the images
        stacked under one key first, the first observation repeated until the history is full)."""
        queues = getattr(self.policy, "_queues", None)
        if not queues or getattr(self.policy.config, "n_obs_steps", 1) <= 1:
            return
        import torch
        from lerobot.policies.utils import populate_queues

        images = list(getattr(self.policy.config, "image_features", None) or [])
        if images and all(key in batch for key in images):
            batch["observation.images"] = torch.stack([batch[key] for key in images], dim=-4)
        self.policy._queues = populate_queues(queues, batch, exclude_keys=["action"])
