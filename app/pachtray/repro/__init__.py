"""Reproducible notebooks: pin the commits a process read (a lock) and mount them again."""
