"""Model zoo: Flax modules for the benchmarks of the HAMP, RelaxLoss and Trust papers.

CIFAR variants of MobileNetV2 and ShuffleNetV2 (HAMP Appendix H) and EfficientNet-B0 (Trust)
sit beside the ResNets, DenseNets, VGG and the FC nets.

Every model is a ``flax.linen.Module`` with ``num_classes`` and ``__call__(x, *, train)``
returning logits ``[batch, num_classes]``; images are NHWC float32. ``model_functions`` turns a
module into the pure ``init_fn`` / ``apply_fn`` pair the batched training engine vmaps over a
model axis; ``get_model`` builds one by name. DMP's GANs (:mod:`hampjax.models.gan`: DC-GAN,
tabular GAN) are generators/discriminators, not classifiers, and are not in ``MODELS``.
"""

from hampjax.models.cnn import SalemCNN
from hampjax.models.densenet import DenseNet, densenet_channels, densenet_layers_per_block
from hampjax.models.efficientnet import EFFICIENTNET_B0_STAGES, EfficientNet
from hampjax.models.gan import DCDiscriminator, DCGenerator, TabularDiscriminator, TabularGenerator
from hampjax.models.last_layer import last_layer_features, last_layer_params
from hampjax.models.mlp import DEFAULT_HIDDEN_SIZES, FCNet
from hampjax.models.mobilenetv2 import MOBILENETV2_CIFAR_STAGES, MobileNetV2, make_divisible
from hampjax.models.registry import MODELS, count_params, get_model, model_functions
from hampjax.models.resnet import (
    SHORTCUTS,
    BasicBlock,
    ResNet18,
    ResNet20,
    WideResNet,
    zero_pad_shortcut,
)
from hampjax.models.shufflenetv2 import SHUFFLENETV2_WIDTHS, ShuffleNetV2, channel_shuffle
from hampjax.models.vgg import VGG, VGG_CONFIGS

__all__ = [
    "FCNet",
    "DEFAULT_HIDDEN_SIZES",
    "DenseNet",
    "densenet_channels",
    "densenet_layers_per_block",
    "ResNet18",
    "ResNet20",
    "WideResNet",
    "BasicBlock",
    "SHORTCUTS",
    "zero_pad_shortcut",
    "VGG",
    "VGG_CONFIGS",
    "SalemCNN",
    "MobileNetV2",
    "MOBILENETV2_CIFAR_STAGES",
    "make_divisible",
    "ShuffleNetV2",
    "SHUFFLENETV2_WIDTHS",
    "channel_shuffle",
    "EfficientNet",
    "EFFICIENTNET_B0_STAGES",
    "MODELS",
    "get_model",
    "model_functions",
    "count_params",
    "last_layer_features",
    "last_layer_params",
    "DCGenerator",
    "DCDiscriminator",
    "TabularGenerator",
    "TabularDiscriminator",
]
