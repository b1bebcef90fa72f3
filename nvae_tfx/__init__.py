"""The library behind the pipeline's components: data (ingestion readers, the record layout,
reading Transform's output), datasets (geometry and per-image randomness), options (each
component's typed settings), training, evaluation and images.

Imports run one way: pipeline -> components -> nvae_tfx -> model_code.
"""
