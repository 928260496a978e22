"""hil.train: split models, the training loop with checkpoints, reports, ``hil train``/``hil demo``.

Entry points: :func:`hil.train.config.load_config`, :func:`hil.train.run.run_experiment`,
:func:`hil.train.run.train_ota`, :func:`hil.train.models.build_model`, :func:`hil.train.models.unsplit`,
:func:`hil.data.load_dataset`, :func:`hil.train.loop.train_model`. See docs/ota.md.
(Nothing is imported here, so ``import hil.train`` stays light.)
"""
