"""Voting ResNet for low-resolution facial expression recognition.

Reference Keras 3 implementation of Gómez-Sirvent et al., *Facial Expression
Recognition in the Wild for Low-Resolution Images Using Voting Residual
Network* (Electronics 2023): a ResNet-18 for 48x48 whose feature maps are cut
into 5 crops and their mirrors inside the graph, and whose 10 predictions vote.
"""

__version__ = "0.1.0"
