"""The training loop: epochs of SGD on the multibox loss, validation mAP after each, the best
and the latest weights kept, stoppable at any step and resumable from there."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import torch
from tqdm import tqdm

from detector.architectures import SPECS
from detector.checkpoints import save_checkpoint
from detector.training.evaluation import Metrics, coco_metrics
from detector.training.history import EpochRecord, plot_history, write_history
from detector.training.job import (
    BEST,
    FRESH_CLASS_HEAD,
    LAST,
    StopReason,
    TrainingJob,
    TrainingResult,
)
from detector.training.loader import SampleDataset, SampleLoader, TrainBatch
from detector.training.loss import MultiBoxLoss
from detector.training.progress import DamagedProgress, Progress
from detector.training.schedule import WarmupCosine
from detector.training.transforms import eval_transform, smallest_default_box, train_transform
from detector.training.validation import predict
from pipeline.types import LabelMap

MIN_GAIN = 1e-4
"""A mAP better by less than this is no improvement (patience counts on)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the learning rate is too high for this data."""


class Trainer:
    """Fits `job.model` on `device` until the epochs are done (at least `min_steps` steps),
    mAP stops improving for `patience` epochs after those steps, or `stop` is set (then
    `last.pt` holds the exact step to resume)."""

    def __init__(
        self,
        job: TrainingJob,
        device: torch.device,
        stop: threading.Event,
        on_epoch: Callable[[EpochRecord, bool], None] | None = None,
        progress_bar: Callable[..., tqdm[Any]] = tqdm,
        amp: bool | None = None,
    ) -> None:
        """`on_epoch(record, best)` hears of every finished epoch (the command prints it);
        `amp`: mixed precision on or off (None: as the job's `--amp` and its base's recipe
        say, `TrainSettings.amp_on`).

        Raises:
            ValueError: mixed precision (`amp`, or the job's `--amp on`) on a device that is
                not CUDA.
        """
        self.amp = job.settings.amp_on(device.type, job.arch) if amp is None else amp
        if self.amp and device.type != "cuda":
            raise ValueError(f"mixed precision needs a CUDA device, not {device}")
        self.job = job
        self.on_epoch = on_epoch
        self.device = device
        self.stop = stop
        self.progress_bar = progress_bar
        settings = job.settings
        self.batch_size = job.batch_size
        self.model = job.model.to(device).train()
        self.loss = MultiBoxLoss(self.model.box_coder, self.model.anchors)
        lr = settings.lr_for(job.arch, job.fresh_class_head)
        head = SPECS[job.arch].class_head
        named = list(self.model.named_parameters())
        groups: list[dict[str, Any]] = [
            {"params": [p for n, p in named if not n.startswith(head)]},
            {
                "params": [p for n, p in named if n.startswith(head)],
                "lr": lr * settings.head_lr_factor_for(job.arch, job.fresh_class_head),
            },
        ]
        self.optimizer = torch.optim.SGD(
            groups,
            lr=lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay_for(job.arch),
        )
        self.steps_per_epoch = job.steps_per_epoch
        self.epochs = job.epochs
        total = self.epochs * self.steps_per_epoch
        self.schedule = WarmupCosine(warmup=settings.warmup_for(total), total=total)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        on_gpu = device.type == "cuda"
        self.train_batches = SampleLoader(
            SampleDataset(
                job.train,
                train_transform(job.size, smallest_default_box(self.model.anchors.cpu())),
            ),
            self.batch_size,
            shuffle=True,
            seed=settings.seed,
            workers=settings.workers,
            drop_last=True,
            pin_memory=on_gpu,
        )
        self.val_batches = SampleLoader(
            SampleDataset(job.val, eval_transform(job.size)),
            self.batch_size,
            shuffle=False,
            seed=settings.seed,
            workers=settings.workers,
            pin_memory=on_gpu,
        )

    def fit(self, progress: Progress | None = None) -> TrainingResult:
        """Train from `progress` (a resumed run) or from the start.

        Raises:
            DamagedProgress: `progress`'s optimiser or loss scale does not fit (before any
                step, nothing written).
            TrainingDiverged: the loss was NaN or infinite.
        """
        state = progress or Progress()
        self.restore(state)
        self.job.out.mkdir(parents=True, exist_ok=True)
        if state.epoch == 1 and state.step == 0 and not state.history:
            self._score_start(state)
        while state.epoch <= self.epochs:
            started = time.perf_counter()
            means = self._train_epoch(state)
            if means is None:  # stopped mid-epoch: `last.pt` has the step
                state.seconds += time.perf_counter() - started
                self._save(LAST, state)
                return self._result("interrupted", state)
            metrics = self._validate()
            seconds = state.seconds + time.perf_counter() - started
            record = EpochRecord(
                epoch=state.epoch,
                lr=self.optimizer.param_groups[0]["lr"],
                loss=means[0] + means[1],
                localisation=means[0],
                confidence=means[1],
                map=metrics.map,
                map50=metrics.map50,
                seconds=seconds,
                images_per_s=len(self.job.train) / seconds,
            )
            state.epoch, state.step, state.losses, state.seconds = state.epoch + 1, 0, [], 0.0
            self._keep(record, metrics, state)
            steps_done = (state.epoch - 1) * self.steps_per_epoch
            last = state.epoch > self.epochs  # a run that did all its epochs did not stop early
            if not last and self.job.settings.may_stop_early(state.stale_epochs, steps_done):
                return self._result("plateau", state)
            if self.stop.is_set():
                return self._result("interrupted", state)
        return self._result("finished", state)

    def _score_start(self, state: Progress) -> None:
        """Epoch 0: the starting weights' validation mAP, in the history and the plot, so
        that the user sees where training started. With a class head kept from the base
        (its own classes) it runs for `best.pt` too: a training that only loses what the
        base knew leaves `best.pt` as good as the base. A head made anew scores noise
        there; the trained weights are what a user of it wants, whatever their mAP."""
        started = time.perf_counter()
        metrics = self._validate()
        nothing = math.nan  # no step taken: no training loss, rate or speed
        record = EpochRecord(
            epoch=0,
            lr=0.0,
            loss=nothing,
            localisation=nothing,
            confidence=nothing,
            map=metrics.map,
            map50=metrics.map50,
            seconds=time.perf_counter() - started,
            images_per_s=nothing,
        )
        self._keep(record, metrics, state)

    def _keep(self, record: EpochRecord, metrics: Metrics, state: Progress) -> None:
        """Record the epoch just done (`state.epoch` already the next one): its row in the
        history and the plot, `best.pt` if it is the best so far, and `last.pt`."""
        state.history.append(record)
        trained = record.epoch > 0
        runs = trained or not self.job.fresh_class_head
        improved = runs and metrics.map > state.best_map + MIN_GAIN
        if improved:
            state.best_map, state.best_epoch, state.stale_epochs = metrics.map, record.epoch, 0
        elif trained:
            state.stale_epochs += 1
        if self.on_epoch is not None:
            self.on_epoch(record, improved)
        if improved:
            self._save(BEST, state, metrics=asdict(metrics))
        self._save(LAST, state)
        write_history(state.history, self.job.out)
        plot_history(state.history, self.job.out / "history.png")

    def restore(self, state: Progress) -> None:
        """Take up the optimiser and loss scale a stopped run saved in `state`, and the
        schedule where its steps left it (of this job's epochs, which a resumed run may have
        raised: the rate then follows a run started with that many).

        Raises:
            DamagedProgress: the saved optimiser or loss scale does not fit this run.
        """
        if state.optimizer is not None:
            self._restore_optimizer(state.optimizer)
        scheduled = self._steps_done(state) - state.skipped_steps
        self.scheduler.last_epoch = scheduled
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.schedule(scheduled)
        if state.scaler is not None:
            try:
                self.scaler.load_state_dict(state.scaler)
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise DamagedProgress(f"its loss scale does not load: {exc}") from None

    def _restore_optimizer(self, saved: dict[str, Any]) -> None:
        """The optimiser's saved state, refused (DamagedProgress) where it does not fit this
        model's parameters: torch would fail at the first step, or train on wrong momenta."""
        try:
            self.optimizer.load_state_dict(saved)
        except KeyError as exc:
            raise DamagedProgress(f"its optimiser state has no {exc.args[0]!r}") from None
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DamagedProgress(f"its optimiser state does not fit the model: {exc}") from None
        for param, kept in self.optimizer.state.items():
            for name, value in kept.items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise DamagedProgress(
                        f"its optimiser's {name} of shape {list(value.shape)} does not fit "
                        f"a parameter of shape {list(param.shape)}"
                    )

    def _steps_done(self, state: Progress) -> int:
        """Batches trained on up to `state`, steps the loss scaler skipped among them."""
        return (state.epoch - 1) * self.steps_per_epoch + state.step

    def _train_epoch(self, state: Progress) -> tuple[float, float] | None:
        """One epoch from `state.step`; the mean (localisation, confidence) losses of its
        steps, or None when `stop` was set (`state` then says where it stopped)."""
        if self.stop.is_set():  # it came while the starting weights were scored
            return None
        batches = self.train_batches.epoch(state.epoch, skip=state.step)
        totals = [sum(parts) for parts in zip(*state.losses, strict=True)] or [0.0, 0.0]
        bar = self.progress_bar(
            batches,
            total=self.steps_per_epoch,
            initial=state.step,
            desc=f"epoch {state.epoch}/{self.epochs}",
            unit="batch",
            leave=False,
        )
        for batch in bar:
            localisation, confidence = self.step(batch, state)
            totals[0] += localisation
            totals[1] += confidence
            state.step += 1
            state.losses.append((localisation, confidence))
            bar.set_postfix(loss=f"{(totals[0] + totals[1]) / len(state.losses):.3f}")
            if self.stop.is_set() and state.step < self.steps_per_epoch:
                bar.close()
                return None
        bar.close()
        done = max(len(state.losses), 1)  # a file saved before they were kept has fewer
        return (totals[0] / done, totals[1] / done)

    def step(self, batch: TrainBatch, state: Progress) -> tuple[float, float]:
        """One optimiser step on `batch` (in mixed precision where `amp`; a step the loss
        scaler skips for inf or NaN gradients leaves the schedule where it was); its
        (localisation, confidence) losses. `state` only places the step in messages.

        Raises:
            TrainingDiverged: the loss was NaN or infinite.
        """
        images = batch.images.to(self.device, non_blocking=True)
        boxes = [b.to(self.device) for b in batch.boxes]
        labels = [lab.to(self.device) for lab in batch.labels]
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            box_regression, class_logits = self.model(images)
        parts = self.loss(box_regression.float(), class_logits.float(), boxes, labels)
        total = parts.total
        if not torch.isfinite(total):
            job, value = self.job, float(total.detach())  # detached: no warning from torch
            raise TrainingDiverged(
                f"the loss became {value} at epoch {state.epoch}, batch {state.step + 1}; "
                f"lower --lr (it was {job.settings.lr_for(job.arch, job.fresh_class_head):g})"
            )
        scale = self.scaler.get_scale()  # read where the loss check waited for the GPU anyway
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # The scaler lowers its scale exactly when it skipped the optimiser's step for inf or
        # NaN gradients (mixed precision's first steps, often): the schedule waits for a step.
        if self.scaler.get_scale() >= scale:
            self.scheduler.step()
        return float(parts.localisation.detach()), float(parts.confidence.detach())

    def _validate(self) -> Metrics:
        predictions = predict(
            self.model,
            (batch.images for batch in self.val_batches.epoch(1)),
            [(s.width, s.height) for s in self.job.val],
            self.device,
            self.job.settings.eval_score_threshold,
        )
        return coco_metrics(self.job.val, predictions, self.job.class_names)

    def _save(self, name: str, state: Progress, metrics: dict[str, Any] | None = None) -> None:
        extra: dict[str, Any] = {
            "settings": self.job.settings.model_dump(),
            "base": self.job.base,
            "data": self.job.data,
            FRESH_CLASS_HEAD: self.job.fresh_class_head,
            "epoch": state.epoch - 1 if state.step == 0 else state.epoch,
        }
        if metrics is not None:
            extra["metrics"] = metrics
        if name == LAST:
            extra["progress"] = replace(
                state,
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict(),
                skipped_steps=self._steps_done(state) - self.scheduler.last_epoch,
            ).to_dict()
        save_checkpoint(
            self.job.out / name,
            self.model,
            self.job.arch,
            self.job.size,
            LabelMap(self.job.class_names),
            extra,
        )

    def _result(self, reason: StopReason, state: Progress) -> TrainingResult:
        done = state.epoch - 1
        return TrainingResult(
            reason, done, state.best_map, state.best_epoch, self.job.out, state.step
        )
