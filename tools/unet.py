"""Spleeter's U-Net (``spleeter/model/functions/unet.py::apply_unet``) in Keras 3.

One U-Net per instrument reads the mixture magnitudes ``(T, F, n_channels)`` and writes
``sigmoid mask * mixture`` under the name ``<instrument>_spectrogram`` (or, with
``model.params.stem_masks = "complement"``, one U-Net for two stems: ``mask`` and
``1 - mask``). Layers are created in Spleeter's order and named as TF1 Keras auto-named them
in Spleeter's graph (``conv2d``, ``conv2d_1``..., counting on across stems), so that Spleeter
checkpoint variables map onto Keras variables by name (see :func:`spleeter_variable_map`).
Names are set explicitly rather than left to Keras's process-global counters, which would
drift if another model was built earlier in the same process.

Only ``keras.layers`` are used, so the model builds on the TensorFlow and the JAX backends.

One addition to Spleeter: its six stride-2 levels need ``T`` and ``F`` to be multiples of 64.
For other sizes (the tiny test fixtures, T=16) the input is zero-padded at the end of time and
frequency up to the next multiple of 64 and the mask is cropped back before the final multiply.
For multiples of 64 (every Spleeter model) no padding layer is added and the graph is Spleeter's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import keras

from streamsep.engine.params import ModelParams
from streamsep.errors import ConfigError

from .widen import widen_weights

__all__ = [
    "DEFAULT_CONV_N_FILTERS",
    "MULTIPLE",
    "build_unet",
    "STEM_MASKS",
    "conv_n_filters",
    "load_compatible",
    "spleeter_variable_map",
    "stem_masks",
    "unet_stems",
]

DEFAULT_CONV_N_FILTERS: Final = (16, 32, 64, 128, 256, 512)
"""Spleeter's encoder filters, one per level."""
MULTIPLE: Final = 64
"""``T`` and ``F`` must be multiples of this (2 ** 6 levels) to need no padding."""
_KERNEL_SEED: Final = 50
"""Spleeter's ``he_uniform(seed=50)``."""

# Per stem, in Spleeter's creation order: (Keras class name stem, role).
_ENCODER_ROLES: Final = tuple(f"encoder{i}" for i in range(1, 7))
_DECODER_ROLES: Final = tuple(f"decoder{i}" for i in range(1, 7))
_CONV_ROLES: Final = (*(f"{r}_conv" for r in _ENCODER_ROLES), "mask_conv")
_DECONV_ROLES: Final = tuple(f"{r}_deconv" for r in _DECODER_ROLES)
_BN_ROLES: Final = (
    *(f"{r}_bn" for r in _ENCODER_ROLES),
    *(f"{r}_bn" for r in _DECODER_ROLES),
)


def _keras_name(base: str, index: int) -> str:
    """TF1 Keras auto-name: ``base`` for the first layer of a class, ``base_<index>`` after."""
    return base if index == 0 else f"{base}_{index}"


def conv_n_filters(params: ModelParams) -> tuple[int, ...]:
    """The six encoder filter counts of ``params`` (Spleeter's default if unset).

    Raises
    ------
    ConfigError
        If ``model.params.conv_n_filters`` is not a list of 6 positive integers.
    """
    filters = params.model_params.get("conv_n_filters", DEFAULT_CONV_N_FILTERS)
    if (
        not isinstance(filters, list | tuple)
        or len(filters) != 6
        or not all(isinstance(f, int) and not isinstance(f, bool) and f > 0 for f in filters)
    ):
        raise ConfigError(f"params: conv_n_filters must be 6 positive integers, got {filters!r}")
    return tuple(filters)


INPUT_NORMS: Final = ("none", "log")
"""``model.params.input_norm`` values: ``none`` (Spleeter: raw magnitudes) or ``log``."""


def input_norm(model_params: dict[str, Any]) -> str:
    """``model.params.input_norm`` (default ``none``), checked.

    ``log`` feeds the convolutions ``log1p(x / mean(x))``, the mean taken over the whole block
    (T, F, channels): the masks then do not depend on the input level (a hydrophone's gain), and
    loud and quiet bins get comparable weight. The mask still multiplies the raw magnitudes.
    """
    value = model_params.get("input_norm", "none")
    if value not in INPUT_NORMS:
        raise ConfigError(
            f"params: model.params.input_norm must be one of {INPUT_NORMS}, got {value!r}"
        )
    return str(value)


