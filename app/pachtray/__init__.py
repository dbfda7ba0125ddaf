"""Pachtray: FUSE mounts of Pachyderm PFS, a tray GUI, and a drop-in mount-server API."""

__version__ = "0.2.0"
