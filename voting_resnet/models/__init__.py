"""Voting ResNet model builders: the ResNet-18 for 48x48 with its split point and vote."""
from voting_resnet.models.resnet18 import (
    SPLIT_POINTS,
    VOTER_SPLIT_POINTS,
    build_voting_resnet,
    crop_size,
    crop_views,
    feature_size,
)

__all__ = ["SPLIT_POINTS", "VOTER_SPLIT_POINTS", "build_voting_resnet", "crop_size", "crop_views",
           "feature_size"]