def decoder_dropout(model_params: dict[str, Any]) -> float:
    """``model.params.decoder_dropout``: Spleeter's 0.5 on the first three decoder levels."""
    value = model_params.get("decoder_dropout", 0.5)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"params: model.params.decoder_dropout must be in [0, 1), got {value!r}")
    return float(value)


STEM_MASKS: Final = ("separate", "complement")
"""``model.params.stem_masks`` values: ``separate`` (Spleeter: one U-Net per stem) or
``complement`` (two stems, one U-Net: the first stem gets its mask, the second ``1 - mask``)."""


def stem_masks(params: ModelParams) -> str:
    """``model.params.stem_masks`` (default ``separate``), checked.

    ``complement`` halves the network's cost: one U-Net's sigmoid mask ``m`` gives the first
    stem ``m * mix`` and the second ``(1 - m) * mix``. The TFLite file still has one output per
    stem, so the runtime (Spleeter's ratio masks over the outputs) needs no change.
    """
    value = params.model_params.get("stem_masks", "separate")
    if value not in STEM_MASKS:
        raise ConfigError(
            f"params: model.params.stem_masks must be one of {STEM_MASKS}, got {value!r}"
        )
    if value == "complement" and params.n_stems != 2:
        raise ConfigError(
            'params: model.params.stem_masks "complement" needs exactly 2 stems in '
            f"instrument_list, got {params.n_stems}"
        )
    return str(value)


def unet_stems(params: ModelParams) -> tuple[str, ...]:
    """The stems that have a U-Net of their own: all of them, or the first with ``complement``."""
    stems = tuple(params.instrument_list)
    return stems[:1] if stem_masks(params) == "complement" else stems


@keras.saving.register_keras_serializable(package="streamsep")
class Complement(keras.layers.Layer):
    """``1 - x``: the second stem's mask of a ``stem_masks = "complement"`` network."""

    def call(self, x: Any) -> Any:
        return 1.0 - x


@keras.saving.register_keras_serializable(package="streamsep")
class BlockLogNorm(keras.layers.Layer):
    """``log1p(x / (mean(x) + eps))`` with the mean over each example's whole block."""

    def __init__(self, eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eps = eps

    def call(self, x: Any) -> Any:
        from keras import ops

        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return ops.log1p(x / (mean + self.eps))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "eps": self.eps}


