"""Neural-network building blocks with PyTorch's names and state_dict layout."""

from gradstep.nn import functional, init
from gradstep.nn.activations import ELU, GELU, SELU, Hardtanh, LogSigmoid, ReLU6, SiLU
from gradstep.nn.extra import BatchNorm1d, Embedding, LayerNorm
from gradstep.nn.layers import (
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    ReLUSum,
    Sequential,
    Sigmoid,
    SigmoidSum,
    Softplus,
    Tanh,
    mlp,
)
from gradstep.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from gradstep.nn.module import Module, Parameter

__all__ = [
    "BatchNorm1d",
    "functional",
    "Embedding",
    "LayerNorm",
    "BCELoss",
    "NLLLoss",
    "SmoothL1Loss",
    "ELU",
    "GELU",
    "Hardtanh",
    "LogSigmoid",
    "ReLU6",
    "SELU",
    "SiLU",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "HuberLoss",
    "Identity",
    "L1Loss",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "Module",
    "Parameter",
    "ReLU",
    "ReLUSum",
    "Sequential",
    "Sigmoid",
    "SigmoidSum",
    "Softplus",
    "Tanh",
    "init",
    "mlp",
]
