"""Voting ResNet for low-resolution facial expression recognition.

Reference Keras 3 implementation of Gómez-Sirvent et al., *Facial Expression
Recognition in the Wild for Low-Resolution Images Using Voting Residual
Network* (Electronics 2023): a ResNet-18 for 48x48 whose feature maps are cut
into 5 crops and their mirrors inside the graph, and whose 10 predictions vote.

Importing this package registers every class a saved Voting ResNet holds
(the crop-and-mirror, regroup and voting layers, and the crop loss of its
compile config), so ``keras.models.load_model(path)`` needs no
``custom_objects`` after ``import voting_resnet``. Its other modules
(training, reports, the task's registration, the comparison) are imported on
use; ``docs/layout.md`` lists them.

With a Keras backend other than TensorFlow the package still imports, so
``python -m voting_resnet.train`` can say in one line what it needs, and
every name of it raises :class:`~csa_keras.utils.quiet.BackendError`.
"""
from csa_keras.utils.quiet import check_backend, import_tensorflow, keras_backend

if keras_backend()[0] == "tensorflow":
    import_tensorflow(command=False)  # before Keras: TensorFlow's start-up lines stay off stderr

    from voting_resnet.layers import (
        CROP_POSITIONS,
        VOTING_MODES,
        CropAndMirror,
        Regroup,
        Voting,
        hard_vote,
        soft_vote,
        vote,
    )
    from voting_resnet.losses import CropCrossEntropy
    from voting_resnet.models import SPLIT_POINTS, build_voting_resnet, crop_size, feature_size
else:

    def __getattr__(name: str):
        check_backend()
        raise AttributeError(name)

__version__ = "0.1.0"

__all__ = [
    "CROP_POSITIONS",
    "SPLIT_POINTS",
    "VOTING_MODES",
    "CropAndMirror",
    "CropCrossEntropy",
    "Regroup",
    "Voting",
    "build_voting_resnet",
    "crop_size",
    "feature_size",
    "hard_vote",
    "soft_vote",
    "vote",
]
