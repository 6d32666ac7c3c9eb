"""Voting ResNet model builders."""
from voting_resnet.models.resnet18 import build_voting_resnet, crop_size, feature_size

__all__ = ["build_voting_resnet", "crop_size", "feature_size"]
