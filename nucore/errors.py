"""Errors raised by the native core's Python face."""


class NativeError(Exception):
    """A native-core call rejected its input (bad length, invalid point, malformed image...)."""
