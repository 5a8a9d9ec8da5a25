"""The SC-VAE paper's analyses beyond segmentation: reconstruction quality of models side by side,
walks through code space (interpolation, atom traversal, atom usage) and dataset-wide clusters of
patch codes. Library functions only: the commands in `segtool.cli` draw the tables and bars."""
