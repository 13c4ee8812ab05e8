"""Model families and the shared parts around them (input preprocessing in, task head out).

- registry.py: the families, found in families/ (one file each: name, inputs read, design space,
  depth limit, builder)
- blocks.py: layer pieces the families share; layers.py: the custom (serialisable) layers
- preprocessing.py: the model's input layers: scaling, column encodings, training-only augmentation
- builder.py: a design -> an uncompiled Keras model (inputs -> family body -> task head)

Importing this package, the registry or a family loads no Keras; building a model does.
"""
