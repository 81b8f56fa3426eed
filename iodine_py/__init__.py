"""iodine-py: an evented HTTP/1.1 server for WSGI apps, with a C core."""
__version__ = "0.1.0"

from .server import Iodine  # noqa: E402
from .upgrade import UpgradeResponse, upgrade, upgrade_type  # noqa: E402

__all__ = ["Iodine", "UpgradeResponse", "upgrade", "upgrade_type", "__version__"]
