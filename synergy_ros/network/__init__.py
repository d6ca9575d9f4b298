"""The synergy network (Jiao et al., ECCV 2018): build, configure, load encoder weights.

Public API::

    from synergy_ros.network import NetworkConfig, build_network, load_encoder_weights
    model = build_network(NetworkConfig(encoder="resnet50", num_classes=40))
    out = model(image)            # SynergyOutput(depth, semantic_logits, attention)
"""
from synergy_ros.network.attention import attention_map
from synergy_ros.network.backbone import RESNET_SPECS, ResNetEncoder
from synergy_ros.network.config import (ENCODERS, GRANULARITIES, SHARING_MODES, UPCONV_MODES,
                                        NetworkConfig)
from synergy_ros.network.synergy import (PAD_MULTIPLE, PARAMETER_GROUPS, SynergyNet, SynergyOutput,
                                         build_network, load_encoder_weights)
from synergy_ros.network.variants import DecoderPlan, decoder_plan

__all__ = [
    "ENCODERS", "GRANULARITIES", "PAD_MULTIPLE", "PARAMETER_GROUPS", "RESNET_SPECS",
    "SHARING_MODES", "UPCONV_MODES", "DecoderPlan", "NetworkConfig", "ResNetEncoder",
    "SynergyNet", "SynergyOutput", "attention_map", "build_network", "decoder_plan",
    "load_encoder_weights",
]
