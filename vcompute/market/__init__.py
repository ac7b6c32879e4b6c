"""The SimPy marketplace simulation."""
