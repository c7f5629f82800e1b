"""The architecture search: ``methods`` (the search methods), ``architect`` (the DARTS alpha
gradient), ``search_step`` (alpha step + weight step), ``streams`` (the two data streams),
``search_state`` (what a search checkpoints), ``alpha_monitor`` and ``history`` (softmaxed alphas
over time), ``outputs`` (genotype.log, pictures, plots), ``report`` (speed and memory) and
``searcher`` (the search's hooks of the run skeleton, behind ``fad search``)."""
