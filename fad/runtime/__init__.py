"""The ground floor: atomic writes, checkpoint files, process groups, logging, seeds and errors.

Nothing here imports anything else from fad; every other package may import from here.
"""
