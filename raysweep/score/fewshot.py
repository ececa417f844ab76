"""The quick probe (:class:`FewshotRidge`): a cheap downstream signal during pre-training, the
few-shot least-squares evaluator of big_vision (``fewshot_lsr``) in spirit. A closed-form ridge regression (no epochs)
on standardised features of the first ``score.probe_blocks`` blocks, over a fixed subset of the
downstream dataset; its top-1 is reported as ``probe_top1``, what ASHA stops sweep trials on."""

from __future__ import annotations

import numpy as np
import torch

from raysweep.config import Config
from raysweep.score.backbone import probe_features
from raysweep.score.datasets import Downstream
from raysweep.core.inputs import model_input
from raysweep.score.loop import standardize


class FewshotRidge:
    def __init__(self, cfg: Config, data: Downstream, device: torch.device, ridge: float = 1.0):
        rng = np.random.default_rng(0)
        tr = rng.permutation(len(data.train.labels))[: cfg.sweep.probe_train]
        te = rng.permutation(len(data.test.labels))[: cfg.sweep.probe_test]
        size = cfg.model.img_size
        (x_train, y_train), (x_test, y_test) = data.train.take(tr), data.test.take(te)
        self.x_train, self.x_test = model_input(x_train, size, device), model_input(x_test, size, device)
        self.y_train, self.y_test = torch.from_numpy(y_train).to(device), torch.from_numpy(y_test).to(device)
        self.classes, self.blocks, self.ridge = data.num_classes, cfg.score.probe_blocks, ridge

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> float:
        model.eval()
        f_train = torch.cat([probe_features(model, x, self.blocks) for x in self.x_train.split(256)]).double()
        f_test = torch.cat([probe_features(model, x, self.blocks) for x in self.x_test.split(256)]).double()
        f_train, f_test = (f.double() for f in standardize(f_train, f_test))
        a = torch.cat([f_train, torch.ones(len(f_train), 1, dtype=f_train.dtype, device=f_train.device)], 1)
        targets = torch.nn.functional.one_hot(self.y_train, self.classes).double()
        eye = torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
        w = torch.linalg.solve(a.T @ a + self.ridge * eye, a.T @ targets)
        pred = torch.cat([f_test, torch.ones(len(f_test), 1, dtype=f_test.dtype, device=f_test.device)], 1) @ w
        return 100.0 * float((pred.argmax(1) == self.y_test).float().mean())
