"""Voting ResNet model builders.

Importing this package registers every class a saved Voting ResNet holds
(its layers and the crop loss of its compile config), so
``keras.models.load_model`` needs no ``custom_objects``.
"""
import voting_resnet.losses  # noqa: F401
from voting_resnet.models.resnet18 import build_voting_resnet, crop_size, feature_size

__all__ = ["build_voting_resnet", "crop_size", "feature_size"]
