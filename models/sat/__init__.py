"""SAT (text-prompted universal 3D segmentation), reimplemented: config, model, text tower, loaders.

Heavy imports (torch, transformers) happen when a submodule is imported, not here, so that
`prosector engines` can list SAT without loading torch.
"""
