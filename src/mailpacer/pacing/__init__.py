"""Per-route pacing (DESIGN §5), pure with an injected clock: how many connections, how fast, how
many messages per connection, and the quota window. The engine asks; nothing here does I/O.
"""

from mailpacer.pacing.pacer import Pacer, PacerConfig
from mailpacer.pacing.quota import QuotaWindow
from mailpacer.pacing.rate import RateConfig, RateControl

__all__ = ["Pacer", "PacerConfig", "QuotaWindow", "RateConfig", "RateControl"]
