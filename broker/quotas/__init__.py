"""Client quotas on a broker (KIP-13, KIP-55, KIP-124, KIP-219, KIP-599): the windowed rate
(``rate.py``), which quota applies to a (user, client id) (``resolve.py``), the per-broker
manager recording usage and computing throttle times (``manager.py``), and the hooks around the
handlers (``enforce.py``)."""
