"""Devices reached over SSH: the transport, what a device has, and the two ways cells run
there (its own tools, or deploybench installed on it)."""
