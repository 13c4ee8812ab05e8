"""Image files fed to Keras one decoded batch at a time (a ``keras.utils.PyDataset``).

Kept apart from :mod:`pipeline.images` so that the stages that only read images (prepare,
split) do not import Keras and its backend.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from pipeline.images import ImageFiles


class ImageBatches(keras.utils.PyDataset):
    """Batches of decoded images (and labels) read from disk on demand; reshuffled every epoch."""

    def __init__(self, images: ImageFiles, labels: np.ndarray | None, batch_size: int, shuffle: bool = False,
                 seed: int = 0, workers: int = 2, queued: int = 4):
        # At most `queued` decoded batches wait in memory, whatever the folder's size.
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=queued)
        self.images, self.labels, self.batch_size, self.shuffle = images, labels, batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(images))
        if shuffle:
            self.rng.shuffle(self.order)

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        x = self.images.read(chosen)
        return x if self.labels is None else (x, self.labels[chosen])

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)