@keras.saving.register_keras_serializable(package="streamsep")
class ContextLogNorm(keras.layers.Layer):
    """``log1p(x / (mean(mix) + eps))`` for an input whose first ``n_mix`` channels are the mix
    (the rest its noise floor), the mean over the mix channels of each example's block."""

    def __init__(self, n_mix: int = 1, eps: float = 1e-8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_mix, self.eps = n_mix, eps

    def call(self, x: Any) -> Any:
        from keras import ops

        mean = ops.mean(x[..., : self.n_mix], axis=(1, 2, 3), keepdims=True)
        return ops.log1p(x / (mean + self.eps))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_mix": self.n_mix, "eps": self.eps}


@keras.saving.register_keras_serializable(package="streamsep")
class FirstChannels(keras.layers.Layer):
    """The first ``n`` channels of the input (the mix of a mix-and-floor input)."""

    def __init__(self, n: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = n

    def call(self, x: Any) -> Any:
        return x[..., : self.n]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n": self.n}


def _conv_activation(model_params: dict[str, Any]) -> keras.layers.Layer:
    """Spleeter's encoder activation: ``ReLU``, ``ELU``, else ``LeakyReLU(0.2)``."""
    name = str(model_params.get("conv_activation"))
    if name == "ReLU":
        return keras.layers.ReLU()
    if name == "ELU":
        return keras.layers.ELU()
    return keras.layers.LeakyReLU(negative_slope=0.2)


def _deconv_activation(model_params: dict[str, Any]) -> keras.layers.Layer:
    """Spleeter's decoder activation: ``LeakyReLU(0.2)``, ``ELU``, else ``ReLU``."""
    name = str(model_params.get("deconv_activation"))
    if name == "LeakyReLU":
        return keras.layers.LeakyReLU(negative_slope=0.2)
    if name == "ELU":
        return keras.layers.ELU()
    return keras.layers.ReLU()


class _Namer:
    """Hands out Spleeter's layer names, counting on across stems like TF1 Keras did."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        index = self._counts.get(base, 0)
        self._counts[base] = index + 1
        return _keras_name(base, index)


def _apply_unet(
    padded: Any,
    filters: Sequence[int],
    model_params: dict[str, Any],
    n_channels: int,
    crop: tuple[int, int],
    name: _Namer,
) -> Any:
    """One instrument's U-Net: ``apply_unet`` of Spleeter, layer for layer; its sigmoid mask.

    ``padded`` is the (normalised) model input ``(T, F, channels)`` zero-padded to multiples of
    64 (or not padded); ``crop`` is the ``(time, frequency)`` padding to remove from the mask.
    """
    dropout = decoder_dropout(model_params)
    conv_act = _conv_activation(model_params)  # one shared instance per stem, as in Spleeter
    deconv_act = _deconv_activation(model_params)
    init = keras.initializers.HeUniform(seed=_KERNEL_SEED)

    def conv(n: int, x: Any) -> Any:
        layer = keras.layers.Conv2D(
            n, (5, 5), strides=(2, 2), padding="same", kernel_initializer=init, name=name("conv2d")
        )
        return layer(x)

    def deconv(n: int, x: Any) -> Any:
        layer = keras.layers.Conv2DTranspose(
            n,
            (5, 5),
            strides=(2, 2),
            padding="same",
            kernel_initializer=init,
            name=name("conv2d_transpose"),
        )
        return layer(x)

    def bn(x: Any) -> Any:
        return keras.layers.BatchNormalization(axis=-1, name=name("batch_normalization"))(x)

    # Encoder: the skips and the bottleneck are the pre-BN conv outputs, as in Spleeter.
    convs = []
    x = padded
    for n in filters:
        c = conv(n, x)
        convs.append(c)
        x = conv_act(bn(c))  # the sixth activation is unused, as in Spleeter
    conv1, conv2, conv3, conv4, conv5, conv6 = convs

    # Decoder.
    x = conv6
    for n, skip in ((filters[4], conv5), (filters[3], conv4), (filters[2], conv3)):
        x = bn(deconv_act(deconv(n, x)))
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
        x = keras.layers.Concatenate(axis=-1)([skip, x])
    for n, skip in ((filters[1], conv2), (filters[0], conv1)):
        x = bn(deconv_act(deconv(n, x)))
        x = keras.layers.Concatenate(axis=-1)([skip, x])
    x = bn(deconv_act(deconv(1, x)))

    # Last layer: Spleeter hard-codes 2 filters (its models are stereo); here n_channels.
    mask = keras.layers.Conv2D(
        n_channels,
        (4, 4),
        dilation_rate=(2, 2),
        activation="sigmoid",
        padding="same",
        kernel_initializer=init,
        name=name("conv2d"),
    )(x)
    if crop != (0, 0):
        mask = keras.layers.Cropping2D(((0, crop[0]), (0, crop[1])))(mask)
    return mask


def build_unet(params: ModelParams, *, training: bool = False) -> keras.Model:
    """Spleeter's multi-stem U-Net for ``params``.

    Parameters
    ----------
    params : ModelParams
        ``T``, ``F``, ``n_channels``, ``instrument_list`` and ``model.params``
        (``conv_n_filters``, ``conv_activation``, ``deconv_activation``; streamsep's own
        ``input_norm`` and ``decoder_dropout``, whose defaults give Spleeter's graph).
    training : bool
        True gives a free batch dimension (for fitting); False fixes the batch at 1, the shape
        exported to TFLite. Dropout and batch norm follow the ``training`` argument of each call.

    Returns
    -------
    keras.Model
        Input ``mix_spectrogram``, shape ``(batch, T, F, n_channels)`` float32, magnitudes
        (with ``model.params.context = "floor"``: ``2 n_channels``, the mix's then its running
        noise floor's, :mod:`tools.dataset.noisefloor`).
        Outputs, in ``instrument_list`` order, ``<instrument>_spectrogram`` of shape
        ``(batch, T, F, n_channels)``: ``sigmoid mask * mix``.

    Raises
    ------
    ConfigError
        If ``conv_n_filters`` is malformed.
    """
    filters = conv_n_filters(params)
    model_params = params.model_params
    with_floor = params.context == "floor"
    inputs = keras.Input(
        shape=(params.T, params.F, params.input_channels),
        batch_size=None if training else 1,
        name="mix_spectrogram",
        dtype="float32",
    )
    crop = (-params.T % MULTIPLE, -params.F % MULTIPLE)
    mix = padded = inputs
    if with_floor:
        if input_norm(model_params) != "log":
            raise ConfigError('params: model.params.context "floor" needs input_norm "log"')
        mix = FirstChannels(params.n_channels, name="mix_channels")(inputs)
        padded = ContextLogNorm(params.n_channels, name="context_log_norm")(inputs)
    elif input_norm(model_params) == "log":
        padded = BlockLogNorm(name="block_log_norm")(mix)
    if crop != (0, 0):
        padded = keras.layers.ZeroPadding2D(((0, crop[0]), (0, crop[1])))(padded)
    namer = _Namer()
    instruments = params.instrument_list
    if stem_masks(params) == "complement":
        mask = _apply_unet(padded, filters, model_params, params.n_channels, crop, namer)
        masks = [mask, Complement(name="complement_mask")(mask)]
    else:
        masks = [
            _apply_unet(padded, filters, model_params, params.n_channels, crop, namer)
            for _ in instruments
        ]
    outputs = [
        keras.layers.Multiply(name=f"{instrument}_spectrogram")([mask, mix])
        for instrument, mask in zip(instruments, masks, strict=True)
    ]
    return keras.Model(inputs=inputs, outputs=outputs, name="unet")


def spleeter_variable_map(instruments: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Spleeter layer (checkpoint variable prefix) -> ``(instrument, role)``.

    For example ``"conv2d_7" -> ("noise", "encoder1_conv")`` for a 2-stem model. Variables are
    ``<prefix>/kernel``, ``/bias`` (convolutions) and ``<prefix>/gamma``, ``/beta``,
    ``/moving_mean``, ``/moving_variance`` (batch norms), in Spleeter and in
    :func:`build_unet`'s model alike, except ``encoder6_bn`` (``batch_normalization_5``,
    ``_17``...): Spleeter creates it but its output feeds nothing, so the Keras model prunes it
    and an importer should skip those checkpoint variables.
    """
    mapping: dict[str, tuple[str, str]] = {}
    for s, instrument in enumerate(instruments):
        for base, roles in (
            ("conv2d", _CONV_ROLES),
            ("conv2d_transpose", _DECONV_ROLES),
            ("batch_normalization", _BN_ROLES),
        ):
            for i, role in enumerate(roles):
                mapping[_keras_name(base, s * len(roles) + i)] = (instrument, role)
    return mapping


def _variant(params: ModelParams, drop: Sequence[str]) -> ModelParams:
    """``params`` without the ``model.params`` keys ``drop`` (their defaults apply)."""
    model = params.to_dict()["model"]
    kept = {k: v for k, v in params.model_params.items() if k not in drop}
    return ModelParams.from_dict({**params.to_dict(), "model": {**model, "params": kept}})


def load_compatible(model: keras.Model, weights: str, params: ModelParams) -> str:
    """Load into ``model`` (built from ``params``) the weights of a related network.

    Tried in order: the same network; without the noise-floor input (``context``); with one
    U-Net per stem (``stem_masks`` separate); without both. Every layer of ``model`` takes the
    saved layer of its name (:func:`tools.widen.widen_weights`: the first convolution widened
    with zero kernels for the floor channels), so a floor model starts out computing what the
    plain one did, and a complement model starts from the first stem's U-Net (the other stems'
    layers are not used).

    Returns
    -------
    str
        Which variant the weights were: ``same``, ``without context``, ``separate masks`` or
        ``without context, separate masks``.

    Raises
    ------
    ConfigError
        If no variant's layers match the weights file.
    """
    variants: list[tuple[str, tuple[str, ...]]] = [("same", ())]
    if params.context != "none":
        variants.append(("without context", ("context",)))
    if stem_masks(params) != "separate":
        variants.append(("separate masks", ("stem_masks",)))
        if params.context != "none":
            variants.append(("without context, separate masks", ("context", "stem_masks")))
    for label, drop in variants:
        source = build_unet(_variant(params, drop), training=True)
        try:
            source.load_weights(weights)
        except ValueError:
            continue
        widen_weights(source, model, params.instrument_list)
        return label
    raise ConfigError(
        f"{weights}: weights of another network (tried: {', '.join(v for v, _ in variants)})"
    )
