"""KaggleDigitsDataModule: the competition CSVs as train, validation, test and predict loaders.

Images stay uint8 until they reach the device (784 bytes an image cross the bus); there they are
scaled to [0, 1] and, during training only, augmented a whole batch at a time. On a GPU the whole
split is moved there once, and a batch is one index operation on it: no per-sample Python.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader

from digit_recognizer.constants import NUM_CLASSES, PIXEL_MAX, TEST_FILE, TRAIN_FILE
from digit_recognizer.data.augment import BatchRandomWarp, batch_mixer
from digit_recognizer.data.cache import load_digits
from digit_recognizer.data.images import expand_image_paths, read_images
from digit_recognizer.data.sources import existing_csv, find_competition_files, mnist_folder, resolve_data_dir
from digit_recognizer.data.in_memory import DigitTensors, collate_batch
from digit_recognizer.data.resumable import ResumableLoader
from digit_recognizer.data.split import stratified_fold, stratified_split
from digit_recognizer.data.step_groups import StepGroup
from digit_recognizer.errors import DataError


class KaggleDigitsDataModule(LightningDataModule):
    """The Kaggle "Digit Recognizer" data with the reference recipe's split and augmentation.

    Args:
        data_dir: Folder with train.csv and test.csv (each plain or .gz) or Kaggle's
            digit-recognizer.zip; default: $DIGIT_RECOGNIZER_DATA, else ./data.
        source: "kaggle": the competition's files; "mnist": MNIST's 70,000 images in the same
            layout, fetched through torchvision into data_dir/mnist (its predictions are no
            Kaggle submission).
        download: When data_dir has no competition files, download them with the Kaggle API
            (needs the `kaggle` package and your credentials).
        cache_dir: Where parsed tensors are cached; default ~/.cache/digit_recognizer.
        batch_size: Images per batch (per optimizer step) on each device.
        steps_per_batch: Optimizer steps per Lightning training batch: the loader hands over this
            many batches at once and each gets its own step, in the same order and with the same
            results as one at a time; Lightning's per-batch cost is then paid once per this many
            steps (for GPUs, where that cost exceeds the step's: docs/performance.md). Not with
            gradient clipping or accumulation, nor with weight averaging other than SWAWeightAveraging.
        val_fraction: Share of train.csv held out for validation, stratified by label; 0 trains on all.
        split_seed: Seed of the validation split or of the folds' assignment (independent of the
            training seed).
        folds: Cross-validation: split train.csv into this many stratified, disjoint folds (each
            row in exactly one); fold `fold` validates and the others train. 0: off. In place of
            val_fraction, which must then be 0. `ensemble --folds K` trains every fold.
        fold: Which of the `folds` folds validates, 0..folds-1.
        augment: Randomly rotate, zoom, shift (and elastically distort, mix) training images.
        rotation_degrees: Largest rotation, in degrees either way.
        zoom: Largest zoom in or out, as a fraction, drawn separately for x and y.
        shift: Largest shift, as a fraction of the image size, separately for x and y.
        elastic_alpha: Scale of the elastic distortion's smoothed random field (Simard et al. 2003); 0: none.
        elastic_sigma: Smoothness of the elastic distortion: its Gaussian's width in pixels.
        mixup_alpha: MixUp: blend each training image and its label with another's, weights drawn
            from Beta(alpha, alpha); 0: off.
        cutmix_alpha: CutMix: paste a box of another training image, labels weighted by area; 0: off.
            With both on, each batch gets one of the two.
        test_csv: Labelled CSV that `test` scores; default: the validation split.
        predict_csv: Unlabelled CSV that `predict` labels; default: test.csv beside train.csv.
        images: Your own digit pictures for `predict` instead of a CSV: a PNG/JPEG file, a folder of
            them, or a glob. Each is brought to MNIST's form (grayscale, white on black, cropped,
            fitted into 20x20, centred by mass in 28x28); unreadable files are reported, one line each.
        num_workers: DataLoader worker processes (0: load in the main process, fastest for this data).
        on_device: Keep the splits in the accelerator's memory (GPU training with num_workers 0).
    """

    def __init__(
        self,
        data_dir: str | None = None,
        source: Literal["kaggle", "mnist"] = "kaggle",
        download: bool = True,
        cache_dir: str | None = None,
        batch_size: int = 86,
        steps_per_batch: int = 1,
        val_fraction: float = 0.1,
        split_seed: int = 42,
        folds: int = 0,
        fold: int = 0,
        augment: bool = True,
        rotation_degrees: float = 10.0,
        zoom: float = 0.1,
        shift: float = 0.1,
        elastic_alpha: float = 0.0,
        elastic_sigma: float = 4.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        test_csv: str | None = None,
        predict_csv: str | None = None,
        images: str | None = None,
        num_workers: int = 0,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise DataError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if folds == 1 or folds < 0:
            raise DataError(f"data.folds must be 0 (off) or at least 2, got {folds}")
        if folds and not 0 <= fold < folds:
            raise DataError(f"data.fold must be in 0..{folds - 1} for {folds} folds, got {fold}")
        if folds and val_fraction:
            raise DataError(f"data.folds {folds} chooses the validation rows: set data.val_fraction 0, "
                            f"not {val_fraction}")
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}")
        if steps_per_batch < 1:
            raise DataError(f"data.steps_per_batch must be at least 1, got {steps_per_batch}")
        self.save_hyperparameters()
        try:
            warp = BatchRandomWarp(rotation_degrees, zoom, shift, elastic_alpha, elastic_sigma)
            mixer = batch_mixer(mixup_alpha, cutmix_alpha, NUM_CLASSES)
        except ValueError as exc:  # a range that names its field: data.zoom must be in [0, 1), got 1.5
            raise DataError(f"data.{exc}") from None
        self.augmenter = warp if augment else None
        self.mixer = mixer if augment else None
        # The shuffle's own generator (seeded by seed_everything), saved in checkpoints: a resumed
        # run shuffles its next epoch exactly as the uninterrupted run would have.
        self.shuffle_generator = torch.Generator().manual_seed(torch.initial_seed())
        self.train_set: DigitTensors | None = None
        self.val_set: DigitTensors | None = None
        self.test_set: DigitTensors | None = None
        self.predict_set: DigitTensors | None = None
        self._source_dir: Path | None = None
        self._train_loader: ResumableLoader | None = None
        self._resume: dict[str, Any] | None = None  # a mid-epoch position from the checkpoint
        self.image_paths: list[Path] = []  # predict --data.images: the files read, in predict_set's order

    # -- locating and fetching the files ------------------------------------------------------

    def prepare_data(self) -> None:
        """Find (or unpack, or download) the files before any long work starts."""
        stage = self.trainer.state.fn if self.trainer is not None else None
        named = {"predict": self.hparams.predict_csv or self.hparams.images, "test": self.hparams.test_csv}.get(stage)
        if not named:  # a stage given its own CSV needs no data folder
            self.source_dir()

    def source_dir(self) -> Path:
        """The folder that holds the CSVs of this run's source (see `data.sources`)."""
        if self._source_dir is None:
            folder, chosen = resolve_data_dir(self.hparams.data_dir)
            if self.hparams.source == "mnist":
                self._source_dir = mnist_folder(folder)
            else:
                self._source_dir = find_competition_files(folder, chosen, self.hparams.download)
        return self._source_dir

    def csv_path(self, name: str) -> Path:
        """Path of train.csv or test.csv (or its .gz) in the source folder."""
        folder = self.source_dir()
        return existing_csv(folder / name) or folder / name

    # -- datasets -----------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        needs_split = stage in ("fit", "validate") or (stage == "test" and not self.hparams.test_csv)
        if needs_split and self.train_set is None:
            self._split_train_csv()
        if stage == "validate" and self.val_set is None:
            raise DataError("validate needs a validation split: set --data.val_fraction above 0")
        if stage == "test":
            self.test_set = self._labelled_test_set()
        if stage == "predict" and self.hparams.images:
            self.predict_set = self._own_images(self.hparams.images)
        elif stage == "predict":
            path = Path(self.hparams.predict_csv) if self.hparams.predict_csv else self.csv_path(TEST_FILE)
            self.predict_set = self._load(path, labelled=False)

    def _own_images(self, spec: str) -> DigitTensors:
        images, self.image_paths, failures = read_images(expand_image_paths(spec))
        for path, reason in failures:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        if not self.image_paths:
            raise DataError(f"{spec}: none of its {len(failures)} files could be read as a digit image")
        return DigitTensors(images).to(self._data_device())

    def _load(self, path: Path, labelled: bool) -> DigitTensors:
        digits = load_digits(path, labelled=labelled, cache_dir=self.hparams.cache_dir)
        return DigitTensors(digits.images, digits.labels).to(self._data_device())

    def _data_device(self) -> torch.device:
        """The accelerator when the data can live there, else the CPU."""
        if self.trainer is None or not self.hparams.on_device or self.hparams.num_workers > 0:
            return torch.device("cpu")
        return self.trainer.strategy.root_device

    def _split_train_csv(self) -> None:
        path = self.csv_path(TRAIN_FILE)
        digits = self._load(path, labelled=True)
        labels, seed = digits.labels.cpu(), self.hparams.split_seed
        if self.hparams.folds:
            try:
                train, val = stratified_fold(labels, self.hparams.folds, self.hparams.fold, seed)
            except ValueError as exc:  # more folds than a class has rows
                raise DataError(f"{path}: data.{exc}") from None
        else:
            train, val = stratified_split(labels, self.hparams.val_fraction, seed)
        self.train_set = digits.subset(train.to(digits.device))
        self.val_set = digits.subset(val.to(digits.device)) if len(val) else None

    def _labelled_test_set(self) -> DigitTensors:
        if self.hparams.test_csv:
            return self._load(Path(self.hparams.test_csv), labelled=True)
        if self.val_set is None:
            raise DataError("test scores the validation split by default: set --data.val_fraction above 0 "
                            "or name a labelled CSV with --data.test_csv")
        return self.val_set

    # -- loaders ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"shuffle_generator": self.shuffle_generator.get_state(), "epoch_position": self._epoch_position()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.shuffle_generator.set_state(state_dict["shuffle_generator"])
        self._resume = state_dict.get("epoch_position") or None  # older checkpoints: none

    def _loader(self, dataset: DigitTensors | None, shuffle: bool = False, unrepeated: bool = False) -> DataLoader | list:
        if dataset is None:
            return []  # Lightning skips a loop without batches (training on all rows: no validation)
        workers = self.hparams.num_workers
        settings = {"batch_size": self.hparams.batch_size, "collate_fn": collate_batch, "num_workers": workers,
                    "persistent_workers": workers > 0}
        if shuffle:  # training: resumable in mid-epoch, K steps' batches at a time
            settings["batch_size"] *= self.hparams.steps_per_batch
            resume, self._resume = self._resume, None
            self._train_loader = ResumableLoader(dataset, shuffle=True, generator=self.shuffle_generator,
                                                 resume=resume, **settings)
            return self._train_loader
        return DataLoader(dataset, sampler=self._unrepeated_sampler(dataset) if unrepeated else None, **settings)

    def _epoch_position(self) -> dict[str, Tensor | int]:
        """Where a checkpoint written now stands in the training epoch; {} once the epoch is processed.

        A checkpoint written after the epoch's last batch but before Lightning counts the epoch
        processed (Ctrl-C in its validation, or SIGTERM that Lightning's evaluation loop acts on in
        mid-validation) is resumed by Lightning inside that epoch: it iterates the loader once more
        for the epoch's (no) remaining batches before the next epoch's iterator. The position makes
        that extra iterator redraw the epoch's own permutation, so the next epoch draws the same one
        as the uninterrupted run.
        """
        loader, trainer = self._train_loader, self.trainer
        if loader is None or loader.epoch_start is None or trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}  # (fitting, not `trainer.training`: that is False in the epoch-end validation)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        epoch = trainer.fit_loop.epoch_progress.current
        if done == 0 or epoch.processed >= epoch.started:
            return {}
        return {"generator": loader.epoch_start, "batches_done": int(done)}

    def _unrepeated_sampler(self, dataset: DigitTensors) -> UnrepeatedDistributedSampler | None:
        """Under DDP, every image to exactly one process: Lightning's default DistributedSampler
        pads the shards with repeats, which a synced confusion matrix would count twice."""
        if self.trainer is None or self.trainer.world_size == 1:
            return None  # Lightning's own choice
        return UnrepeatedDistributedSampler(dataset, num_replicas=self.trainer.world_size,
                                            rank=self.trainer.global_rank, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, unrepeated=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, unrepeated=True)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_set)

    def on_after_batch_transfer(self, batch: list[Tensor] | Tensor, dataloader_idx: int) -> list[Tensor] | Tensor:
        """On the device: uint8 -> float in [0, 1] with a channel axis; augment when training
        (with MixUp or CutMix on, training labels become (B, classes) probabilities). A training
        batch of several steps becomes a StepGroup, which prepares each step's batch when it is reached."""
        if isinstance(batch, Tensor):  # the model summary's example_input_array: a model input already
            return batch
        training = self.trainer is not None and self.trainer.training
        if training and self.hparams.steps_per_batch > 1:
            return StepGroup(batch, self.hparams.batch_size, self.training_batch)
        return self.training_batch(batch) if training else [to_model_input(batch[0]), *batch[1:]]

    def training_batch(self, batch: list[Tensor]) -> list[Tensor]:
        """A uint8 training batch scaled, augmented and mixed: what one optimizer step trains on."""
        images, *rest = batch
        images = to_model_input(images)
        if self.augmenter is not None:
            images = self.augmenter(images)
        if self.mixer is not None:
            images, labels = self.mixer(images, rest[0])
            rest = [labels, *rest[1:]]
        return [images, *rest]


def to_model_input(images: Tensor) -> Tensor:
    """uint8 (B, 28, 28) -> float32 (B, 1, 28, 28) in [0, 1], the scaling the reference used."""
    return images.unsqueeze(1).to(torch.float32).div_(PIXEL_MAX)
