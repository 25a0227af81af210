"""Model delivery: models that are not in the system image come from the OEM model server.

``ModelDelivery`` downloads a model's ``source.url`` into the model dir (resumable,
sha256-verified, installed atomically, disk space checked first) and keeps per-model progress;
``feature_status`` says per model and per skill whether it is available, downloadable,
downloading or unavailable, and why.
"""

from aios.delivery.manager import Job, ModelDelivery
from aios.delivery.progress import Progress, ProgressRegistry
from aios.delivery.status import feature_status

__all__ = ["Job", "ModelDelivery", "Progress", "ProgressRegistry", "feature_status"]
