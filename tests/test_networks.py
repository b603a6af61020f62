from dataclasses import replace

import keras
import numpy as np
import pytest

from pixel_dqn.config import CNNConfig, MLPConfig
from pixel_dqn.networks import PixelConv, build_cnn, build_mlp, build_network, pixel_state


def cnn(**settings) -> CNNConfig:
    """The default CNN on the default pixel env (diff_current, gray), with ``settings``."""
    return CNNConfig(**{"obs_mode": "diff_current", "gray": True, **settings})


@pytest.mark.parametrize(("mode", "frames"), [("diff", 2), ("diff_current", 2), ("stack", 4)])
@pytest.mark.parametrize("gray", [True, False])
def test_cnn_maps_each_observation_mode_to_one_q_value_per_action(mode, frames, gray):
    shape = (frames, 40, 90) if gray else (frames, 40, 90, 3)
    model = build_cnn(cnn(obs_mode=mode, gray=gray), shape, 2)
    channels = {"diff": 1, "diff_current": 2, "stack": frames}[mode] * (1 if gray else 3)
    assert model.get_layer("conv_0").kernel.shape[2] == channels  # a kernel over the state
    obs = np.random.default_rng(0).integers(0, 256, (5, *shape), dtype=np.uint8)
    assert model(obs).shape == (5, 2) and model.output_shape == (None, 2)


@pytest.mark.parametrize(("mode", "frames"),
                         [("diff", 2), ("diff_current", 2), ("diff_current", 4), ("stack", 3)])
@pytest.mark.parametrize("gray", [True, False])
def test_pixel_conv_is_a_convolution_over_the_state(mode, frames, gray):
    """The layer folds the state into its kernel: the same function as Conv2D(pixel_state)."""
    channels = 1 if gray else 3
    shape = (frames, 40, 90) if gray else (frames, 40, 90, 3)
    obs = np.random.default_rng(0).integers(0, 256, (5, *shape), dtype=np.uint8)
    layer = PixelConv(mode, channels, filters=8, kernel_size=8, strides=4)
    state = pixel_state(obs, mode, channels)
    conv = keras.layers.Conv2D(8, 8, strides=4, activation="relu")
    conv.build(state.shape)
    outputs = np.asarray(layer(obs))
    conv.set_weights(layer.get_weights())
    np.testing.assert_allclose(outputs, np.asarray(conv(state)), rtol=1e-5, atol=1e-6)
    assert outputs.shape == (5, 9, 21, 8) and outputs.any()


def test_dueling_head_is_value_plus_mean_subtracted_advantages():
    model = build_mlp(MLPConfig(hidden_sizes=[8], dueling=True, layer_norm=False), (4,), 3)
    obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    features = keras.Model(model.inputs, model.get_layer("hidden_0").output)(obs)
    value = np.asarray(model.get_layer("value")(features))
    advantages = np.asarray(model.get_layer("advantages")(features))
    expected = value + advantages - advantages.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(model(obs)), expected, rtol=1e-5, atol=1e-6)
    # the mean advantage is zero, so the Q-values' mean over actions is the value
    np.testing.assert_allclose(np.asarray(model(obs)).mean(axis=1), value[:, 0], atol=1e-5)


def test_dueling_cnn_saves_and_loads(tmp_path):
    model = build_cnn(cnn(dueling=True), (2, 40, 90), 2)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    obs = np.random.default_rng(0).integers(0, 256, (3, 2, 40, 90), dtype=np.uint8)
    np.testing.assert_allclose(np.asarray(loaded(obs)), np.asarray(model(obs)), rtol=1e-6)


@pytest.mark.parametrize("build", ["mlp", "cnn"])
def test_layer_norm_normalises_each_dense_layers_pre_activation(build, tmp_path):
    if build == "mlp":
        model = build_mlp(MLPConfig(hidden_sizes=[16, 8], layer_norm=True), (4,), 2)
        name = "hidden_1"
        obs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32) * 50
    else:
        model, name = build_cnn(cnn(layer_norm=True), (2, 40, 90), 2), "dense_0"
        obs = np.random.default_rng(0).integers(0, 256, (6, 2, 40, 90), dtype=np.uint8)
    normed = keras.Model(model.inputs, model.get_layer(f"{name}_norm").output)(obs)
    normed = np.asarray(normed)  # at initialisation (scale 1, offset 0): zero mean, unit std
    np.testing.assert_allclose(normed.mean(axis=1), 0.0, atol=1e-4)
    # unit std up to LayerNormalization's epsilon (1e-3, added to the variance)
    assert (normed.std(axis=1) > 0.9).all() and (normed.std(axis=1) < 1.0 + 1e-4).all()
    plain = build_mlp(MLPConfig(hidden_sizes=[16], layer_norm=False), (4,), 2)
    assert not any("norm" in layer.name for layer in plain.layers)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded(obs)), np.asarray(model(obs)), rtol=1e-5)


@pytest.mark.parametrize(("model", "precision"), [("mlp", "mixed_bfloat16"),
                                                 ("cnn", "mixed_bfloat16"),
                                                 ("cnn", "mixed_bfloat16_convs")])
def test_a_mixed_bfloat16_network_computes_in_bfloat16_and_answers_in_float32(model, precision,
                                                                              tmp_path):
    if model == "mlp":
        settings, shape = MLPConfig(hidden_sizes=[64, 64]), (4,)
        obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    else:
        settings, shape = cnn(), (2, 40, 90)
        obs = np.random.default_rng(0).integers(0, 256, (32, *shape), dtype=np.uint8)
    single = build_network(settings, shape, 2)
    mixed = build_network(replace(settings, precision=precision), shape, 2)
    assert keras.config.dtype_policy().name == "float32"  # the build left the policy as it was
    for layer in (layer for layer in mixed.layers if layer.weights):
        convolution = layer.name.startswith("conv_")
        in_bfloat16 = precision == "mixed_bfloat16" or convolution
        assert layer.compute_dtype == ("bfloat16" if in_bfloat16 else "float32"), layer.name
    assert all(w.dtype == "float32" for w in mixed.weights)  # the weights Adam updates
    mixed.set_weights(single.get_weights())
    exact, rounded = np.asarray(single(obs)), np.asarray(mixed(obs))
    assert rounded.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: the same function, to about 1% of the Q-values' scale
    scale = np.abs(exact).max()
    assert 0 < np.abs(rounded - exact).max() < 0.05 * scale
    mixed.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.asarray(loaded(obs)), rounded)


def test_bfloat16_convolutions_leave_an_mlp_in_float32():
    network = build_network(MLPConfig(precision="mixed_bfloat16_convs"), (4,), 2)
    assert {layer.compute_dtype for layer in network.layers} == {"float32"}
