"""Custom Keras layers of the Voting ResNet: the crop-and-mirror split and the vote."""
from voting_resnet.layers.crop_and_mirror import CROP_POSITIONS, CropAndMirror, crop_offsets
from voting_resnet.layers.voting import VOTING_MODES, Regroup, Voting, hard_vote, soft_vote, vote

__all__ = [
           "CROP_POSITIONS",
           "VOTING_MODES",
           "CropAndMirror",
           "Regroup",
           "Voting",
           "crop_offsets",
           "hard_vote",
           "soft_vote",
           "vote",
]
