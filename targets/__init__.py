"""Targets: what offload-bench measures (a service's commands, one request per mode, a job tracker) as data.

A ground-floor package shared by bench/ and loadtests/; it imports neither.
"""

from targets.loader import TargetError, builtin_path, load_target, parse_target
from targets.model import Jobs, Mode, Service, Target

__all__ = ["Jobs", "Mode", "Service", "Target", "TargetError", "builtin_path", "load_target", "parse_target"]
