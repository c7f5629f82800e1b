"""fad: Representation Sharing for Fast Object Detector Search (FAD, ECCV 2020), on torchvision."""

__version__ = "0.1.0"
