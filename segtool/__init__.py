"""segtool: unsupervised image segmentation with an SC-VAE backbone.

Library use (everything the CLI does is reachable from Python):

    from segtool.io.images import load_image
    from segtool.pipeline.registry import MethodSpec, build_segmenter
    from segtool.pipeline.models import load_extractor

    seg = build_segmenter(MethodSpec("scvae"), extractor_factory=load_extractor)  # shipped model, defaults
    result = seg.segment(load_image("photo.jpg"))
    result.mask                          # bool array at the image's own size
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import segtool` (and `segtool --help`) must not pay for torch and sklearn.
    if name in ("Segmenter", "SegmentResult"):
        from segtool.pipeline import segmenters

        return getattr(segmenters, name)
    raise AttributeError(f"module 'segtool' has no attribute {name!r}")
