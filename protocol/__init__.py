"""The protocol core, the bottom layer: what every other package builds on and imports from.

The packages are layered, each importing only from the ones below it (tests/test_layers.py):

    harness/        commands, runner, grids, tables, cost plans, executors, clusters  (top)
    recommenders/   models behind recommenders.base.Recommender, the trainer
    extractors/     feature extractors behind extractors.base.Extractor
    protocol/       settings, errors, data sets, feature sets, evaluation, the result store  (bottom)

A plugin (a recommender or an extractor of one's own) imports the base class of its layer and
the types here: protocol.data.dataset.Dataset, protocol.featureset.FeatureSet,
protocol.config (settings and their ranges), protocol.errors.HarnessError.
"""
