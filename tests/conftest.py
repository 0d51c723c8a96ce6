"""Test-wide settings: CPU backend, wandb disabled, no x64 globally."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
