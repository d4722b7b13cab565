import pytest

from nst_engine import ParameterError, StyleParams


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", 8),
        ("size", 10_000),
        ("size", 12.5),
        ("iterations", 0),
        ("content_weight", -1.0),
        ("style_weight", float("nan")),
        ("tv_weight", "a lot"),
        ("style_strength", 0),
        ("style_blend", ()),
        ("style_blend", (0.0, 0.0)),
        ("style_blend", (1.0, -0.5)),
        ("preserve_color", "yes"),
        ("pooling", "min"),
        ("init", "random"),
        ("init_noise", 1.5),
        ("optimizer", "sgd"),
        ("device", "tpu"),
        ("device", "cuda:x"),
        ("precision", "int8"),
        ("scales", 0),
        ("seed", -1),
        ("weights", "/no/such/weights.pth"),
    ],
)
def test_bad_values_name_the_parameter(field, value):
    with pytest.raises(ParameterError) as caught:
        StyleParams(**{field: value})
    assert caught.value.parameter == field
    assert str(caught.value).startswith(f"{field}:")


def test_defaults_are_valid_and_round_trip_through_a_dict():
    params = StyleParams(style_blend=(2.0, 1.0), preserve_color=True)
    data = params.to_dict()
    assert data["style_blend"] == [2.0, 1.0]
    assert StyleParams.from_dict(data) == params


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ParameterError) as caught:
        StyleParams.from_dict({"size": 64, "colour": "red"})
    assert caught.value.parameter == "colour"


def test_replace_validates_again():
    with pytest.raises(ParameterError):
        StyleParams().replace(size=4)


def test_style_blend_is_normalised_and_checked_against_the_style_count():
    assert StyleParams().style_blend_for(4) == (0.25, 0.25, 0.25, 0.25)
    assert StyleParams(style_blend=(3, 1)).style_blend_for(2) == (0.75, 0.25)
    with pytest.raises(ParameterError, match="2 weights but there are 3"):
        StyleParams(style_blend=(1, 1)).style_blend_for(3)


def test_an_existing_weights_file_is_accepted(tmp_path):
    path = tmp_path / "vgg.pth"
    path.write_bytes(b"x")
    assert StyleParams(weights=str(path)).weights == str(path)
