"""Settings of the publisher (:class:`PublishSettings`): endpoints, queues, formats, levels,
security. Checked when made, before any socket is opened."""

from __future__ import annotations

from dataclasses import dataclass

from streamsep.errors import ConfigError
from streamsep.net import protocol as proto
from streamsep.net.security import check_bind

__all__ = ["PublishSettings"]


@dataclass(frozen=True)
class PublishSettings:
    """Where and how the stems are published."""

    endpoints: tuple[str, ...] = ("tcp://127.0.0.1:5556",)
    """ZeroMQ endpoints to bind (a list is accepted)."""
    hwm: int = 100
    """Messages ZeroMQ queues per subscriber before sends to it fail (``SNDHWM``), >= 1."""
    sndbuf_bytes: int = 0
    """Kernel send buffer per connection (``SO_SNDBUF``), bytes; 0 keeps the OS default."""
    queue_chunks: int = 64
    """Capacity of the hand-off queue from the pipeline, in output chunks, >= 1."""
    sample_format: str = "float32"
    """``float32`` or ``int16`` payloads."""
    publish_mix: bool = True
    """Also publish the model input as ``audio.mix``."""
    levels_seconds: float = 1.0
    """Interval of ``levels`` messages in stream seconds; 0 disables them."""
    status_seconds: float = 1.0
    """Interval of ``status`` messages in wall-clock seconds; 0 disables them."""
    end_timeout_seconds: float = 5.0
    """How long the end-of-stream messages are retried, and how long after them the socket
    stays open for subscribers still reading, seconds."""
    server_secret_key_file: str | None = None
    """Server ``.key_secret`` file; with ``authorized_keys_dir`` it turns CURVE on."""
    authorized_keys_dir: str | None = None
    """Folder of admitted client public keys (``*.key``)."""
    insecure: bool = False
    """Allow binding a non-loopback endpoint without CURVE."""
    sensitivity_db_re_1v_per_upa: float | None = None
    """Hydrophone sensitivity, dB re 1 V/µPa (e.g. -165); None: levels in dBFS only."""
    gain_db: float = 0.0
    """Gain between hydrophone and converter, dB."""
    full_scale_volts: float = 1.0
    """Converter input voltage (peak) giving sample value 1.0, volts (> 0)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))
        if not self.endpoints:
            raise ConfigError("publish.endpoints must name at least one endpoint")
        for key in ("hwm", "queue_chunks"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"publish.{key} must be an integer >= 1, got {value!r}")
        if self.sndbuf_bytes < 0:
            raise ConfigError(f"publish.sndbuf_bytes must be >= 0, got {self.sndbuf_bytes}")
        if self.sample_format not in proto.SAMPLE_FORMATS:
            raise ConfigError(
                f"publish.sample_format must be one of {list(proto.SAMPLE_FORMATS)}, "
                f"got {self.sample_format!r}"
            )
        for key in ("levels_seconds", "status_seconds", "end_timeout_seconds"):
            if getattr(self, key) < 0:
                raise ConfigError(f"publish.{key} must be >= 0, got {getattr(self, key)}")
        if self.full_scale_volts <= 0:
            raise ConfigError(f"publish.full_scale_volts must be > 0, got {self.full_scale_volts}")
        if (self.server_secret_key_file is None) != (self.authorized_keys_dir is None):
            raise ConfigError(
                "publish.server_secret_key_file and publish.authorized_keys_dir go together"
            )
        for endpoint in self.endpoints:
            check_bind(endpoint, curve=self.curve, insecure=self.insecure, section="publish")

    @property
    def curve(self) -> bool:
        """Whether CURVE encryption and client authentication are on."""
        return self.server_secret_key_file is not None
