"""The architecture search: ``architect`` (the alpha step), ``streams`` (the two data streams),
``history`` (softmaxed alphas over time), ``outputs`` (genotype.log, pictures, plots),
``report`` (speed and memory) and ``searcher`` (the loop behind ``fad search``)."""
