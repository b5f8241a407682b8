"""`synthetic_pets`: the embedded, procedurally generated TFDS dataset.

It has the feature schema of `oxford_iiit_pet:4.0.0` for everything the pipeline reads, so the
pipeline loads both the same way, through TFDS, and the embedded one needs no network.
Importing this module registers the builder with TFDS.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from segpipe.config import EMBEDDED_VERSION
from segpipe.scenes import TEXTURES, draw_scene

_SPLIT_IDS = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class SyntheticPetsConfig(tfds.core.BuilderConfig):
    """Sizes and seed of a generated dataset; `config_for` names it after them."""

    train_examples: int = 800
    test_examples: int = 200
    min_side: int = 96
    max_side: int = 160
    seed: int = 0


def config_for(train_examples: int, test_examples: int, min_side: int, max_side: int, seed: int) -> SyntheticPetsConfig:
    """A config whose name encodes every value, so TFDS never mixes two generated datasets."""
    name = f"train{train_examples}_test{test_examples}_side{min_side}-{max_side}_seed{seed}"
    return SyntheticPetsConfig(
        name=name,
        train_examples=train_examples,
        test_examples=test_examples,
        min_side=min_side,
        max_side=max_side,
        seed=seed,
    )


class SyntheticPets(tfds.core.GeneratorBasedBuilder):
    """Textured blobs on textured backgrounds with Oxford-style trimaps (1 pet, 2 background, 3 border)."""

    VERSION = tfds.core.Version(EMBEDDED_VERSION)
    RELEASE_NOTES = {EMBEDDED_VERSION: "Initial release."}
    BUILDER_CONFIGS = [config_for(800, 200, 96, 160, 0)]

    @classmethod
    def with_sizes(cls, config: SyntheticPetsConfig, **kwargs) -> SyntheticPets:
        """A builder for `config`, reusing the registered config of the same name (TFDS requires it)."""
        registered = {known.name: known for known in cls.BUILDER_CONFIGS}
        return cls(config=registered.get(config.name, config), **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(encoding_format="png"),
                    "label": tfds.features.ClassLabel(names=list(TEXTURES)),
                    "file_name": tfds.features.Text(),
                    "segmentation_mask": tfds.features.Image(shape=(None, None, 1), use_colormap=True),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.train_examples),
            "test": self._generate_examples("test", config.test_examples),
        }

    def _generate_examples(self, split: str, count: int):
        config = self.builder_config
        for index in range(count):
            rng = np.random.default_rng([config.seed, _SPLIT_IDS[split], index])
            height, width = (int(side) for side in rng.integers(config.min_side, config.max_side + 1, size=2))
            image, trimap, texture = draw_scene(rng, height, width)
            file_name = f"{split}_{index:05d}.png"
            yield (
                file_name,
                {
                    "image": image,
                    "label": texture,
                    "file_name": file_name,
                    "segmentation_mask": trimap,
                },
            )
