"""The version of this library: the hub API version it is made for."""

__version__ = "0.1.0"
