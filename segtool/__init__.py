"""segtool: unsupervised image segmentation with an SC-VAE backbone.

One call (the shipped model, loaded once and kept for the next call):

    import segtool
    mask = segtool.segment("photo.jpg")          # bool numpy array at the photo's size
    mask = segtool.segment(rgb_array, k=3)       # or a numpy RGB array, or a PIL image

A segmenter for many images: built by name, its model loaded once (on the first image):

    seg = segtool.Segmenter("scvae", k=3)        # any method: "colour", "grabcut", "scvae[rule=simple]"
    result = seg("photo.jpg")                    # or seg.segment(image): a SegmentResult
    result.mask, result.foreground_fraction      # the mask; result.labels: the cluster grid

    import scvae
    seg = segtool.Segmenter(model=scvae.load("scvae-small-in1k"))   # a model you loaded yourself

Everything the command line does is reachable too: `segtool.pipeline.registry.build_segmenter`,
`segtool.segment_files.segment_files`, `segtool.evaluation.runner.run_eval`.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import segtool` (and `segtool --help`) must not pay for numpy, torch and sklearn.
    if name in ("Segmenter", "segment"):
        from segtool.pipeline import predictor

        return getattr(predictor, name)
    if name == "SegmentResult":
        from segtool.pipeline import segmenters

        return segmenters.SegmentResult
    raise AttributeError(f"module 'segtool' has no attribute {name!r}")
