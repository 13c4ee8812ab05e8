"""Where and how models train: the devices, the numeric precision and XLA compilation (`compute`).

`apply(cfg.compute)` runs at the start of the stages that train (train, redesign). It sets
Keras's global dtype policy (mixed precision keeps every head's output layer and the loss in
float32: see pipeline/tasks.py) and, with more than one device under JAX, Keras's
`DataParallel` distribution: each batch is split across the devices and the gradients are
averaged, so `batch_size` is the global batch (each device takes an equal share).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import DesignError


@dataclass(frozen=True)
class Device:
    name: str  # e.g. "cuda:0", "cpu:0"
    kind: str  # cpu | gpu | tpu
    compute_capability: float | None = None  # CUDA GPUs


@dataclass(frozen=True)
class Compute:
    """The settings in force for this process."""

    devices: tuple[Device, ...]
    precision: str  # float32 | mixed_float16 | mixed_bfloat16
    jit_compile: bool | str  # True, False or "auto" (Keras decides per backend)

    @property
    def data_parallel(self) -> bool:
        return len(self.devices) > 1

    def describe(self, batch_size: int | None = None) -> str:
        names = ", ".join(d.name for d in self.devices)
        text = f"{len(self.devices)} device{'s' if len(self.devices) > 1 else ''} ({names}), {self.precision}"
        if self.data_parallel and batch_size:
            size = batch_for(batch_size, len(self.devices))
            text += f", data parallel: global batch {size} = {len(self.devices)} x {size // len(self.devices)}"
        return text


CURRENT = Compute((Device("cpu:0", "cpu"),), "float32", "auto")


def local_devices() -> list[Device]:
    """Every device the Keras backend sees, accelerators first."""
    import keras

    backend = keras.backend.backend()
    found: list[Device] = []
    if backend == "jax":
        import jax

        for d in jax.devices():
            capability = getattr(d, "compute_capability", None)
            found.append(Device(f"{d.platform}:{d.id}", "cpu" if d.platform == "cpu" else d.platform.replace("cuda", "gpu"),
                                float(capability) if capability else None))
    elif backend == "tensorflow":
        import tensorflow as tf

        for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            found.append(Device(f"gpu:{i}", "gpu", float(".".join(map(str, capability))) if capability else None))
        found += [Device(f"cpu:{i}", "cpu") for i, _ in enumerate(tf.config.list_logical_devices("CPU"))]
    elif backend == "torch":
        import torch

        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            found.append(Device(f"cuda:{i}", "gpu", float(f"{major}.{minor}")))
        found.append(Device("cpu:0", "cpu"))
    else:
        found.append(Device("cpu:0", "cpu"))
    return sorted(found, key=lambda d: d.kind == "cpu")


def choose_devices(setting, available: list[Device]) -> tuple[Device, ...]:
    accelerators = [d for d in available if d.kind != "cpu"]
    cpus = [d for d in available if d.kind == "cpu"] or [Device("cpu:0", "cpu")]
    if setting == "auto":
        return tuple(accelerators) or (cpus[0],)
    if setting == "cpu":
        return (cpus[0],)
    if setting == "all":
        return tuple(available)
    wanted = list(setting)
    if any(i < 0 or i >= len(available) for i in wanted):
        raise DesignError(f"compute.devices: {wanted} are not all among this machine's devices "
                          f"({', '.join(f'{i}: {d.name}' for i, d in enumerate(available))})")
    return tuple(available[i] for i in wanted)


def choose_precision(setting: str, devices: tuple[Device, ...]) -> str:
    """auto: mixed float16 on GPUs with tensor cores (compute capability 7.0+), mixed bfloat16 on
    TPUs (their native type), float32 otherwise (CPUs gain nothing from half precision)."""
    if setting != "auto":
        return setting
    if all(d.kind == "tpu" for d in devices):
        return "mixed_bfloat16"
    if all(d.kind == "gpu" and (d.compute_capability or 0) >= 7.0 for d in devices):
        return "mixed_float16"
    return "float32"


def apply(settings) -> Compute:
    """Put a `compute` config section in force for this process; returns what was chosen."""
    global CURRENT
    import keras

    devices = choose_devices(settings.devices, local_devices())
    precision = choose_precision(settings.precision, devices)
    keras.mixed_precision.set_global_policy(precision)
    backend = keras.backend.backend()
    if len(devices) > 1:
        if backend != "jax":
            raise DesignError(f"compute.devices: training on {len(devices)} devices at once runs on the JAX backend "
                              f"(KERAS_BACKEND=jax); this process runs {backend}")
        from keras.distribution import DataParallel, set_distribution

        set_distribution(DataParallel(devices=[d.name for d in devices]))
    jit = settings.jit_compile
    CURRENT = Compute(devices, precision, jit)
    return CURRENT


def batch_for(batch_size: int, devices: int | None = None) -> int:
    """The global batch: a multiple of the device count (at least one row per device)."""
    count = devices or len(CURRENT.devices)
    return max(count, batch_size // count * count)
